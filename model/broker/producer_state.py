"""Per-producer state of one replica's log: Kafka's ``ProducerStateManager``.

For every producer id that wrote to the log it keeps the producer epoch and the
metadata of the last five batches (``ProducerStateEntry.NUM_BATCHES_TO_RETAIN``).  The
leader consults it before appending a client's batch
(``UnifiedLog.analyzeAndValidateProducerState``):

1. a batch of the current epoch whose sequence one of the retained batches has is a
   duplicate: it is not appended, and the original batch's offset is returned as success
   (``ProducerStateEntry.findDuplicateBatch``);
2. an epoch older than the producer's is refused, INVALID_PRODUCER_EPOCH
   (``ProducerAppendInfo.checkProducerEpoch``; only logged for replication);
3. a new epoch must start at sequence 0, and within an epoch each sequence must follow
   the last one, else OUT_OF_ORDER_SEQUENCE_NUMBER; a producer id the log has no state
   for is accepted at any sequence (``ProducerAppendInfo.checkSequence``: "accept writes
   with any sequence number" when there is no current epoch).

The state is built from the records themselves, by leaders and followers alike (so a
follower that becomes leader has it, ``Partition.makeLeader`` does not reload it).  When
the log is truncated below its end, and when a restarted broker loads the log, the state
is reloaded (``UnifiedLog.rebuildProducerState`` -> ``truncateAndReload``): from the
latest snapshot at or below the end, which keeps only the *last* batch of each producer
(``ProducerStateManager.writeSnapshot``), then by replaying the records after it; a
snapshot is then taken at the end.  So after a reload a producer's duplicate window may
be shorter than five batches, as in Kafka.  Snapshots taken at segment roll and clean
shutdown do not arise (one segment; faults are kills).  Producer-id expiry
(``producer.id.expiration.ms``, one day of record timestamps) is beyond any run's clock
and not modelled.

Transactions (KIP-98) live in the same state: a transactional batch of a producer with
no open transaction on this partition opens one at its first offset
(``ProducerAppendInfo.append``: ``currentTxnFirstOffset``); a control record (COMMIT or
ABORT marker, ``appendEndTxnMarker``) closes it, after checking that its producer epoch is
not older than the producer's (INVALID_PRODUCER_EPOCH) and its coordinator epoch not
older than the last marker's (TRANSACTION_COORDINATOR_FENCED); a marker with a newer
epoch starts that epoch (``maybeUpdateProducerEpoch``).  Closed transactions are kept as
``CompletedTxn`` (aborted ones are Kafka's transaction index), which give the last stable
offset (``firstUnstableOffset``) and the aborted transactions a READ_COMMITTED fetch
returns (``collectAbortedTxns``).  A non-transactional batch from a producer with an open
transaction is refused (INVALID_TXN_STATE).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Iterable

import attrs

if TYPE_CHECKING:
    from model.broker.log import Record

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NUM_BATCHES_TO_RETAIN = 5
COMMIT, ABORT = "COMMIT", "ABORT"   # ControlRecordType
MAX_SEQUENCE = 2**31 - 1

OUT_OF_ORDER_SEQUENCE_NUMBER = "OUT_OF_ORDER_SEQUENCE_NUMBER"
INVALID_PRODUCER_EPOCH = "INVALID_PRODUCER_EPOCH"
INVALID_TXN_STATE = "INVALID_TXN_STATE"
TRANSACTION_COORDINATOR_FENCED = "TRANSACTION_COORDINATOR_FENCED"


def in_sequence(last: int, next_sequence: int) -> bool:
    """``ProducerAppendInfo.inSequence``: sequences wrap after ``Integer.MAX_VALUE``."""
    return next_sequence == last + 1 or (next_sequence == 0 and last == MAX_SEQUENCE)


@attrs.frozen(slots=True)
class BatchHeader:
    """The idempotence fields of a produced batch's header."""

    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    sequence: int = NO_SEQUENCE
    transactional_id: str | None = None

    @property
    def transactional(self) -> bool:
        return self.transactional_id is not None

    def fields(self) -> tuple[int, int, int]:
        return self.producer_id, self.producer_epoch, self.sequence


NO_HEADER = BatchHeader()


@attrs.frozen(slots=True)
class BatchMetadata:
    """``BatchMetadata``: a retained batch's sequence range and first offset."""

    first_sequence: int
    last_sequence: int
    offset: int


@attrs.define(slots=True)
class ProducerStateEntry:
    producer_id: int
    producer_epoch: int
    batches: deque[BatchMetadata] = attrs.field(
        factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    current_txn_first_offset: int | None = None
    coordinator_epoch: int = -1

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else NO_SEQUENCE


@attrs.frozen(slots=True)
class Validation:
    """The leader's decision on one client batch: append it, refuse it with ``error``,
    or answer it with ``duplicate_of``, the offset the same batch already has."""

    error: str | None = None
    duplicate_of: int | None = None


APPEND = Validation()


@attrs.frozen(slots=True)
class CompletedTxn:
    """A transaction closed by its marker at ``last_offset`` (``CompletedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool


class ProducerStates:
    __slots__ = ("entries", "completed")

    def __init__(self) -> None:
        self.entries: dict[int, ProducerStateEntry] = {}
        self.completed: list[CompletedTxn] = []

    @classmethod
    def rebuild(cls, records: Iterable["Record"]) -> "ProducerStates":
        """The state after appending ``records`` in order (origin REPLICATION: no check)."""
        states = cls()
        for record in records:
            states.update(record)
        return states

    @classmethod
    def reload(cls, records: list["Record"], snapshot: int | None) -> "ProducerStates":
        """``truncateAndReload`` then replay: the snapshot taken at offset ``snapshot``
        (one batch per producer), then every record from there to the log end."""
        start = 0 if snapshot is None else snapshot
        states = cls.rebuild(records[:start])
        for entry in states.entries.values():
            while len(entry.batches) > 1:
                entry.batches.popleft()
        for record in records[start:]:
            states.update(record)
        return states

    def update(self, record: "Record") -> None:
        """Account for an appended batch, at its last record
        (``ProducerAppendInfo.appendDataBatch``): a new epoch clears the retained
        batches (``maybeUpdateProducerEpoch``)."""
        if record.producer_id == NO_PRODUCER_ID or not record.ends_batch:
            return
        entry = self.entries.get(record.producer_id)
        if entry is None or entry.producer_epoch != record.producer_epoch:
            old = entry
            entry = self.entries[record.producer_id] = ProducerStateEntry(
                record.producer_id, record.producer_epoch)
            if old is not None:
                entry.current_txn_first_offset = old.current_txn_first_offset
                entry.coordinator_epoch = old.coordinator_epoch
        if record.control is not None:
            entry.coordinator_epoch = record.coordinator_epoch
            if entry.current_txn_first_offset is not None:
                self.completed.append(CompletedTxn(
                    record.producer_id, entry.current_txn_first_offset, record.offset,
                    record.control == ABORT))
                entry.current_txn_first_offset = None
            return
        first_offset = record.offset - record.batch_index
        if record.transactional and entry.current_txn_first_offset is None:
            entry.current_txn_first_offset = first_offset
        entry.batches.append(BatchMetadata(record.sequence,
                                           record.sequence + record.batch_count - 1,
                                           first_offset))

    # -- transactions ------------------------------------------------------------------

    def ongoing(self, producer_id: int) -> bool:
        entry = self.entries.get(producer_id)
        return entry is not None and entry.current_txn_first_offset is not None

    def validate_marker(self, producer_id: int, producer_epoch: int,
                        coordinator_epoch: int) -> str | None:
        """``ProducerAppendInfo.appendEndTxnMarker``'s checks."""
        entry = self.entries.get(producer_id)
        if entry is None:
            return None
        if producer_epoch < entry.producer_epoch:
            return INVALID_PRODUCER_EPOCH
        if entry.coordinator_epoch > coordinator_epoch:
            return TRANSACTION_COORDINATOR_FENCED
        return None

    def last_stable_offset(self, high_watermark: int) -> int:
        """``firstUnstableOffset`` capped by the HW: the first offset of the oldest open
        transaction, or of a closed one whose marker is not yet below the HW."""
        unstable = [e.current_txn_first_offset for e in self.entries.values()
                    if e.current_txn_first_offset is not None]
        unstable.extend(t.first_offset for t in self.completed
                        if t.last_offset >= high_watermark)
        return min([high_watermark, *unstable])

    def aborted_transactions(self, fetch_offset: int,
                             upper_bound: int) -> tuple[tuple[int, int], ...]:
        """``collectAbortedTxns``: aborted transactions overlapping
        [fetch_offset, upper_bound), as (producer id, first offset)."""
        return tuple((t.producer_id, t.first_offset) for t in self.completed
                     if t.aborted and t.last_offset >= fetch_offset
                     and t.first_offset < upper_bound)

    def validate(self, producer_id: int, producer_epoch: int, sequence: int,
                 count: int = 1, transactional: bool = False) -> Validation:
        """The leader's checks on a client's batch of ``count`` records starting at
        ``sequence``, in Kafka's order; a duplicate must match a retained batch's whole
        sequence range (``batchWithSequenceRange``)."""
        if producer_id == NO_PRODUCER_ID:
            return APPEND
        validation = self._validate_sequence(producer_id, producer_epoch, sequence, count)
        if validation is APPEND and not transactional and self.ongoing(producer_id):
            return Validation(INVALID_TXN_STATE)
        return validation

    def validate_coordinator_append(self, producer_id: int,
                                    producer_epoch: int) -> Validation:
        """A batch the group coordinator writes for a producer (``TxnOffsetCommit``,
        origin COORDINATOR): ``ProducerAppendInfo`` checks only its epoch; sequence
        numbers belong to batches a client sends."""
        entry = self.entries.get(producer_id)
        if entry is not None and producer_epoch < entry.producer_epoch:
            return Validation(INVALID_PRODUCER_EPOCH)
        return APPEND

    def _validate_sequence(self, producer_id: int, producer_epoch: int, sequence: int,
                           count: int) -> Validation:
        last = sequence + count - 1
        entry = self.entries.get(producer_id)
        if entry is not None and entry.producer_epoch == producer_epoch:
            for batch in entry.batches:
                if (batch.first_sequence, batch.last_sequence) == (sequence, last):
                    return Validation(duplicate_of=batch.offset)
        current_epoch = entry.producer_epoch if entry is not None else NO_PRODUCER_EPOCH
        if producer_epoch < current_epoch:
            return Validation(INVALID_PRODUCER_EPOCH)
        if producer_epoch != current_epoch:
            if sequence != 0 and current_epoch != NO_PRODUCER_EPOCH:
                return Validation(OUT_OF_ORDER_SEQUENCE_NUMBER)
            return APPEND
        assert entry is not None
        if not in_sequence(entry.last_sequence, sequence):
            return Validation(OUT_OF_ORDER_SEQUENCE_NUMBER)
        return APPEND
