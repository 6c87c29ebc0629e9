"""The KRaft metadata log's records, and the image every node builds by replaying them.

In KRaft the controller's decisions are records in one replicated log (``__cluster_metadata``)
and every broker replays that log in order into a ``MetadataImage``.  Because brokers apply
records strictly in log order, a broker can lag the controller but never goes back to an
older partition state than one it has already applied, and a restarted broker (whose copy
of the log survives a process kill) resumes from where it stopped.  The controller and the
brokers use this one :class:`MetadataImage` class, so both sides interpret a record the
same way.

Records (Kafka's names in brackets):

* :class:`PartitionRecord` (``PartitionRecord`` / ``PartitionChangeRecord``): the whole
  state of a partition after a change.  Kafka's change records carry only the changed
  fields; folding them gives this state.
* :class:`RegisterBrokerRecord`: a broker incarnation registered, fenced, with its broker
  epoch (the record's own offset, as ``ClusterControlManager.registerBroker`` assigns it).
* :class:`BrokerFencingRecord` (``BrokerRegistrationChangeRecord`` / ``FenceBrokerRecord`` /
  ``UnfenceBrokerRecord``).
"""

from __future__ import annotations

from typing import Union

import attrs

#: A user-topic partition is an int; an internal topic's partition is its name.
PartitionId = Union[int, str]

OFFSETS_TOPIC = "__consumer_offsets"


def offsets_partition(index: int) -> str:
    return f"{OFFSETS_TOPIC}-{index}"


def is_user_partition(partition: PartitionId) -> bool:
    return isinstance(partition, int)


@attrs.frozen(slots=True)
class PartitionState:
    """One partition as the metadata log describes it (``PartitionRegistration``)."""

    partition: PartitionId
    replicas: tuple[str, ...]
    isr: tuple[str, ...]
    leader: str | None
    leader_epoch: int = 0
    partition_epoch: int = 0


@attrs.frozen(slots=True)
class PartitionRecord:
    state: PartitionState
    # The new leader was elected from outside the ISR (``unclean.leader.election.enable``).
    unclean: bool = False


@attrs.frozen(slots=True)
class RegisterBrokerRecord:
    broker: str
    broker_epoch: int
    incarnation: int


@attrs.frozen(slots=True)
class BrokerFencingRecord:
    broker: str
    broker_epoch: int
    fenced: bool


MetadataRecord = Union[PartitionRecord, RegisterBrokerRecord, BrokerFencingRecord]


@attrs.frozen(slots=True)
class BrokerRegistration:
    """``BrokerRegistration``: one incarnation of a broker as the log knows it."""

    broker_epoch: int
    incarnation: int
    fenced: bool


class MetadataImage:
    """The state after replaying a prefix of the metadata log (``MetadataImage``)."""

    __slots__ = ("partitions", "brokers", "offset")

    def __init__(self) -> None:
        self.partitions: dict[PartitionId, PartitionState] = {}
        self.brokers: dict[str, BrokerRegistration] = {}
        self.offset = 0   # records applied; the next record to fetch

    def apply(self, record: MetadataRecord) -> PartitionId | None:
        """Apply the next record; returns the partition it changed, if any."""
        self.offset += 1
        if isinstance(record, PartitionRecord):
            self.partitions[record.state.partition] = record.state
            return record.state.partition
        if isinstance(record, RegisterBrokerRecord):
            self.brokers[record.broker] = BrokerRegistration(
                record.broker_epoch, record.incarnation, fenced=True)
        elif isinstance(record, BrokerFencingRecord):
            current = self.brokers[record.broker]
            if current.broker_epoch == record.broker_epoch:
                self.brokers[record.broker] = attrs.evolve(current, fenced=record.fenced)
        return None

    def leader_of(self, partition: PartitionId) -> str | None:
        state = self.partitions.get(partition)
        return state.leader if state is not None else None

    def is_active(self, broker: str) -> bool:
        """Registered and unfenced (``ClusterControlManager.isActive``)."""
        registration = self.brokers.get(broker)
        return registration is not None and not registration.fenced

    def broker_epoch(self, broker: str) -> int | None:
        registration = self.brokers.get(broker)
        return registration.broker_epoch if registration is not None else None
