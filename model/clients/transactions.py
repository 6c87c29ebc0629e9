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

from typing import TYPE_CHECKING, Any, Callable

import attrs

from model import messages as m
from model.metadata import PartitionId

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


# TxnOffsetCommitHandler: errors that find the group coordinator again and retry, other
# retriable ones (retried with the same coordinator), and those that abort the
# transaction (CommitFailedException: the consumer's generation is gone, so the offsets
# must not be committed with the output).  Any other error is fatal.
_OFFSETS_FIND_AGAIN = {m.NOT_COORDINATOR, m.COORDINATOR_NOT_AVAILABLE, m.REQUEST_TIMED_OUT,
                       m.NETWORK_EXCEPTION}
_OFFSETS_RETRIABLE = _OFFSETS_FIND_AGAIN | {
    m.COORDINATOR_LOAD_IN_PROGRESS, m.CONCURRENT_TRANSACTIONS, m.NOT_ENOUGH_REPLICAS,
    m.NOT_ENOUGH_REPLICAS_AFTER_APPEND, m.NOT_LEADER_OR_FOLLOWER}
_OFFSETS_ABORTABLE = {m.ILLEGAL_GENERATION, m.UNKNOWN_MEMBER_ID, m.FENCED_INSTANCE_ID,
                      m.TRANSACTION_ABORTABLE}
ADD_OFFSETS, COMMIT_OFFSETS = "add-offsets", "commit-offsets"


@attrs.define(slots=True)
class OffsetsToSend:
    """One ``sendOffsetsToTransaction`` in progress: AddOffsetsToTxn to the
    transaction coordinator, then TxnOffsetCommit to the group's coordinator, with
    the consumer's generation and member id (KIP-447; -1 and "" for the group-id-only
    form)."""

    offsets: tuple[tuple[int, int], ...]
    group: str
    generation: int
    member_id: str
    done: Callable[[str | None], None]
    stage: str = ADD_OFFSETS
    instance_id: str | None = None


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
        self.added: set[PartitionId] = set()        # partitions the coordinator has in the txn
        self.new_partitions: set[PartitionId] = set()
        # An AddPartitionsToTxn that failed retriably or lost its connection, to be sent
        # again as it was (``TxnRequestHandler.reenqueue``), even after ``beginAbort``.
        self.add_to_resend: tuple[PartitionId, ...] | None = None
        self.resend_checked = False     # the queued resend passed the error-state check
        self.epoch_bump_required = False
        self.last_error: str | None = None
        self.begun = 0          # transactions this instance has begun
        self.offsets: OffsetsToSend | None = None
        self.offsets_added = False      # AddOffsetsToTxn succeeded (transactionStarted)
        self.group_coordinator: str | None = None
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

    def maybe_add_partition(self, partition: PartitionId) -> None:
        """``maybeAddPartition``, called by ``KafkaProducer.send``: a partition the
        transaction has not added yet is queued for the next AddPartitionsToTxn
        (transaction version 2: the leader adds it)."""
        if not self.v2 and partition not in self.added \
                and partition not in (self.add_to_resend or ()):
            self.new_partitions.add(partition)

    def send_allowed(self, partition: PartitionId) -> bool:
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

    def send_offsets(self, offsets: dict[int, int], group: str, generation: int,
                     member_id: str, done: Callable[[str | None], None],
                     instance_id: str | None = None) -> None:
        """``sendOffsetsToTransaction(offsets, groupMetadata)`` in a transaction:
        ``done`` gets None once the group coordinator holds the offsets as part of the
        transaction, or the error the call throws.  Transaction version 2 skips
        AddOffsetsToTxn (TxnOffsetCommit v5: the group coordinator adds the offsets
        partition, KIP-890 part 2) and counts the transaction as started at once."""
        assert self.state == IN_TRANSACTION and self.offsets is None
        self.offsets = OffsetsToSend(tuple(sorted(offsets.items())), group, generation,
                                     member_id, done,
                                     COMMIT_OFFSETS if self.v2 else ADD_OFFSETS, instance_id)
        if self.v2:
            self.offsets_added = True

    def _offsets_failed(self, error: str) -> None:
        offsets, self.offsets = self.offsets, None
        if offsets is not None:
            offsets.done(error)

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
            self._offsets_failed(error)     # maybeTerminateRequestWithError
            self._transition(ABORTABLE_ERROR)

    def sequences_unresolved(self) -> None:
        """``maybeResolveSequences``: a retried batch expired with its outcome unknown
        and later ones were not all acknowledged."""
        self.epoch_bump_required = True
        if self.state in (IN_TRANSACTION, COMMITTING):
            self.last_error = "UNRESOLVED_SEQUENCE"
            self._transition(ABORTABLE_ERROR)

    def _fatal(self, error: str) -> None:
        self._offsets_failed(error)
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
        offsets = self.offsets
        if offsets is not None and self.state in (IN_TRANSACTION, COMMITTING, ABORTING):
            if offsets.stage == ADD_OFFSETS:
                return m.AddOffsetsToTxnRequest(0, self.transactional_id, idem.producer_id,
                                                idem.producer_epoch, offsets.group)
            return m.TxnOffsetCommitRequest(0, self.transactional_id, offsets.group,
                                            idem.producer_id, idem.producer_epoch,
                                            offsets.offsets, offsets.generation,
                                            offsets.member_id, offsets.instance_id)
        if self.state in (COMMITTING, ABORTING) and not self.producer.has_incomplete_batches():
            if not self.added and not self.offsets_added and not (
                    self.v2 and self.producer.sent_in_transaction):
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
        to_group = isinstance(request, m.TxnOffsetCommitRequest)
        target = self.group_coordinator if to_group else self.coordinator
        if target is None:
            if to_group:
                self._find_coordinator(request.group, "group")
            else:
                self._find_coordinator(self.transactional_id, "transaction")
            return
        if not self.ctx.network.accepts(self.producer.name, target):
            self._forget_coordinator(to_group)
            self.retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
            return
        corr = self.ctx.next_corr()
        request = attrs.evolve(request, corr=corr)
        self.ctx.send(self.producer.name, target, request)
        self.request = (corr, target, request)
        self.sent_at = self.ctx.now

    def _forget_coordinator(self, group: bool) -> None:
        if group:
            self.group_coordinator = None
        else:
            self.coordinator = None

    def _find_coordinator(self, key: str, key_type: str) -> None:
        """``lookupCoordinator``: FindCoordinator for the transaction's coordinator, or
        (for TxnOffsetCommit) the group's."""
        ready = [b for b in self.producer.brokers
                 if self.ctx.network.accepts(self.producer.name, b)]
        if not ready:
            self.retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
            return
        corr = self.ctx.next_corr()
        request = m.FindCoordinatorRequest(corr, key, key_type)
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
                if request.key_type == "group":
                    self.group_coordinator = message.coordinator
                else:
                    self.coordinator = message.coordinator
            else:
                self._back_off()
            return
        if isinstance(message, m.TxnOffsetCommitResponse):
            self._on_txn_offset_commit(error)
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
        elif isinstance(message, m.AddOffsetsToTxnResponse):
            self._on_add_offsets(request, error)

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

    def _on_add_offsets(self, request: m.AddOffsetsToTxnRequest, error: str | None) -> None:
        """``AddOffsetsToTxnHandler``: the group's offsets partition is in the
        transaction (``transactionStarted``, whatever the state by now: EndTxn is due
        even without a produced record); next, the offsets go to the group
        coordinator.  INVALID_PRODUCER_ID_MAPPING aborts with an epoch bump
        (``abortableErrorIfPossible``), TRANSACTION_ABORTABLE aborts, anything else is
        fatal."""
        if error is None:
            self.offsets_added = True
            if self.offsets is not None:
                self.offsets.stage = COMMIT_OFFSETS
        elif error == m.INVALID_PRODUCER_ID_MAPPING:
            self.epoch_bump_required = True
            self._abortable(error)
        elif error == m.TRANSACTION_ABORTABLE:
            self._abortable(error)
        else:
            self._fatal(m.PRODUCER_FENCED if error == m.INVALID_PRODUCER_EPOCH else error)

    def _on_txn_offset_commit(self, error: str | None) -> None:
        """``TxnOffsetCommitHandler``: done; or find the group coordinator again and
        retry; or an abortable error (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID: the
        consumer's generation is fenced, KIP-447); or fatal (a fenced producer)."""
        if self.offsets is None:
            return
        if error is None:
            self.ctx.event(self.producer.name, "txn-offsets-sent",
                           offsets={str(p): o for p, o in self.offsets.offsets})
            done, self.offsets = self.offsets.done, None
            done(None)
        elif error in _OFFSETS_RETRIABLE:
            if error in _OFFSETS_FIND_AGAIN:
                self.group_coordinator = None
            self._back_off()
        elif error in _OFFSETS_ABORTABLE:
            self._abortable(error)
        else:
            self._fatal(m.PRODUCER_FENCED if error == m.INVALID_PRODUCER_EPOCH else error)

    def _abortable(self, error: str) -> None:
        """``abortableError``: the application must abort; unlike a failed batch this
        needs no epoch bump afterwards.  Queued offsets fail with it
        (``maybeTerminateRequestWithError``)."""
        if self.state in (FATAL_ERROR, ABORTABLE_ERROR):
            return
        self._offsets_failed(error)
        if self.state == ABORTING:
            return          # transitionToAbortableError: already being aborted
        self.last_error = error
        self._transition(ABORTABLE_ERROR)

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
        self.offsets_added = False
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
            if self.group_coordinator == peer:
                self.group_coordinator = None
            self._back_off()
