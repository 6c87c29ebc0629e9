"""One replica's copy of a partition: records, log end offset, high watermark, epoch cache.

The leader-epoch cache (KIP-101) maps each leader epoch to the offset where that epoch's
records start.  ``end_offset_for_epoch`` answers Kafka's OffsetsForLeaderEpoch question
with KIP-279's rule (the largest epoch not above the one asked), and it is what lets a
follower or consumer find where its log diverged from the leader's (KIP-320, and the
``lastFetchedEpoch`` field of Fetch since Kafka 2.7).

``flushed`` marks how much of the log is on disk; a process crash keeps the whole log
(the page cache survives), a power loss keeps only ``records[:flushed]`` (not driven yet).
"""

from __future__ import annotations

import attrs

from model.broker.producer_state import (ABORT, COMMIT, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
                                         NO_SEQUENCE, ProducerStates)

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


@attrs.frozen(slots=True)
class Record:
    """One record, with what it needs of its batch's header: the idempotent producer's
    fields (KIP-98: producer id, producer epoch, the batch's base sequence; -1 without
    idempotence), the batch's record count and this record's place in it.  Batches are
    appended and replicated whole, so a replica can rebuild per-batch producer state."""

    offset: int
    epoch: int
    key: str
    value: int
    producer: str
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    sequence: int = NO_SEQUENCE
    batch_count: int = 1
    batch_index: int = 0
    # Transactions (KIP-98): a transactional producer's batch, or a control batch (a
    # COMMIT or ABORT marker, one record) with the coordinator epoch that wrote it.
    transactional: bool = False
    control: str | None = None
    coordinator_epoch: int = -1

    @property
    def ends_batch(self) -> bool:
        return self.batch_index == self.batch_count - 1

    @property
    def is_data(self) -> bool:
        return self.control is None


class ReplicaLog:
    __slots__ = ("records", "epochs", "hw", "flushed", "producers", "snapshots")

    def __init__(self) -> None:
        self.records: list[Record] = []
        # (epoch, start_offset), strictly increasing in both.
        self.epochs: list[tuple[int, int]] = []
        self.hw = 0
        self.flushed = 0
        # Built from the records as they are appended, by leader and follower alike, and
        # reloaded after a truncation or a restart (ProducerStateManager).  The offsets of
        # the producer-state snapshot files, which are on disk like the log.
        self.producers = ProducerStates()
        self.snapshots: list[int] = []

    @property
    def leo(self) -> int:
        return len(self.records)

    def latest_epoch(self) -> int:
        return self.epochs[-1][0] if self.epochs else UNDEFINED_EPOCH

    def assign_epoch_start(self, epoch: int, offset: int) -> None:
        """Record that ``epoch`` starts at ``offset`` (``LeaderEpochFileCache.assign``).

        As in Kafka, a new entry first removes every entry at its end whose epoch or start
        offset is not below the new one's, so the cache stays monotonic in both; an entry
        left by a leader that appended nothing disappears once older-epoch records are
        copied over it.
        """
        if self.epochs and self.epochs[-1][0] == epoch and offset >= self.epochs[-1][1]:
            return
        while self.epochs and (self.epochs[-1][0] >= epoch or self.epochs[-1][1] >= offset):
            self.epochs.pop()
        self.epochs.append((epoch, offset))

    def append(self, epoch: int, key: str, value: int, producer: str) -> Record:
        """Append a batch of one record without a producer id."""
        return self.append_batch(epoch, [(key, value, producer)])[0]

    def append_batch(self, epoch: int, records: list[tuple[str, int, str]],
                     producer_id: int = NO_PRODUCER_ID,
                     producer_epoch: int = NO_PRODUCER_EPOCH,
                     base_sequence: int = NO_SEQUENCE,
                     transactional: bool = False) -> list[Record]:
        """The leader appends one batch: consecutive offsets, one header."""
        appended = []
        for index, (key, value, producer) in enumerate(records):
            record = Record(len(self.records), epoch, key, value, producer, producer_id,
                            producer_epoch, base_sequence, len(records), index,
                            transactional)
            self.assign_epoch_start(epoch, record.offset)
            self.records.append(record)
            self.producers.update(record)
            appended.append(record)
        return appended

    def append_marker(self, epoch: int, producer_id: int, producer_epoch: int,
                      commit: bool, coordinator_epoch: int) -> Record:
        """The leader appends a transaction marker: a control batch of one record."""
        control = COMMIT if commit else ABORT
        record = Record(len(self.records), epoch, f"__{control.lower()}", -1, "coordinator",
                        producer_id, producer_epoch, NO_SEQUENCE, 1, 0, True, control,
                        coordinator_epoch)
        self.assign_epoch_start(epoch, record.offset)
        self.records.append(record)
        self.producers.update(record)
        return record

    def last_stable_offset(self) -> int:
        return self.producers.last_stable_offset(self.hw)

    def append_replicated(self, record: Record) -> None:
        """A follower copies a leader's record, keeping its offset and epoch."""
        assert record.offset == len(self.records), "replication must be contiguous"
        self.assign_epoch_start(record.epoch, record.offset)
        self.records.append(record)
        self.producers.update(record)

    def truncate_to(self, offset: int) -> int:
        """Drop every record at or above ``offset``; returns how many were dropped.

        Like ``UnifiedLog.truncateTo``, truncating at or past the log end drops no record
        but still removes epoch entries that start at the log end (a leader that assigned
        an epoch and appended nothing before losing leadership).
        """
        offset = max(0, min(offset, len(self.records)))
        dropped = len(self.records) - offset
        del self.records[offset:]
        # LeaderEpochFileCache.truncateFromEnd: epochs starting at or past the cut go.
        while self.epochs and self.epochs[-1][1] >= offset:
            self.epochs.pop()
        self.hw = min(self.hw, offset)
        self.flushed = min(self.flushed, offset)
        if dropped:
            self.reload_producer_state()
        return dropped

    def recover_after_kill(self) -> None:
        """A broker restarted after a process kill (``LogLoader.recoverLog``): the
        active segment is recovered into a fresh producer state and a snapshot is taken
        at its end (``recoverSegment``); loading then reads that snapshot, so every
        producer keeps only its last batch."""
        end = len(self.records)
        if not self.snapshots or self.snapshots[-1] != end:
            self.snapshots = [s for s in self.snapshots if s < end] + [end]
        self.reload_producer_state()

    def reload_producer_state(self) -> None:
        """``UnifiedLog.rebuildProducerState`` at the log end: drop snapshots past it,
        load the latest one left, replay the records after it, snapshot the end."""
        end = len(self.records)
        self.snapshots = [s for s in self.snapshots if s <= end]
        latest = self.snapshots[-1] if self.snapshots else None
        self.producers = ProducerStates.reload(self.records, latest)
        if latest is None or end > latest:
            self.snapshots.append(end)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """Kafka's ``LeaderEpochFileCache.endOffsetFor`` (KIP-101, KIP-279).

        * the latest epoch ends at the log end offset;
        * otherwise the answer is the largest epoch not above the one asked (or the asked
          epoch itself, if it is older than every cached one) and the start offset of the
          next cached epoch;
        * an epoch newer than every cached one, or an undefined one, has no answer:
          ``(UNDEFINED_EPOCH, UNDEFINED_OFFSET)``.
        """
        if epoch == UNDEFINED_EPOCH or not self.epochs:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if self.epochs[-1][0] == epoch:
            return epoch, self.leo
        higher = next((i for i, (e, _) in enumerate(self.epochs) if e > epoch), None)
        if higher is None:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if higher == 0:
            return epoch, self.epochs[0][1]
        return self.epochs[higher - 1][0], self.epochs[higher][1]

    def diverging_epoch(self, fetch_offset: int, last_fetched_epoch: int) -> tuple[int, int] | None:
        """The leader's side of fetch validation: where a fetcher's log diverges, if it does.

        Kafka (``Partition.fetchRecords``) compares the fetcher's ``lastFetchedEpoch`` with
        its own cache: if the leader has no such epoch, or that epoch ends before the fetch
        offset, the fetcher holds records the leader does not, and must truncate.
        """
        if last_fetched_epoch == UNDEFINED_EPOCH or fetch_offset == 0:
            return None
        epoch, end = self.end_offset_for_epoch(last_fetched_epoch)
        if epoch < last_fetched_epoch or end < fetch_offset:
            return epoch, end
        return None

    def truncation_offset(self, diverging: tuple[int, int]) -> int:
        """The follower's side: where to truncate, given the leader's diverging epoch.

        ``AbstractFetcherThread.getOffsetTruncationState``: with no usable answer from the
        leader, fall back to the high watermark; if the leader's epoch is one we do not
        hold, truncate to the end of our own nearest older epoch (and the next fetch,
        carrying an older ``lastFetchedEpoch``, goes another round); otherwise truncate to
        the smaller of the two ends of that epoch.
        """
        leader_epoch, leader_end = diverging
        if leader_end == UNDEFINED_OFFSET:
            return min(self.hw, self.leo)
        if leader_epoch == UNDEFINED_EPOCH:
            return min(leader_end, self.leo)
        local_epoch, local_end = self.end_offset_for_epoch(leader_epoch)
        if local_end == UNDEFINED_OFFSET:
            return min(self.hw, self.leo)
        if local_epoch != leader_epoch:
            return min(local_end, self.leo)
        return min(local_end, leader_end, self.leo)
