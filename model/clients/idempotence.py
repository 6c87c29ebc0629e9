"""The idempotent producer's bookkeeping: the Java client's ``TransactionManager`` for a
producer without a ``transactional.id`` (KIP-98, with KIP-360's epoch bump, 2.5+).

* The producer id comes from ``InitProducerId`` to the least loaded broker; until it
  arrives nothing is drained (``RecordAccumulator.shouldStopDrainBatchesForPartition``).
* A batch gets its sequence at its first drain and keeps it on every retry; a retry may
  only go when it is the partition's lowest in-flight sequence.
* OUT_OF_ORDER_SEQUENCE_NUMBER is always retried; it bumps the epoch when the refused
  batch is the one right after the last acknowledged sequence (a real gap), or the one
  right after a range whose outcome is unknown (``TransactionManager.canRetry``).
* A batch that expires after having been retried leaves its partition *unresolved*: no
  new batch goes until the partition has nothing in flight, and then the epoch is bumped
  unless everything sent was acknowledged (``maybeResolveSequences``).
* An epoch bump is local, epoch + 1 (a new producer id at ``Short.MAX_VALUE``): the
  in-flight batches of the partitions that asked for it are renumbered from 0 under the
  new epoch; other partitions finish their in-flight batches under the old one first
  (``bumpIdempotentProducerEpoch``, ``TxnPartitionEntry.startSequencesAtBeginning``).

The source, class by class, is cited in ``docs/model.md`` (Idempotent producer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from model import messages as m

if TYPE_CHECKING:
    from model.clients.producer import Batch

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
MAX_EPOCH = 2**15 - 1     # Short.MAX_VALUE


@attrs.define
class PartitionSequences:
    """``TxnPartitionEntry``: one partition's sequence state."""

    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = -1
    next_sequence: int = 0
    last_acked: int = NO_SEQUENCE
    # Batches drained at least once and not yet completed, in sequence order.
    in_flight: list["Batch"] = attrs.field(factory=list)

    def first_in_flight_sequence(self) -> int:
        return self.in_flight[0].sequence if self.in_flight else NO_SEQUENCE


class IdempotenceManager:
    def __init__(self, transactional: bool = False) -> None:
        # A transactional producer never bumps its epoch locally: a failed batch makes
        # the transaction abortable, and the epoch is bumped through InitProducerId
        # after the abort (model.clients.transactions).
        self.transactional = transactional
        self.producer_id = NO_PRODUCER_ID
        self.producer_epoch = -1
        self.partitions: dict[int, PartitionSequences] = {}
        self.epoch_bump_required = False
        self.to_rewrite: set[int] = set()
        # Partition -> the sequence after the expired, retried batch (unknown outcome).
        self.unresolved: dict[int, int] = {}

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id != NO_PRODUCER_ID

    def entry(self, partition: int) -> PartitionSequences:
        return self.partitions.setdefault(partition, PartitionSequences())

    def set_producer_id(self, producer_id: int, producer_epoch: int) -> None:
        self.producer_id, self.producer_epoch = producer_id, producer_epoch

    # -- draining ----------------------------------------------------------------------

    def may_drain(self, batch: "Batch") -> bool:
        """Not ``shouldStopDrainBatchesForPartition``."""
        if not self.has_producer_id:
            return False
        entry = self.entry(batch.partition)
        if batch.sequence == NO_SEQUENCE:
            stale = (entry.producer_id, entry.producer_epoch) != (self.producer_id,
                                                                  self.producer_epoch)
            if entry.in_flight and stale:
                return False
            if batch.partition in self.unresolved:
                return False
            return True
        first = entry.first_in_flight_sequence()
        return first == NO_SEQUENCE or batch.sequence == first

    def assign(self, batch: "Batch") -> None:
        """A batch's first drain: the partition's next sequence under the current
        producer id and epoch (a partition with nothing in flight from an older epoch
        starts again at 0, ``maybeUpdateProducerIdAndEpoch``)."""
        if batch.sequence != NO_SEQUENCE:
            return
        entry = self.entry(batch.partition)
        if (entry.producer_id, entry.producer_epoch) != (self.producer_id,
                                                         self.producer_epoch):
            assert not entry.in_flight
            entry.producer_id, entry.producer_epoch = self.producer_id, self.producer_epoch
            entry.next_sequence, entry.last_acked = 0, NO_SEQUENCE
        batch.producer_id, batch.producer_epoch = self.producer_id, self.producer_epoch
        batch.sequence = entry.next_sequence
        entry.next_sequence += len(batch.records)
        entry.in_flight.append(batch)

    # -- outcomes ----------------------------------------------------------------------

    def completed(self, batch: "Batch") -> None:
        """``handleCompletedBatch`` (also for a late answer to an expired batch)."""
        entry = self.entry(batch.partition)
        if batch.producer_id == entry.producer_id and batch.producer_epoch == entry.producer_epoch:
            entry.last_acked = max(entry.last_acked, batch.sequence + len(batch.records) - 1)
        self._remove(batch)

    def can_retry(self, batch: "Batch", error: str) -> bool:
        """``TransactionManager.canRetry`` for the errors whose answer it decides: a
        sequence error is always retried, perhaps after an epoch bump; an older epoch is
        not retriable."""
        if error == m.OUT_OF_ORDER_SEQUENCE_NUMBER:
            partition = batch.partition
            entry = self.entry(partition)
            is_next = batch.sequence - entry.last_acked == 1
            if partition not in self.unresolved and (batch.reopened or not is_next):
                return True
            if self.transactional:
                return False
            if partition not in self.unresolved or self.unresolved[partition] == batch.sequence:
                self.request_epoch_bump(partition)
            return True
        return error != m.INVALID_PRODUCER_EPOCH

    def failed(self, batch: "Batch", error: str, adjust: bool) -> None:
        """``handleFailedBatch``: a sequence error, or any failure while retries were
        left, bumps the epoch of the batch's partition; a timeout does not."""
        self._remove(batch)
        if self.transactional:
            return
        if error == m.OUT_OF_ORDER_SEQUENCE_NUMBER or adjust:
            self.request_epoch_bump(batch.partition)

    def expired(self, batch: "Batch") -> None:
        """A batch failed by ``delivery.timeout.ms``: if it had been retried its
        partition's sequences are unresolved (``markSequenceUnresolved``)."""
        self._remove(batch)
        if batch.in_retry:
            after = batch.sequence + len(batch.records)
            self.unresolved[batch.partition] = max(self.unresolved.get(batch.partition, 0),
                                                   after)

    def _remove(self, batch: "Batch") -> None:
        entry = self.entry(batch.partition)
        if batch in entry.in_flight:
            entry.in_flight.remove(batch)

    # -- epoch bumps -------------------------------------------------------------------

    def request_epoch_bump(self, partition: int) -> None:
        self.epoch_bump_required = True
        self.to_rewrite.add(partition)

    def resolve_sequences(self) -> None:
        """``maybeResolveSequences``: an unresolved partition with nothing in flight is
        resolved if everything sent was acknowledged, else its epoch is bumped."""
        for partition in sorted(self.unresolved):
            entry = self.entry(partition)
            if entry.in_flight:
                continue
            if entry.next_sequence - entry.last_acked != 1:
                self.request_epoch_bump(partition)
            del self.unresolved[partition]

    def unresolved_needs_bump(self) -> bool:
        """``maybeResolveSequences`` for a transactional producer: an unresolved
        partition with nothing in flight is resolved if everything sent was
        acknowledged; otherwise the transaction must abort and bump its epoch."""
        needs = False
        for partition in sorted(self.unresolved):
            entry = self.entry(partition)
            if entry.in_flight:
                continue
            if entry.next_sequence - entry.last_acked != 1:
                needs = True
            del self.unresolved[partition]
        return needs

    def reset_sequences(self) -> None:
        """``resetSequenceNumbers`` after InitProducerId bumped the epoch: every
        partition starts again at sequence 0."""
        self.partitions = {p: e for p, e in self.partitions.items() if e.in_flight}
        self.unresolved.clear()

    def bump_epoch_if_needed(self) -> None:
        """``bumpIdempotentEpochAndResetIdIfNeeded``: at an exhausted epoch the producer
        id is reset, and the producer asks for a new one before draining again."""
        if not self.epoch_bump_required:
            return
        if self.producer_epoch >= MAX_EPOCH:
            self.producer_id, self.producer_epoch = NO_PRODUCER_ID, -1
        else:
            self.producer_epoch += 1
        for partition in sorted(self.to_rewrite):
            entry = self.entry(partition)
            entry.in_flight.sort(key=lambda b: (b.producer_id, b.producer_epoch, b.sequence))
            sequence = 0
            for batch in entry.in_flight:
                batch.producer_id, batch.producer_epoch = self.producer_id, self.producer_epoch
                batch.sequence, batch.reopened = sequence, True
                sequence += len(batch.records)
            entry.producer_id, entry.producer_epoch = self.producer_id, self.producer_epoch
            entry.next_sequence, entry.last_acked = sequence, NO_SEQUENCE
            self.unresolved.pop(partition, None)
        self.to_rewrite.clear()
        self.epoch_bump_required = False
