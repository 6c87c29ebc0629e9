"""The transactional producer's client side: the Java ``TransactionManager`` for a
producer with a ``transactional.id`` (KIP-98, with KIP-360's epoch bump after abortable
errors and KIP-890 part 2's epoch bump at every EndTxn).

States (``TransactionManager.State``): UNINITIALIZED -> INITIALIZING -> READY ->
IN_TRANSACTION -> COMMITTING_TRANSACTION or ABORTING_TRANSACTION -> READY; any failed
batch makes the transaction ABORTABLE_ERROR (the application must abort); a fenced
producer is FATAL_ERROR (the application must close it and create a new one).

Transactional requests go one at a time to the coordinator found with
``FindCoordinator(TRANSACTION)``: InitProducerId, AddPartitionsToTxn (before a partition's
first batch, unless transaction version 2 lets the leader add it), EndTxn (only once
every batch of the transaction has completed, and not at all when no partition was
added).  Retriable errors (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, a lost connection) rediscover the
coordinator where needed and resend after ``retry.backoff.ms``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from model import messages as m

if TYPE_CHECKING:
    from model.clients.producer import Producer

UNINITIALIZED, INITIALIZING, READY = "UNINITIALIZED", "INITIALIZING", "READY"
IN_TRANSACTION = "IN_TRANSACTION"
COMMITTING, ABORTING = "COMMITTING_TRANSACTION", "ABORTING_TRANSACTION"
ABORTABLE_ERROR, FATAL_ERROR = "ABORTABLE_ERROR", "FATAL_ERROR"

_RETRIABLE = {m.NOT_COORDINATOR, m.COORDINATOR_NOT_AVAILABLE, m.CONCURRENT_TRANSACTIONS,
              m.COORDINATOR_LOAD_IN_PROGRESS, m.NETWORK_EXCEPTION}
_FIND_AGAIN = {m.NOT_COORDINATOR, m.COORDINATOR_NOT_AVAILABLE, m.NETWORK_EXCEPTION}
_FATAL = {m.PRODUCER_FENCED, m.INVALID_PRODUCER_EPOCH, m.INVALID_PRODUCER_ID_MAPPING,
          m.INVALID_TXN_STATE, m.TRANSACTION_COORDINATOR_FENCED}


class TransactionManager:
    def __init__(self, producer: "Producer", transactional_id: str) -> None:
        self.producer = producer
        self.ctx = producer.ctx
        self.transactional_id = transactional_id
        self.state = UNINITIALIZED
        self.coordinator: str | None = None
        self.request: tuple[int, str, Any] | None = None     # (corr, broker, request)
        self.sent_at = 0
        self.retry_at = 0
        self.added: set[int] = set()        # partitions the coordinator has in the txn
        self.new_partitions: set[int] = set()
        # An AddPartitionsToTxn that failed retriably or lost its connection, to be sent
        # again as it was (``TxnRequestHandler.reenqueue``), even after ``beginAbort``.
        self.add_to_resend: tuple[int, ...] | None = None
        self.resend_checked = False     # the queued resend passed the error-state check
        self.epoch_bump_required = False
        self.last_error: str | None = None
        self.begun = 0          # transactions this instance has begun
        self.v2 = self.ctx.config.kafka.transactions_v2

    # -- what the application may do ---------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state in (READY, IN_TRANSACTION)

    def can_commit(self) -> bool:
        return self.state == IN_TRANSACTION

    def can_abort(self) -> bool:
        return self.state in (IN_TRANSACTION, ABORTABLE_ERROR)

    def begin_if_needed(self) -> None:
        """``beginTransaction`` (the application's first send of a transaction)."""
        if self.state == READY:
            self.begun += 1
            self._transition(IN_TRANSACTION)

    def maybe_add_partition(self, partition: int) -> None:
        """``maybeAddPartition``, called by ``KafkaProducer.send``: a partition the
        transaction has not added yet is queued for the next AddPartitionsToTxn
        (transaction version 2: the leader adds it)."""
        if not self.v2 and partition not in self.added \
                and partition not in (self.add_to_resend or ()):
            self.new_partitions.add(partition)

    def send_allowed(self, partition: int) -> bool:
        """``isSendToPartitionAllowed``: a batch may go once its partition is in the
        transaction (transaction version 2: the leader adds it)."""
        if self.state not in (IN_TRANSACTION, COMMITTING, ABORTING):
            return False
        return self.v2 or partition in self.added

    def request_due(self) -> bool:
        """Whether a transactional request is in flight or waiting to go (its backoff
        included): ``Sender.runOnce`` sends no produce data then
        (``maybeSendAndPollTransactionalRequest`` returns true, or the Sender thread
        sleeps out the retry backoff)."""
        if self.request is not None or self.state == INITIALIZING:
            return True
        return (self.state in (IN_TRANSACTION, COMMITTING, ABORTING) and not self.v2
                and bool(self.add_to_resend or self.new_partitions))

    def begin_commit(self) -> None:
        self._transition(COMMITTING)

    def begin_abort(self) -> None:
        """``beginAbort``: partitions not yet sent are forgotten; an AddPartitionsToTxn
        already sent stays queued for resending, since the coordinator may have added its
        partitions (then the abort needs its EndTxn)."""
        self.new_partitions.clear()
        self._transition(ABORTING)

    def initialize(self) -> None:
        """``initTransactions``."""
        self._transition(INITIALIZING)

    # -- errors from batches -----------------------------------------------------------

    def batch_failed(self, error: str) -> None:
        """``handleFailedBatch`` -> ``maybeTransitionToErrorState``."""
        if error in (m.PRODUCER_FENCED,):
            self._fatal(error)
            return
        if self.state in (FATAL_ERROR,):
            return
        if self.state not in (COMMITTING, ABORTING):    # canBumpEpoch && !isCompleting
            self.epoch_bump_required = True
        if self.state in (IN_TRANSACTION, COMMITTING):
            self.last_error = error
            self._transition(ABORTABLE_ERROR)

    def sequences_unresolved(self) -> None:
        """``maybeResolveSequences``: a retried batch expired with its outcome unknown
        and later ones were not all acknowledged."""
        self.epoch_bump_required = True
        if self.state in (IN_TRANSACTION, COMMITTING):
            self.last_error = "UNRESOLVED_SEQUENCE"
            self._transition(ABORTABLE_ERROR)

    def _fatal(self, error: str) -> None:
        self.last_error = error
        self._transition(FATAL_ERROR)
        self.producer.transaction_fatal(error)

    def _transition(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.ctx.event(self.producer.name, "txn-client-state", state=state,
                           transactional_id=self.transactional_id)

    # -- the request loop (Sender.maybeSendAndPollTransactionalRequest) ------------------

    def next_request(self) -> Any | None:
        """The transactional request due now, if any."""
        idem = self.producer.idempotence
        assert idem is not None
        if self.state == INITIALIZING:
            # KIP-360: an instance that already has an id bumps its own epoch, naming it.
            return m.InitProducerIdRequest(0, self.transactional_id,
                                           self.ctx.config.producer.transaction_timeout_ms,
                                           idem.producer_id, idem.producer_epoch)
        if self.add_to_resend is not None and not self.v2:
            if self.state in (IN_TRANSACTION, COMMITTING, ABORTING) or (
                    self.state == ABORTABLE_ERROR and self.resend_checked):
                return m.AddPartitionsToTxnRequest(0, self.transactional_id,
                                                   idem.producer_id, idem.producer_epoch,
                                                   self.add_to_resend)
            self._fail_queued_add()
        if self.state in (IN_TRANSACTION, COMMITTING, ABORTING) and self.new_partitions \
                and not self.v2:
            return m.AddPartitionsToTxnRequest(0, self.transactional_id, idem.producer_id,
                                               idem.producer_epoch,
                                               tuple(sorted(self.new_partitions)))
        if self.state in (COMMITTING, ABORTING) and not self.producer.has_incomplete_batches():
            if not self.added and not (self.v2 and self.producer.sent_in_transaction):
                self._finished(self.state == COMMITTING)
                return None
            if self.last_error == m.INVALID_PRODUCER_ID_MAPPING:
                # beginCompletingTransaction: the coordinator would refuse the EndTxn;
                # the abort goes straight to InitProducerId.
                self._finished(False)
                return None
            return m.EndTxnRequest(0, self.transactional_id, idem.producer_id,
                                   idem.producer_epoch, self.state == COMMITTING)
        return None

    def poll(self) -> None:
        if self.request is not None or self.ctx.now < self.retry_at:
            return
        request = self.next_request()
        if request is None:
            return
        if self.coordinator is None:
            self._find_coordinator()
            return
        if not self.ctx.network.accepts(self.producer.name, self.coordinator):
            self.coordinator = None
            self.retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
            return
        corr = self.ctx.next_corr()
        request = attrs.evolve(request, corr=corr)
        self.ctx.send(self.producer.name, self.coordinator, request)
        self.request = (corr, self.coordinator, request)
        self.sent_at = self.ctx.now

    def _find_coordinator(self) -> None:
        ready = [b for b in self.producer.brokers
                 if self.ctx.network.accepts(self.producer.name, b)]
        if not ready:
            self.retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
            return
        corr = self.ctx.next_corr()
        request = m.FindCoordinatorRequest(corr, self.transactional_id, "transaction")
        self.ctx.send(self.producer.name, ready[0], request)
        self.request = (corr, ready[0], request)
        self.sent_at = self.ctx.now

    def in_flight_to(self, broker: str) -> bool:
        return self.request is not None and self.request[1] == broker

    # -- responses ---------------------------------------------------------------------

    def receive(self, message: Any) -> None:
        if self.request is None or self.request[0] != message.corr:
            return
        request = self.request[2]
        self.request = None
        error = message.error
        if isinstance(message, m.FindCoordinatorResponse):
            if error is None and message.coordinator is not None:
                self.coordinator = message.coordinator
            else:
                self._back_off()
            return
        if error in _FIND_AGAIN:
            self.coordinator = None
        if error in _RETRIABLE:
            self._queue_again(request, find_coordinator=error in _FIND_AGAIN)
            self._back_off()
            return
        if isinstance(message, m.InitProducerIdResponse):
            self._on_init(message)
        elif isinstance(message, m.AddPartitionsToTxnResponse):
            self._on_add(request, error)
        elif isinstance(message, m.EndTxnResponse):
            self._on_end(request, message)

    def _queue_again(self, request: Any, find_coordinator: bool) -> None:
        """``reenqueue``: the same AddPartitionsToTxn goes again (other requests are
        rebuilt from the state, which is what Java's queue holds for them too).  The
        Sender takes it from the queue at once, failing it in an error state
        (``maybeTerminateRequestWithError``), then sleeps out the backoff and sends it
        whatever the state by then; after a lost coordinator it is taken only once
        FindCoordinator is answered, so the state is checked at sending."""
        if not isinstance(request, m.AddPartitionsToTxnRequest):
            return
        self.add_to_resend = request.partitions
        self.resend_checked = False
        if not find_coordinator:
            if self.state in (ABORTABLE_ERROR, FATAL_ERROR):
                self._fail_queued_add()
            else:
                self.resend_checked = True

    def _fail_queued_add(self) -> None:
        """The queued AddPartitionsToTxn fails: its partitions are not in the
        transaction (Java keeps them pending until the transaction completes)."""
        self.new_partitions -= set(self.add_to_resend or ())
        self.add_to_resend = None

    def _back_off(self) -> None:
        self.retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms

    def _on_init(self, resp: m.InitProducerIdResponse) -> None:
        if resp.error is not None:
            self._fatal(resp.error)
            return
        idem = self.producer.idempotence
        assert idem is not None
        idem.set_producer_id(resp.producer_id, resp.producer_epoch)
        idem.reset_sequences()
        self.epoch_bump_required = False
        self.last_error = None
        self.ctx.event(self.producer.name, "producer-id", producer_id=resp.producer_id,
                       producer_epoch=resp.producer_epoch)
        self._transition(READY)

    def _on_add(self, request: m.AddPartitionsToTxnRequest, error: str | None) -> None:
        self.add_to_resend = None
        if error is None:
            self.added.update(request.partitions)
            self.new_partitions -= set(request.partitions)
        elif error in _FATAL:
            self._fatal(error)
        else:
            self.new_partitions.clear()
            self.batch_failed(error)

    def _on_end(self, request: m.EndTxnRequest, resp: m.EndTxnResponse) -> None:
        if resp.error == m.INVALID_PRODUCER_ID_MAPPING:
            # EndTxnHandler: abortableErrorIfPossible.
            self.epoch_bump_required = True
            self.last_error = resp.error
            self._transition(ABORTABLE_ERROR)
            return
        if resp.error is not None:
            self._fatal(resp.error)
            return
        if self.v2 and resp.producer_epoch >= 0:
            idem = self.producer.idempotence
            assert idem is not None
            idem.set_producer_id(resp.producer_id, resp.producer_epoch)
        self._finished(request.commit)

    def _finished(self, committed: bool) -> None:
        """The transaction is over: its sends complete, and after an abortable error
        the epoch is bumped before the next one (KIP-360)."""
        self.added.clear()
        self.new_partitions.clear()
        self.add_to_resend = None
        self.producer.transaction_completed(committed)
        if self.epoch_bump_required and not self.v2:
            self._transition(INITIALIZING)
        else:
            self.epoch_bump_required = False
            self._transition(READY)

    def on_disconnect(self, peer: str) -> None:
        if self.request is not None and self.request[1] == peer:
            self._queue_again(self.request[2], find_coordinator=True)
            self.request = None
            if self.coordinator == peer:
                self.coordinator = None
            self._back_off()
