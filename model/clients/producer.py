"""The producer: partitioner, accumulator, in-flight requests, retries, idempotence.

Each ``send`` joins its partition's waiting batch while it has room (``batch.size``), or
starts a new one.  Batches wait per partition (Kafka's ``RecordAccumulator``) and are
drained to the leader the producer's cached metadata names, at most
``max.in.flight.requests.per.connection`` unacknowledged requests per broker; with one in
flight the partition is muted, which is what keeps order without idempotence.  With
``enable.idempotence`` the producer first gets a producer id, and each batch carries its
sequence (:mod:`model.clients.idempotence` decides what may be drained, retried, and when
the epoch is bumped).

As in the Java ``Sender``, batches are drained only to *ready* nodes: a leader whose
connection is refused (down, cut off, or not yet listening) gets nothing, the batch is
not attempted and waits in the accumulator while metadata is refreshed, until it can be
sent or ``delivery.timeout.ms`` expires it.  Retriable errors and lost connections put the
batch back at the head of its partition's queue after ``retry.backoff.ms``;
``request.timeout.ms`` closes the connection; ``delivery.timeout.ms`` bounds the whole
send, in the accumulator and in flight.  A batch that may have been appended by any
attempt ends ``info`` (indeterminate), never ``fail``: only errors raised before the append
(NOT_ENOUGH_REPLICAS, a sequence or epoch refusal), or a batch never sent, prove a write
did not happen.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

import attrs

from model import messages as m
from model.context import Context
from model.metadata import PartitionId
from model.clients.idempotence import IdempotenceManager
from model.clients.partitioner import partition_for_key
from model.clients.transactions import TransactionManager

# DefaultRecordBatch.RECORD_BATCH_OVERHEAD, and the size of one of kafkacheck's small
# keyed records (with the header naming its producer) inside a batch.
BATCH_OVERHEAD_BYTES = 61
RECORD_BYTES = 40

# Errors that a leader returns only before appending: the attempt certainly wrote nothing.
_NOT_APPENDED = frozenset({m.NOT_ENOUGH_REPLICAS, m.OUT_OF_ORDER_SEQUENCE_NUMBER,
                           m.INVALID_PRODUCER_EPOCH, m.INVALID_TXN_STATE,
                           m.TRANSACTION_ABORTABLE, m.PRODUCER_FENCED,
                           m.TRANSACTION_COORDINATOR_FENCED})
# Transactional errors a batch is never retried on (not RetriableException).
_NOT_RETRIABLE = frozenset({m.INVALID_TXN_STATE, m.TRANSACTION_ABORTABLE, m.PRODUCER_FENCED,
                            m.INVALID_PRODUCER_ID_MAPPING})


@attrs.frozen(slots=True)
class PendingRecord:
    """One ``send`` waiting in a batch: its key, value and Jepsen process (lane), and the
    application record it carries (``root``: the first send's value, for a resend)."""

    key: str
    value: int
    process: str
    root: int = -1


@attrs.define(slots=True, eq=False)
class Batch:
    """A ``ProducerBatch``: records of one partition sent, retried and answered as one."""

    partition: PartitionId
    created: int
    records: list[PendingRecord] = attrs.field(factory=list)
    attempts: int = 0
    maybe_written: bool = False
    retry_at: int = 0
    last_error: str | None = None
    # The idempotent producer's header (``ProducerBatch.setProducerState``), set at the
    # first drain; ``reopened`` after an epoch bump rewrote it, until it is sent again.
    producer_id: int = -1
    producer_epoch: int = -1
    sequence: int = -1
    in_retry: bool = False
    reopened: bool = False


@attrs.define(slots=True)
class InFlight:
    batch: Batch
    broker: str
    sent_at: int
    # Failed by delivery.timeout.ms while its request was still unanswered: the request
    # still counts against max.in.flight, and a late success still moves the sequences.
    expired: bool = False


class Producer:
    def __init__(self, name: str, ctx: Context,
                 metadata: Callable[[PartitionId], tuple[str | None, int]],
                 brokers: list[str], transactional_id: str | None = None,
                 partitions: Sequence[PartitionId] | None = None,
                 records_ops: bool = True) -> None:
        """``partitions``: the topic it writes (the user topic unless given);
        ``records_ops``: whether its sends are operations of the Jepsen history (a
        consume-transform-produce application's output producer is part of the
        consumer's process, whose own events tell its story)."""
        self.name = name
        self.partitions: tuple[PartitionId, ...] = tuple(
            range(ctx.config.topic.partitions) if partitions is None else partitions)
        self.records_ops = records_ops
        self.transactional_id = transactional_id
        self.ctx = ctx
        self.lookup = metadata
        self.brokers = brokers
        self.alive = True
        self.incarnation = 0
        # The application's own record of sends it did not see acknowledged (durable
        # input it can read again): (key, partition, the record's first value, the
        # incarnation that sent it).
        self.unconfirmed: list[tuple[str, int, int, int]] = []
        # The application blocked in a transactional call, told after each event.
        self.listener: Callable[[], None] | None = None
        self.last_transaction_committed = False
        self._reset()

    def _reset(self) -> None:
        # Jepsen's processes do one operation at a time and are never reused after an
        # indeterminate (info) outcome; concurrent sends therefore each get a "lane".
        self.free_lanes: list[int] = []
        self.next_lane = 0
        self.queues: dict[PartitionId, deque[Batch]] = {p: deque() for p in self.partitions}
        self.in_flight: dict[int, InFlight] = {}
        self.leaders: dict[PartitionId, str | None] = {}
        self.metadata_at = -1
        self.has_metadata = False      # a new instance knows nothing of the topic yet
        self.refresh_metadata()
        # A new producer instance has no producer id: it asks for one before sending.
        self.idempotence = (IdempotenceManager(transactional=self.transactional_id is not None)
                            if self.ctx.config.producer.enable_idempotence else None)
        self.init_pending: tuple[int, str] | None = None   # (corr, broker)
        self.init_retry_at = 0
        # A transactional producer: its TransactionManager, and the sends of the open
        # transaction, whose outcome is the transaction's (offset once acknowledged).
        self.txn: TransactionManager | None = None
        self.txn_sends: list[tuple[PartitionId, PendingRecord]] = []
        self.txn_offsets: dict[int, int] = {}
        self.sent_in_transaction = False
        if self.transactional_id is not None:
            self.txn = TransactionManager(self, self.transactional_id)
            self.txn.initialize()

    # -- metadata ----------------------------------------------------------------------

    def refresh_metadata(self) -> None:
        """Fetch metadata from any broker this client can reach (the answer is modelled as
        the controller's current view; see docs/model.md); with none reachable the
        cached metadata stays as it is."""
        if not any(self.ctx.network.accepts(self.name, b) for b in self.brokers):
            return
        self.leaders = {p: self.lookup(p)[0] for p in self.queues}
        self.metadata_at = self.ctx.now
        self.has_metadata = True

    # -- application calls -------------------------------------------------------------

    def send(self, key: str, partition: PartitionId | None = None,
             resend_of: int | None = None, value: int | None = None) -> None:
        """``producer.send``: a new value (values are unique per send, as Jepsen's checker
        needs); an application resend names the value it stands for (``resend-of``).  A
        transform names the value it carries over from its input record."""
        if partition is None:
            partition = self.partitions[partition_for_key(key, len(self.partitions))]
        if value is None:
            value = self.ctx.next_value()
        if self.free_lanes:
            lane = self.free_lanes.pop(0)
        else:
            lane, self.next_lane = self.next_lane, self.next_lane + 1
        process = f"{self.name}:{self.incarnation}:{lane}"
        meta: dict[str, Any] = {"key": key}
        if resend_of is not None:
            meta["resend-of"] = resend_of
        if self.txn is not None:
            self.txn.begin_if_needed()
            meta["txn"] = f"{self.name}:{self.incarnation}:{self.txn.begun}"
        if self.records_ops:
            self.ctx.history.add(process, "invoke", "send", [["send", partition, value]], meta)
        root = value if resend_of is None else resend_of
        record = PendingRecord(key, value, process, root)
        if self.txn is not None:
            self.txn_sends.append((partition, record))
            self.txn.maybe_add_partition(partition)
        if not self.has_metadata:
            self.refresh_metadata()
        if not self.has_metadata:
            # KafkaProducer.waitOnMetadata: the topic is unknown and no broker answers;
            # send blocks for max.block.ms and throws (the wait is not modelled).
            self._complete(Batch(partition, self.ctx.now, [record]), "fail", None,
                           "METADATA_TIMEOUT")
            return
        queue = self.queues[partition]
        if queue and queue[-1].attempts == 0 and len(queue[-1].records) < self._batch_capacity():
            # RecordAccumulator.append: into the partition's open batch (not yet drained).
            queue[-1].records.append(record)
        else:
            queue.append(Batch(partition, self.ctx.now, [record]))
        self.drain()

    def _batch_capacity(self) -> int:
        """Records per batch: ``batch.size`` over a record's size in the batch (small
        keyed records of about ``RECORD_BYTES``); ``batch.size=0`` disables batching."""
        size = self.ctx.config.producer.batch_size
        return max(1, (size - BATCH_OVERHEAD_BYTES) // RECORD_BYTES)

    def can_resend(self) -> bool:
        return any(sent < self.incarnation for *_, sent in self.unconfirmed)

    def resend(self) -> None:
        """The application loop sends again the oldest record an earlier incarnation did
        not see acknowledged: a new send of the same key, standing for the same record."""
        index = next(i for i, (*_, sent) in enumerate(self.unconfirmed)
                     if sent < self.incarnation)
        key, partition, root, _ = self.unconfirmed.pop(index)
        self.send(key, partition, resend_of=root)

    def _remember_unconfirmed(self, partition: PartitionId, record: PendingRecord) -> None:
        if (self.records_ops
                and self.ctx.config.producer.application_loop == "resend-after-restart"):
            self.unconfirmed.append((record.key, partition, record.root, self.incarnation))

    def idle(self) -> bool:
        return (not self.in_flight and not any(self.queues.values())
                and self.init_pending is None
                and (self.txn is None or (self.txn.request is None and not self.txn_sends)))

    # -- transactions (the application's calls and the transaction's outcome) -----------

    def can_send(self) -> bool:
        return self.alive and (self.txn is None or self.txn.ready)

    def commit_transaction(self) -> None:
        assert self.txn is not None
        self.txn.begin_commit()
        self.drain()

    def abort_transaction(self) -> None:
        """``abortTransaction``: batches not yet sent are dropped
        (``abortUndrainedBatches``); those in flight complete first."""
        assert self.txn is not None
        self.txn.begin_abort()
        self.drain()

    def _abort_undrained_batches(self) -> None:
        """``Sender.runOnce`` while the transaction is aborting or abortable:
        ``accumulator.abortUndrainedBatches`` drops the batches never drained (no
        sequence yet); a retry keeps being sent until its outcome is known."""
        for queue in self.queues.values():
            for batch in [b for b in queue if b.sequence == -1]:
                queue.remove(batch)

    def has_incomplete_batches(self) -> bool:
        """``RecordAccumulator.hasIncomplete``: a batch failed by delivery.timeout.ms is
        complete even while its request is still out (so EndTxn may overtake it)."""
        return (any(not f.expired for f in self.in_flight.values())
                or any(self.queues.values()))

    def transaction_completed(self, committed: bool) -> None:
        """The transaction ended: every send in it is ``ok`` (committed, at the offset
        its batch was acknowledged with) or ``fail`` (aborted)."""
        self.last_transaction_committed = committed
        sends, self.txn_sends = self.txn_sends, []
        for partition, record in sends:
            offset = self.txn_offsets.pop(record.value, None)
            if committed:
                self._report(record, partition, "ok", offset, None)
            else:
                self._report(record, partition, "fail", None, "TRANSACTION_ABORTED")
        self.sent_in_transaction = False
        self.free_lanes.sort()

    def transaction_fatal(self, error: str) -> None:
        """A fenced producer: the open transaction's outcome is unknown to it."""
        sends, self.txn_sends = self.txn_sends, []
        for partition, record in sends:
            self.txn_offsets.pop(record.value, None)
            self._report(record, partition, "info", None, error)
        for queue in self.queues.values():
            queue.clear()

    # -- the sender loop ---------------------------------------------------------------

    def drain(self) -> None:
        """One pass of ``Sender.runOnce``: the idempotent producer's bookkeeping first
        (resolve sequences, bump the epoch, get a producer id), then draining."""
        idempotence = self.idempotence
        txn = self.txn
        if txn is not None:
            assert idempotence is not None
            if idempotence.unresolved_needs_bump():
                txn.sequences_unresolved()
            if txn.state in ("ABORTING_TRANSACTION", "ABORTABLE_ERROR"):
                self._abort_undrained_batches()
            txn.poll()
            if txn.request_due():
                return      # no produce while a transactional request is out or due
            if not txn.ready and txn.state not in ("COMMITTING_TRANSACTION",
                                                   "ABORTING_TRANSACTION"):
                return
        elif idempotence is not None:
            idempotence.resolve_sequences()
            idempotence.bump_epoch_if_needed()
            if not idempotence.has_producer_id:
                self._init_producer_id()
                return
        config = self.ctx.config.producer
        now = self.ctx.now
        per_broker: dict[str, int] = {}
        for flight in self.in_flight.values():
            per_broker[flight.broker] = per_broker.get(flight.broker, 0) + 1
        muted = {f.batch.partition for f in self.in_flight.values()} \
            if config.max_in_flight_requests_per_connection == 1 else set()
        not_ready = False
        for partition, queue in self.queues.items():
            while queue and partition not in muted:
                batch = queue[0]
                leader = self.leaders.get(partition)
                if batch.retry_at > now or leader is None:
                    break
                if not self.ctx.network.accepts(self.name, leader):
                    not_ready = True   # NetworkClient.ready is false: the batch waits
                    break
                if per_broker.get(leader, 0) >= config.max_in_flight_requests_per_connection:
                    break
                if txn is not None and not txn.send_allowed(partition):
                    break
                if idempotence is not None:
                    if not idempotence.may_drain(batch):
                        break
                    idempotence.assign(batch)
                queue.popleft()
                self._transmit(batch, leader)
                if config.acks != "0":
                    per_broker[leader] = per_broker.get(leader, 0) + 1
                    if config.max_in_flight_requests_per_connection == 1:
                        muted.add(partition)
        if not_ready:
            # A failed connection makes the client refresh its metadata (the leader may
            # have moved), as NetworkClient does on a disconnect.
            self.refresh_metadata()
        if txn is not None:
            txn.poll()      # EndTxn may be due once the last batch is drained

    def _transmit(self, batch: Batch, leader: str) -> None:
        config = self.ctx.config.producer
        corr = self.ctx.next_corr()
        batch.attempts += 1
        batch.reopened = False
        request = m.ProduceRequest(corr, batch.partition,
                                   tuple((r.key, r.value) for r in batch.records),
                                   config.acks, config.request_timeout_ms,
                                   batch.producer_id, batch.producer_epoch, batch.sequence,
                                   self.transactional_id)
        if self.txn is not None:
            self.sent_in_transaction = True
        sent = self.ctx.send(self.name, leader, request)
        assert sent, "drain sends only to ready nodes"
        if config.acks == "0":
            # Fire and forget: the send is complete once written to the socket.
            self._complete(batch, "ok", None, None)
            return
        self.in_flight[corr] = InFlight(batch, leader, self.ctx.now)

    # -- the producer id (idempotence) -------------------------------------------------

    def _init_producer_id(self) -> None:
        """``InitProducerId`` (no transactional id) to the least loaded ready broker, one
        request at a time, retried after ``retry.backoff.ms``."""
        if self.init_pending is not None or self.ctx.now < self.init_retry_at:
            return
        load = {b: 0 for b in self.brokers}
        for flight in self.in_flight.values():
            load[flight.broker] += 1
        ready = [b for b in self.brokers if self.ctx.network.accepts(self.name, b)]
        if not ready:
            self.init_retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
            return
        broker = min(ready, key=lambda b: (load[b], self.brokers.index(b)))
        corr = self.ctx.next_corr()
        self.ctx.send(self.name, broker, m.InitProducerIdRequest(corr))
        self.init_pending = (corr, broker)

    def _on_init_producer_id(self, resp: m.InitProducerIdResponse) -> None:
        if self.init_pending is None or self.init_pending[0] != resp.corr:
            return
        self.init_pending = None
        assert self.idempotence is not None
        if resp.error is None:
            self.idempotence.set_producer_id(resp.producer_id, resp.producer_epoch)
            self.ctx.event(self.name, "producer-id", producer_id=resp.producer_id,
                           producer_epoch=resp.producer_epoch)
        else:
            self.init_retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms

    # -- responses ---------------------------------------------------------------------

    def receive(self, src: str, generation: int, message: Any) -> None:
        self._receive(message)
        self._tell_listener()

    def _tell_listener(self) -> None:
        if self.listener is not None and self.alive:
            self.listener()

    def _receive(self, message: Any) -> None:
        if self.txn is not None and isinstance(message, (
                m.FindCoordinatorResponse, m.InitProducerIdResponse,
                m.AddPartitionsToTxnResponse, m.EndTxnResponse,
                m.AddOffsetsToTxnResponse, m.TxnOffsetCommitResponse)):
            self.txn.receive(message)
            self.drain()
            return
        if isinstance(message, m.InitProducerIdResponse):
            self._on_init_producer_id(message)
            self.drain()
            return
        if not isinstance(message, m.ProduceResponse):
            raise TypeError(f"producer cannot handle {type(message).__name__}")
        flight = self.in_flight.pop(message.corr, None)
        if flight is None:
            return
        if flight.expired:
            # The send already failed; a success still counts as acknowledged.
            if message.error is None and self.idempotence is not None:
                self.idempotence.completed(flight.batch)
        elif message.error is None:
            if self.idempotence is not None:
                self.idempotence.completed(flight.batch)
            self._complete(flight.batch, "ok", message.offset, None)
        else:
            self._failed_attempt(flight.batch, message.error,
                                 written=message.error not in _NOT_APPENDED)
        self.drain()

    def _failed_attempt(self, batch: Batch, error: str, written: bool) -> None:
        """``Sender.completeBatch`` for an error: retry (``canRetry``) or fail."""
        config = self.ctx.config.producer
        batch.maybe_written |= written
        batch.last_error = error
        if error in (m.NOT_LEADER_OR_FOLLOWER, m.NETWORK_EXCEPTION, m.FENCED_LEADER_EPOCH,
                     m.UNKNOWN_LEADER_EPOCH, m.REQUEST_TIMED_OUT):
            self.refresh_metadata()
        expired = self.ctx.now - batch.created >= config.delivery_timeout_ms
        retries_left = batch.attempts <= config.retries
        idempotence = self.idempotence
        # Sender.canRetry: the idempotence verdict (which may ask for an epoch bump) is
        # only reached when the batch still has time and retries left.
        retriable = (retries_left and not expired and error not in _NOT_RETRIABLE
                     and (idempotence is None or idempotence.can_retry(batch, error)))
        if not retriable:
            if idempotence is not None:
                idempotence.failed(batch, error, adjust=retries_left)
            self._complete(batch, "info" if batch.maybe_written else "fail", None, error)
            return
        batch.retry_at = self.ctx.now + config.retry_backoff_ms
        batch.in_retry = True
        self._reenqueue(batch)

    def _reenqueue(self, batch: Batch) -> None:
        """``RecordAccumulator.reenqueue``: at the head of its partition's queue, and for
        the idempotent producer in sequence order among the other retries
        (``insertInSequenceOrder``)."""
        queue = self.queues[batch.partition]
        ahead = []
        while (self.idempotence is not None and queue and queue[0].sequence != -1
               and queue[0].sequence < batch.sequence):
            ahead.append(queue.popleft())
        queue.appendleft(batch)
        for earlier in reversed(ahead):
            queue.appendleft(earlier)

    def _complete(self, batch: Batch, outcome: str, offset: int | None, error: str | None) -> None:
        """Report the batch's outcome to each of its sends (one callback per record).  A
        transactional batch's sends wait for their transaction: an acknowledgement only
        notes the offset, a failure makes the transaction abortable."""
        if self.txn is not None:
            if outcome == "ok":
                for index, record in enumerate(batch.records):
                    if offset is not None:
                        self.txn_offsets[record.value] = offset + index
            else:
                self.txn.batch_failed(error or "UNKNOWN")
            return
        for index, record in enumerate(batch.records):
            self._report(record, batch.partition, outcome,
                         None if offset is None else offset + index, error)
        self.free_lanes.sort()

    def _report(self, record: PendingRecord, partition: PartitionId, outcome: str,
                offset: int | None, error: str | None) -> None:
        value: Any = record.value
        if outcome == "ok":
            value = [offset, record.value]
        meta: dict[str, Any] = {"key": record.key}
        if error is not None:
            meta["error"] = error
        if self.records_ops:
            self.ctx.history.add(record.process, outcome, "send",
                                 [["send", partition, value]], meta)
        if outcome != "ok":
            self._remember_unconfirmed(partition, record)
        if outcome != "info":
            self.free_lanes.append(int(record.process.rsplit(":", 1)[1]))

    # -- timers and connections --------------------------------------------------------

    def on_tick(self) -> None:
        """One ``Sender.runOnce``: expire batches past ``delivery.timeout.ms`` (queued or
        in flight) and drain (``sendProducerData``), then time out requests older than
        ``request.timeout.ms`` by closing their connection (``NetworkClient.poll``)."""
        config = self.ctx.config.producer
        now = self.ctx.now
        if now - self.metadata_at >= config.metadata_max_age_ms or any(
                leader is None for leader in self.leaders.values()):
            self.refresh_metadata()
        for queue in self.queues.values():
            for batch in [b for b in queue if now - b.created >= config.delivery_timeout_ms]:
                queue.remove(batch)
                self._expire(batch, "info" if batch.maybe_written else "fail")
        # A batch expired in flight: its request stays outstanding until answered or its
        # connection closes; a late error is ignored.
        for corr, flight in sorted(self.in_flight.items()):
            if not flight.expired and now - flight.batch.created >= config.delivery_timeout_ms:
                flight.expired = True
                self._expire(flight.batch, "info")
        self.drain()
        timed_out = {f.broker for f in self.in_flight.values()
                     if now - f.sent_at >= config.request_timeout_ms}
        txn = self.txn
        if txn is not None and txn.request is not None \
                and now - txn.sent_at >= config.request_timeout_ms:
            timed_out.add(txn.request[1])
        for broker in sorted(timed_out):
            self.ctx.close(self.name, broker)
        self._tell_listener()

    def _expire(self, batch: Batch, outcome: str) -> None:
        if self.idempotence is not None:
            self.idempotence.expired(batch)
        self._complete(batch, outcome, None, "DELIVERY_TIMEOUT")

    def on_disconnect(self, peer: str) -> None:
        if self.txn is not None:
            self.txn.on_disconnect(peer)
        lost = sorted((c, f) for c, f in self.in_flight.items() if f.broker == peer)
        for corr, flight in lost:
            del self.in_flight[corr]
        if self.init_pending is not None and self.init_pending[1] == peer:
            self.init_pending = None
            self.init_retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
        # Requeue in original order: the earliest must end up at the head.
        for corr, flight in reversed(lost):
            if not flight.expired:
                self._failed_attempt(flight.batch, m.NETWORK_EXCEPTION, written=True)
        self._tell_listener()

    # -- crash -------------------------------------------------------------------------

    def crash(self) -> None:
        """The client process dies: every unfinished send's outcome is unknown."""
        # A batch expired in flight has already been reported (delivery.timeout.ms).
        pending = [f.batch for f in self.in_flight.values() if not f.expired]
        for queue in self.queues.values():
            pending.extend(queue)
        records = sorted(((r, b.partition) for b in pending for r in b.records),
                         key=lambda pair: pair[0].value)
        if self.txn is not None:
            # Every send of the open transaction is unresolved, acknowledged or not.
            records = sorted(((r, p) for p, r in self.txn_sends), key=lambda pair: pair[0].value)
            self.txn_sends = []
        self.alive = False
        if not self.records_ops:
            return
        for record, partition in records:
            meta = {"key": record.key, "error": "CLIENT_CRASHED"}
            self.ctx.history.add(record.process, "info", "send",
                                 [["send", partition, record.value]], meta)
            self._remember_unconfirmed(partition, record)
        self.ctx.history.add(f"{self.name}:{self.incarnation}", "info", "crash", None)

    def restart(self) -> None:
        self.alive = True
        self.incarnation += 1
        self._reset()
