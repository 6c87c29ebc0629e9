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
MAX_SEQUENCE = 2**31 - 1

OUT_OF_ORDER_SEQUENCE_NUMBER = "OUT_OF_ORDER_SEQUENCE_NUMBER"
INVALID_PRODUCER_EPOCH = "INVALID_PRODUCER_EPOCH"


def in_sequence(last: int, next_sequence: int) -> bool:
    """``ProducerAppendInfo.inSequence``: sequences wrap after ``Integer.MAX_VALUE``."""
    return next_sequence == last + 1 or (next_sequence == 0 and last == MAX_SEQUENCE)


@attrs.frozen(slots=True)
class BatchHeader:
    """The idempotence fields of a produced batch's header."""

    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    sequence: int = NO_SEQUENCE

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


class ProducerStates:
    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[int, ProducerStateEntry] = {}

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
            entry = self.entries[record.producer_id] = ProducerStateEntry(
                record.producer_id, record.producer_epoch)
        entry.batches.append(BatchMetadata(record.sequence,
                                           record.sequence + record.batch_count - 1,
                                           record.offset - record.batch_index))

    def validate(self, producer_id: int, producer_epoch: int, sequence: int,
                 count: int = 1) -> Validation:
        """The leader's checks on a client's batch of ``count`` records starting at
        ``sequence``, in Kafka's order; a duplicate must match a retained batch's whole
        sequence range (``batchWithSequenceRange``)."""
        if producer_id == NO_PRODUCER_ID:
            return APPEND
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
