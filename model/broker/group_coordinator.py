"""The group coordinator's offset storage: commits are records in ``__consumer_offsets``.

A group is coordinated by the leader of ``__consumer_offsets`` partition
``abs(groupId.hashCode()) % offsets.topic.num.partitions`` (``GroupCoordinatorService``
/ ``Utils.abs``); any broker answers ``FindCoordinator`` from its metadata, and a broker
that does not lead that partition answers ``NOT_COORDINATOR``.

A commit is appended to that partition like a produce with ``acks=all``
(``offsets.commit.required.acks=-1``) and answered once the high watermark passes it, or
with ``REQUEST_TIMED_OUT`` after ``offsets.commit.timeout.ms``; append errors are mapped as
``GroupMetadataManager.storeOffsets`` maps them.  Committed offsets are read back as of the
high watermark (the new coordinator's ``CoordinatorRuntime`` reads at the last committed
offset), so a commit that was appended but never replicated is not visible, and one that
was committed survives a coordinator failover exactly as a record would.

Consumers here use ``assign`` with a group id and no group membership (standalone
commits with generation -1), so no generation checks apply yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from model import messages as m
from model.metadata import OFFSETS_TOPIC, PartitionId, offsets_partition

if TYPE_CHECKING:
    from model.broker.broker import Broker

# GroupMetadataManager.storeOffsets: how append errors reach the committing client.
_COMMIT_ERRORS = {
    m.NOT_ENOUGH_REPLICAS: m.COORDINATOR_NOT_AVAILABLE,
    m.NOT_ENOUGH_REPLICAS_AFTER_APPEND: m.COORDINATOR_NOT_AVAILABLE,
    m.NOT_LEADER_OR_FOLLOWER: m.NOT_COORDINATOR,
    m.REQUEST_TIMED_OUT: m.REQUEST_TIMED_OUT,
}


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units, 32-bit wrapping), signed."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def java_abs(n: int) -> int:
    """Kafka's ``Utils.abs``: ``Integer.MIN_VALUE`` maps to 0, not to itself."""
    return 0 if n == -(1 << 31) else abs(n)


def coordinator_partition(group: str, partitions: int) -> str:
    return offsets_partition(java_abs(java_string_hash(group)) % partitions)


def commit_key(group: str, partition: int) -> str:
    """The record key of one committed offset (Kafka's ``OffsetCommitKey``)."""
    return f"{group}/{partition}"


class GroupCoordinator:
    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        self.ctx = broker.ctx

    def partition_for(self, group: str) -> PartitionId:
        return coordinator_partition(group, self.ctx.config.broker.offsets_topic_num_partitions)

    def _leading(self, group: str) -> Any:
        """The local replica of the group's offsets partition, if this broker leads it."""
        partition = self.broker.partitions.get(self.partition_for(group))
        return partition if partition is not None and partition.is_leader else None

    def find_coordinator(self, src: str, generation: int, req: m.FindCoordinatorRequest) -> None:
        leader = self.broker.metadata.leader_of(self.partition_for(req.group))
        error = None if leader is not None else m.COORDINATOR_NOT_AVAILABLE
        self.broker.reply(src, generation, m.FindCoordinatorResponse(req.corr, error, leader))

    def commit(self, src: str, generation: int, req: m.OffsetCommitRequest) -> None:
        partition = self._leading(req.group)
        if partition is None:
            self.broker.reply(src, generation, m.OffsetCommitResponse(req.corr, m.NOT_COORDINATOR))
            return

        def complete(error: str | None, offset: int | None) -> None:
            if error is None:
                self.ctx.event(self.broker.name, "offsets-committed", group=req.group,
                               offsets={str(p): o for p, o in req.offsets})
            self.broker.reply(src, generation, m.OffsetCommitResponse(
                req.corr, _COMMIT_ERRORS.get(error, error) if error else None))

        records = [(commit_key(req.group, p), offset, src) for p, offset in req.offsets]
        partition.append_as_leader(records, "all",
                                   self.ctx.config.broker.offsets_commit_timeout_ms, complete)

    def fetch_offsets(self, src: str, generation: int, req: m.OffsetFetchRequest) -> None:
        partition = self._leading(req.group)
        if partition is None:
            self.broker.reply(src, generation, m.OffsetFetchResponse(req.corr, m.NOT_COORDINATOR))
            return
        prefix = f"{req.group}/"
        committed: dict[int, int] = {}
        for record in partition.log.records[:partition.log.hw]:
            if record.key.startswith(prefix):
                committed[int(record.key[len(prefix):])] = record.value
        self.broker.reply(src, generation, m.OffsetFetchResponse(
            req.corr, None, tuple(sorted(committed.items()))))


__all__ = ["GroupCoordinator", "coordinator_partition", "java_string_hash", "OFFSETS_TOPIC"]
