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

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


@attrs.frozen(slots=True)
class Record:
    offset: int
    epoch: int
    key: str
    value: int
    producer: str


class ReplicaLog:
    __slots__ = ("records", "epochs", "hw", "flushed")

    def __init__(self) -> None:
        self.records: list[Record] = []
        # (epoch, start_offset), strictly increasing in both.
        self.epochs: list[tuple[int, int]] = []
        self.hw = 0
        self.flushed = 0

    @property
    def leo(self) -> int:
        return len(self.records)

    def latest_epoch(self) -> int:
        return self.epochs[-1][0] if self.epochs else UNDEFINED_EPOCH

    def epoch_before(self, offset: int) -> int:
        """Epoch of the record just below ``offset`` (the fetcher's lastFetchedEpoch)."""
        if offset <= 0 or offset > len(self.records):
            return UNDEFINED_EPOCH
        return self.records[offset - 1].epoch

    def assign_epoch_start(self, epoch: int, offset: int) -> None:
        """Record that ``epoch`` starts at ``offset`` (Kafka's ``assign``)."""
        if self.epochs and self.epochs[-1][0] >= epoch:
            return
        # An entry starting at or after the new one is superseded (cannot normally happen).
        while self.epochs and self.epochs[-1][1] > offset:
            self.epochs.pop()
        self.epochs.append((epoch, offset))

    def append(self, epoch: int, key: str, value: int, producer: str) -> Record:
        record = Record(len(self.records), epoch, key, value, producer)
        self.assign_epoch_start(epoch, record.offset)
        self.records.append(record)
        return record

    def append_replicated(self, record: Record) -> None:
        """A follower copies a leader's record, keeping its offset and epoch."""
        assert record.offset == len(self.records), "replication must be contiguous"
        self.assign_epoch_start(record.epoch, record.offset)
        self.records.append(record)

    def truncate_to(self, offset: int) -> int:
        """Drop every record at or above ``offset``; returns how many were dropped."""
        offset = max(0, offset)
        dropped = len(self.records) - offset
        if dropped <= 0:
            return 0
        del self.records[offset:]
        # Kafka's LeaderEpochFileCache.truncateFromEnd: epochs starting at or past the cut go.
        while self.epochs and self.epochs[-1][1] >= offset:
            self.epochs.pop()
        self.hw = min(self.hw, offset)
        self.flushed = min(self.flushed, offset)
        return dropped

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """KIP-279: (largest epoch <= ``epoch`` held here, the offset where it ends).

        The end of the latest epoch is the log end offset; the end of an older one is the
        start of the next.  ``(UNDEFINED_EPOCH, UNDEFINED_OFFSET)`` if no epoch qualifies.
        """
        found = None
        for i in range(len(self.epochs) - 1, -1, -1):
            if self.epochs[i][0] <= epoch:
                found = i
                break
        if found is None:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if found == len(self.epochs) - 1:
            return self.epochs[found][0], self.leo
        return self.epochs[found][0], self.epochs[found + 1][1]

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
        """The follower's side: how far to truncate given the leader's diverging epoch.

        As in ``AbstractFetcherThread``: take the end of the same (or nearest older) epoch
        locally and truncate to the smaller of the two ends.  If that does not settle the
        divergence, the next fetch carries an older ``lastFetchedEpoch`` and repeats.
        """
        leader_epoch, leader_end = diverging
        if leader_epoch == UNDEFINED_EPOCH:
            return 0
        _, local_end = self.end_offset_for_epoch(leader_epoch)
        if local_end == UNDEFINED_OFFSET:
            return 0
        return min(leader_end, local_end, self.leo)

    def matches_prefix(self, other: "ReplicaLog", upto: int) -> bool:
        upto = min(upto, self.leo, other.leo)
        return self.records[:upto] == other.records[:upto]
