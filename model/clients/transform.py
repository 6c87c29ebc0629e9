"""Consume-transform-produce: the application loop of Kafka's exactly-once processing.

With ``kafkacheck.processing=transform`` each consumer process also holds a
transactional producer (``transactional.id`` ``transform-cN``, so a restarted process
fences the previous one's producer, KIP-98), and its loop is the one of Kafka's
``ExactlyOnceMessageProcessor`` example and KIP-447:

1. ``poll()``; with records, ``beginTransaction()``;
2. for each record ``send(output, key, transform(value))``; the transform keeps the
   input record's value, so the output names its input;
3. ``sendOffsetsToTransaction(positions, consumer.groupMetadata())``: the group
   coordinator refuses a generation that has moved on (ILLEGAL_GENERATION,
   UNKNOWN_MEMBER_ID: the member was fenced, KIP-447), and the transaction must abort.
   ``kafkacheck.commit.strategy=transaction-group-id`` uses the deprecated
   ``sendOffsetsToTransaction(offsets, groupId)``, which nothing fences;
   ``after-processing`` commits the positions with ``commitSync`` after the
   transaction instead, outside it;
4. ``commitTransaction()``;
5. on an abortable error ``abortTransaction()`` and, with ``kafkacheck.abort.seek=
   committed``, seek back to the committed offsets (``resetToLastCommittedPositions``);
   without it the loop polls on past the aborted records (KAFKA-17582); a fatal error
   (``ProducerFencedException``: a newer process took the transactional id) ends the
   process.

Each call blocks the loop in Java; here the loop waits in the ``waiting`` phase and the
producer's progress (:meth:`on_producer_progress`) moves it on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.clients.partitioner import partition_for_key
from model.broker.log import Record

if TYPE_CHECKING:
    from model.clients.consumer import Consumer
    from model.clients.producer import Producer
    from model.config import ConsumerConfig

OUTPUT_TOPIC = "output"
TRANSFORM_ID_PREFIX = "transform"

# Where the loop is blocked.
IDLE = "idle"                       # not in a transaction (polling, or ready to)
IN_TRANSACTION = "in-transaction"   # begun, records being sent
SENDING_OFFSETS = "sending-offsets"
COMMITTING = "committing"
ABORTING = "aborting"
COMMITTING_OFFSETS = "committing-offsets"   # commitSync after the transaction


def output_partition(index: int) -> str:
    return f"{OUTPUT_TOPIC}-{index}"


def output_partitions(count: int) -> tuple[str, ...]:
    return tuple(output_partition(i) for i in range(count))


def transform_transactional_id(consumer: str) -> str:
    return f"{TRANSFORM_ID_PREFIX}-{consumer}"


def output_producer_name(consumer: str) -> str:
    """The network node of a consumer process's output producer (its own connections,
    the same process and host)."""
    return f"{consumer}.output"


class TransformLoop:
    """The transactional half of one consumer process's loop."""

    def __init__(self, consumer: "Consumer", producer: "Producer") -> None:
        self.consumer = consumer
        self.producer = producer
        self.ctx = consumer.ctx
        self.stage = IDLE
        self.offsets: dict[int, int] = {}
        self._advancing = False
        producer.listener = self.on_producer_progress

    @property
    def config(self) -> "ConsumerConfig":
        return self.ctx.config.consumer

    # -- what the loop may do ----------------------------------------------------------

    def ready(self) -> bool:
        """``initTransactions`` has finished and no transaction is open: the loop may
        poll."""
        txn = self.producer.txn
        return (self.stage == IDLE and self.producer.alive and txn is not None
                and txn.state == "READY")

    # -- the loop's calls --------------------------------------------------------------

    def transform(self, partition: int, record: Record) -> None:
        """``producer.send`` of the record's transform (``beginTransaction`` first)."""
        self.stage = IN_TRANSACTION
        out = output_partition(partition_for_key(record.key, len(self.producer.partitions)))
        self.ctx.event(self.consumer.name, "transform", partition=partition,
                       offset=record.offset, value=record.value, output=out)
        self.producer.send(record.key, out, value=record.value)

    def commit(self, offsets: dict[int, int]) -> None:
        """End the transaction: offsets into it then commit, or (``after-processing``)
        commit and then ``commitSync`` the offsets."""
        self.offsets = offsets
        txn = self.producer.txn
        assert txn is not None
        if self._fenced_if_fatal():
            return
        if txn.state != "IN_TRANSACTION":
            # A send failed: the transaction is abortable, and commit would throw.
            self._abort(txn.last_error or txn.state)
            self.on_producer_progress()
            return
        strategy = self.config.commit_strategy
        if strategy == "after-processing":
            self._commit_transaction()
            self.on_producer_progress()
            return
        self.stage = SENDING_OFFSETS
        membership = self.consumer.membership
        if strategy == "transaction" and membership is not None:
            generation, member_id = self.consumer.group_metadata
            instance_id = membership.instance_id
        else:
            # groupMetadata() outside a group (assign), or the group-id-only form.
            generation, member_id, instance_id = -1, "", None
        self.ctx.event(self.consumer.name, "txn-offsets",
                       offsets={str(p): o for p, o in sorted(offsets.items())},
                       generation=generation, member=member_id)
        txn.send_offsets(offsets, self.config.group_id, generation, member_id,
                         self._offsets_sent, instance_id)
        self.producer.drain()
        self.on_producer_progress()

    def _offsets_sent(self, error: str | None) -> None:
        if self.stage != SENDING_OFFSETS:
            return
        if error is None:
            self._commit_transaction()
            self.on_producer_progress()
            return
        self.ctx.event(self.consumer.name, "txn-offsets-failed", error=error)
        # The producer is in an abortable (or fatal) state; progress decides which.

    def _fenced_if_fatal(self) -> bool:
        """A producer in FATAL_ERROR (fenced by a newer epoch, or a fatal error) can only
        be closed: the application closes both clients and its process ends."""
        txn = self.producer.txn
        if txn is None or txn.state != "FATAL_ERROR":
            return False
        self.stage = IDLE
        self.consumer.output_fenced(txn.last_error or "FATAL_ERROR")
        return True

    def _commit_transaction(self) -> None:
        self.stage = COMMITTING
        self.producer.commit_transaction()

    def _abort(self, reason: str) -> None:
        self.stage = ABORTING
        self.ctx.event(self.consumer.name, "txn-abort", reason=reason)
        self.producer.abort_transaction()

    # -- progress ----------------------------------------------------------------------

    def on_producer_progress(self) -> None:
        """Called after each thing the producer does (and after the loop's own calls):
        move the blocked call on, as often as the producer's state allows."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while self._step():
                pass
        finally:
            self._advancing = False

    def _step(self) -> bool:
        txn = self.producer.txn
        if (txn is None or not self.consumer.alive
                or self.stage in (IDLE, IN_TRANSACTION, COMMITTING_OFFSETS)):
            return False
        if self._fenced_if_fatal():
            return False
        if txn.state == "ABORTABLE_ERROR" and self.stage in (SENDING_OFFSETS, COMMITTING):
            # commitTransaction / sendOffsetsToTransaction threw: abortTransaction().
            self._abort(txn.last_error or "ABORTABLE_ERROR")
            return True
        if txn.state != "READY" or self.stage == SENDING_OFFSETS:
            return False    # still committing, aborting, bumping the epoch, or sending
        committed = self.producer.last_transaction_committed
        stage, self.stage = self.stage, IDLE
        if stage == COMMITTING and committed:
            self.ctx.event(self.consumer.name, "txn-committed")
            if self.config.commit_strategy == "after-processing":
                self.stage = COMMITTING_OFFSETS
                self.consumer.commit_outside_transaction(self.offsets)
                return False
            self.consumer.transaction_done()
            return False
        self.ctx.event(self.consumer.name, "txn-aborted")
        self.consumer.transaction_aborted(rewind=self.config.abort_seek == "committed")
        return False

    def offsets_committed(self) -> None:
        """The ``commitSync`` after the transaction returned (or threw)."""
        self.stage = IDLE

    def reset(self) -> None:
        self.stage = IDLE
        self.offsets = {}
