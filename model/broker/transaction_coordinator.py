"""The transaction coordinator: Kafka's ``TransactionCoordinator``,
``TransactionStateManager`` and ``TransactionMarkerChannelManager``.

A transactional id is coordinated by the leader of ``__transaction_state`` partition
``abs(transactionalId.hashCode()) % transaction.state.log.num.partitions``
(``TransactionStateManager.partitionFor``).  Every transition of a transaction's metadata
(:class:`TxnMetadata`) is first appended to that partition like an ``acks=all`` write
(``appendTransactionToLog``); while the write is in flight the transition is *pending*
and other requests for the id get CONCURRENT_TRANSACTIONS; only once it is replicated does
the in-memory state move.  A broker that becomes leader of the partition loads the
metadata from its log (up to its log end, ``loadTransactionMetadata``) under a new
coordinator epoch (the partition's leader epoch) and completes every transaction it finds
in PrepareCommit or PrepareAbort by sending its markers again; so coordinator failover is
as real as the replication underneath.

States and transitions follow ``TransactionMetadata`` (docs/model.md, Transactions):
InitProducerId bumps the epoch and fences older instances (an Ongoing transaction is
first aborted at the bumped epoch, PrepareEpochFence), AddPartitionsToTxn opens or grows
the transaction, EndTxn writes PrepareCommit or PrepareAbort, answers, and the markers
(``WriteTxnMarkers``, with the coordinator epoch) go to every partition's leader; when all
are written the transaction is CompleteCommit or CompleteAbort.  Transactions open longer
than their timeout are aborted every
``transaction.abort.timed.out.transaction.cleanup.interval.ms`` after an epoch bump
(KAFKA-6119).  With transaction version 2 (KIP-890 part 2) every EndTxn bumps the epoch,
the markers carry the new one, and only a retry from the previous epoch is accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import attrs

from model import messages as m
from model.broker.group_coordinator import coordinator_partition, java_abs, java_string_hash
from model.metadata import PartitionId

if TYPE_CHECKING:
    from model.broker.broker import Broker

TRANSACTION_STATE_TOPIC = "__transaction_state"

EMPTY, ONGOING = "Empty", "Ongoing"
PREPARE_COMMIT, PREPARE_ABORT = "PrepareCommit", "PrepareAbort"
COMPLETE_COMMIT, COMPLETE_ABORT = "CompleteCommit", "CompleteAbort"
PREPARE_EPOCH_FENCE = "PrepareEpochFence"

# TransactionStateManager.appendTransactionToLog: how append errors reach the client.
_APPEND_ERRORS = {
    m.NOT_ENOUGH_REPLICAS: m.COORDINATOR_NOT_AVAILABLE,
    m.NOT_ENOUGH_REPLICAS_AFTER_APPEND: m.COORDINATOR_NOT_AVAILABLE,
    m.REQUEST_TIMED_OUT: m.COORDINATOR_NOT_AVAILABLE,
    m.NOT_LEADER_OR_FOLLOWER: m.NOT_COORDINATOR,
}
# Broker request.timeout.ms: the coordinator's log writes and marker writes wait this long.
BROKER_REQUEST_TIMEOUT_MS = 30000
MARKER_RETRY_BACKOFF_MS = 100


def transaction_partition(transactional_id: str, partitions: int) -> str:
    return f"{TRANSACTION_STATE_TOPIC}-{java_abs(java_string_hash(transactional_id)) % partitions}"


@attrs.frozen(slots=True)
class TxnMetadata:
    """One transactional id's metadata, as logged (``TransactionLogValue``)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    state: str
    partitions: tuple[int, ...]
    start_ms: int
    # Transaction version 2 at an exhausted epoch: the producer id the client moves to
    # once this transaction's markers are written (``nextProducerId``).
    next_producer_id: int = -1
    # ... and, after it, the id it replaced, whose EndTxn retry is still answered
    # (``retryOnOverflow``).
    previous_producer_id: int = -1

    def to_value(self) -> tuple[Any, ...]:
        return attrs.astuple(self)

    @classmethod
    def from_value(cls, value: Any) -> "TxnMetadata":
        return cls(*value[:6], tuple(value[6]), *value[7:])

    @property
    def marker_is_commit(self) -> bool:
        return self.state in (PREPARE_COMMIT, COMPLETE_COMMIT)


@attrs.define(slots=True)
class PendingMarker:
    partition: int
    corr: int | None = None       # the WriteTxnMarkers request in flight
    retry_at: int = 0


@attrs.define(slots=True)
class Coordinated:
    """The coordinator's in-memory entry for one id: its committed metadata, the
    transition being written, and the markers still to write."""

    metadata: TxnMetadata
    pending: bool = False
    markers: list[PendingMarker] = attrs.field(factory=list)
    # Every marker is written but logging Complete* failed: retried on the next tick
    # (``TransactionMarkerChannelManager``'s log-append retry queue).
    complete_due: bool = False


class TransactionCoordinator:
    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        self.ctx = broker.ctx
        self.config = broker.ctx.config.broker
        self.reset()

    def reset(self) -> None:
        """A new process: nothing loaded, nothing pending (the log survives)."""
        # __transaction_state partition -> (coordinator epoch, {transactional id: entry}).
        self.loaded: dict[PartitionId, tuple[int, dict[str, Coordinated]]] = {}
        self.marker_requests: dict[int, tuple[str, str]] = {}   # corr -> (id, broker)
        self.last_timeout_scan = self.ctx.now

    # -- where ids live ----------------------------------------------------------------

    def partition_for(self, transactional_id: str) -> str:
        return transaction_partition(transactional_id,
                                     self.config.transaction_state_log_num_partitions)

    def find_coordinator(self, src: str, generation: int, req: m.FindCoordinatorRequest) -> None:
        leader = self.broker.metadata.leader_of(self.partition_for(req.group))
        error = None if leader is not None else m.COORDINATOR_NOT_AVAILABLE
        self.broker.reply(src, generation, m.FindCoordinatorResponse(req.corr, error, leader))

    def _entries(self, transactional_id: str) -> tuple[int, dict[str, Coordinated]] | None:
        """This coordinator's loaded state for the id's partition, loading it if this
        broker has just become its leader; None if it does not lead it."""
        partition_id = self.partition_for(transactional_id)
        return self._load(partition_id)

    def _load(self, partition_id: PartitionId) -> tuple[int, dict[str, Coordinated]] | None:
        partition = self.broker.partitions.get(partition_id)
        if partition is None or not partition.is_leader:
            self.loaded.pop(partition_id, None)
            return None
        loaded = self.loaded.get(partition_id)
        if loaded is not None and loaded[0] == partition.leader_epoch:
            return loaded
        entries: dict[str, Coordinated] = {}
        for record in partition.log.records:
            metadata = TxnMetadata.from_value(record.value)
            entries[metadata.transactional_id] = Coordinated(metadata)
        loaded = self.loaded[partition_id] = (partition.leader_epoch, entries)
        self.ctx.event(self.broker.name, "txn-coordinator-loaded", partition=partition_id,
                       coordinator_epoch=partition.leader_epoch,
                       states={t: e.metadata.state for t, e in sorted(entries.items())})
        for entry in entries.values():
            if entry.metadata.state in (PREPARE_COMMIT, PREPARE_ABORT):
                self._start_markers(entry)
        return loaded

    # -- writing transitions -----------------------------------------------------------

    def _write(self, entry: Coordinated, new: TxnMetadata,
               done: Callable[[str | None], None]) -> None:
        """``appendTransactionToLog``: the transition takes effect once replicated."""
        partition_id = self.partition_for(new.transactional_id)
        partition = self.broker.partitions[partition_id]
        epoch = self.loaded[partition_id][0]
        entry.pending = True

        def complete(error: str | None, offset: int | None) -> None:
            entry.pending = False
            loaded = self.loaded.get(partition_id)
            if error is None and (loaded is None or loaded[0] != epoch):
                error = m.NOT_COORDINATOR    # we lost the partition meanwhile
            if error is None:
                entry.metadata = new
                self.ctx.event(self.broker.name, "txn-state", transactional_id=new.transactional_id,
                               producer_id=new.producer_id, producer_epoch=new.producer_epoch,
                               state=new.state, partitions=list(new.partitions))
            done(_APPEND_ERRORS.get(error, error) if error else None)

        partition.append_as_leader([(new.transactional_id, new.to_value(), self.broker.name)],
                                   "all", BROKER_REQUEST_TIMEOUT_MS, complete)

    def _bumped(self, metadata: TxnMetadata) -> tuple[int, int]:
        """``prepareIncrementProducerEpoch``: epoch + 1, or a new producer id at epoch 0
        once the epoch is exhausted (``prepareProducerIdRotation``)."""
        if metadata.producer_epoch + 1 >= self.config.max_producer_epoch:
            return self.broker.allocate_producer_id(), 0
        return metadata.producer_id, metadata.producer_epoch + 1

    # -- InitProducerId ----------------------------------------------------------------

    def init_producer_id(self, src: str, generation: int, req: m.InitProducerIdRequest) -> None:
        def reply(error: str | None, pid: int = -1, epoch: int = -1) -> None:
            self.broker.reply(src, generation, m.InitProducerIdResponse(req.corr, error, pid,
                                                                        epoch))

        tid = req.transactional_id
        assert tid is not None
        loaded = self._entries(tid)
        if loaded is None:
            reply(m.NOT_COORDINATOR)
            return
        entries = loaded[1]
        entry = entries.get(tid)
        if entry is None:
            if self.broker.needs_producer_ids:
                reply(m.COORDINATOR_LOAD_IN_PROGRESS)
                return
            fresh = TxnMetadata(tid, self.broker.allocate_producer_id(), -1, -1,
                                req.transaction_timeout_ms, EMPTY, (), -1)
            entry = entries[tid] = Coordinated(fresh)
            new = attrs.evolve(fresh, producer_epoch=0)
        elif entry.pending or entry.metadata.state in (PREPARE_COMMIT, PREPARE_ABORT):
            reply(m.CONCURRENT_TRANSACTIONS)
            return
        elif entry.metadata.state == ONGOING:
            # Fence the producer of the open transaction and abort it at the bumped
            # epoch; the caller retries (CONCURRENT_TRANSACTIONS).
            self._fence_and_abort(entry, lambda error: reply(error or m.CONCURRENT_TRANSACTIONS))
            return
        else:
            meta = entry.metadata
            if req.producer_id != -1:
                # KIP-360: an instance bumping its own epoch names it; anything but the
                # current epoch, or the one before it (a retry), was fenced meanwhile.
                if (req.producer_id != meta.producer_id
                        or req.producer_epoch not in (meta.producer_epoch,
                                                      meta.last_producer_epoch)):
                    reply(m.PRODUCER_FENCED)
                    return
                if req.producer_epoch == meta.last_producer_epoch and meta.state == EMPTY:
                    reply(None, meta.producer_id, meta.producer_epoch)   # a retry
                    return
            pid, epoch = self._bumped(meta)
            new = attrs.evolve(meta, producer_id=pid, producer_epoch=epoch,
                               last_producer_epoch=meta.producer_epoch if pid == meta.producer_id
                               else -1, timeout_ms=req.transaction_timeout_ms,
                               state=EMPTY, partitions=(), start_ms=-1, next_producer_id=-1)
        self._write(entry, new, lambda error: reply(error) if error else reply(
            None, new.producer_id, new.producer_epoch))

    def _fence_and_abort(self, entry: Coordinated, done: Callable[[str | None], None]) -> None:
        """``prepareFenceProducerEpoch`` then ``endTransaction(ABORT, isFromClient=false)``:
        the open transaction is aborted with its markers at epoch + 1, which fences every
        request of the old epoch (KAFKA-6119)."""
        old = entry.metadata
        epoch = min(old.producer_epoch + 1, self.config.max_producer_epoch)
        new = attrs.evolve(old, producer_epoch=epoch, last_producer_epoch=old.producer_epoch,
                           state=PREPARE_ABORT)
        self.ctx.event(self.broker.name, "txn-fence", transactional_id=old.transactional_id,
                       producer_id=old.producer_id, producer_epoch=epoch)

        def written(error: str | None) -> None:
            if error is None:
                self._start_markers(entry)
            done(error)

        self._write(entry, new, written)

    # -- AddPartitionsToTxn ------------------------------------------------------------

    def add_partitions(self, src: str, generation: int, req: m.AddPartitionsToTxnRequest,
                       respond: Callable[[m.AddPartitionsToTxnResponse], None] | None = None
                       ) -> None:
        """From a client, or from a partition leader (KIP-890); ``respond`` answers a
        leader on this same broker directly."""
        def reply(error: str | None) -> None:
            response = m.AddPartitionsToTxnResponse(req.corr, error)
            if respond is not None:
                respond(response)
            else:
                self.broker.reply(src, generation, response)

        loaded = self._entries(req.transactional_id)
        if loaded is None:
            reply(m.NOT_COORDINATOR)
            return
        entry = loaded[1].get(req.transactional_id)
        if entry is None or entry.metadata.producer_id != req.producer_id:
            reply(m.INVALID_PRODUCER_ID_MAPPING)
            return
        meta = entry.metadata
        if meta.producer_epoch != req.producer_epoch:
            reply(m.PRODUCER_FENCED)
            return
        if req.verify_only:
            # handleVerifyPartitionsInTransaction: pending transitions are not checked.
            if meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
                reply(m.CONCURRENT_TRANSACTIONS)
            elif meta.state == ONGOING and set(req.partitions) <= set(meta.partitions):
                reply(None)
            else:
                reply(self.broker.txn_verifier.voided_error())
            return
        if entry.pending or meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
            reply(m.CONCURRENT_TRANSACTIONS)
            return
        if meta.state == ONGOING and set(req.partitions) <= set(meta.partitions):
            reply(None)
            return
        start = meta.start_ms if meta.state == ONGOING else self.ctx.now
        new = attrs.evolve(meta, state=ONGOING, start_ms=start,
                           partitions=tuple(sorted(set(meta.partitions) | set(req.partitions))))
        self._write(entry, new, reply)

    def add_offsets(self, src: str, generation: int, req: m.AddOffsetsToTxnRequest) -> None:
        """``handleAddOffsetsToTxnRequest``: AddPartitionsToTxn of the group's
        ``__consumer_offsets`` partition, so that the transaction's markers are written
        there as well and settle the offsets the group coordinator holds for it."""
        offsets = coordinator_partition(req.group,
                                        self.ctx.config.broker.offsets_topic_num_partitions)
        add = m.AddPartitionsToTxnRequest(req.corr, req.transactional_id, req.producer_id,
                                          req.producer_epoch, (offsets,))  # type: ignore[arg-type]
        self.add_partitions(src, generation, add, lambda resp: self.broker.reply(
            src, generation, m.AddOffsetsToTxnResponse(resp.corr, resp.error)))

    # -- EndTxn ------------------------------------------------------------------------

    def end_txn(self, src: str, generation: int, req: m.EndTxnRequest) -> None:
        def reply(error: str | None, meta: TxnMetadata | None = None) -> None:
            pid, epoch = -1, -1
            if meta is not None and self.ctx.config.kafka.transactions_v2:
                pid, epoch = ((meta.next_producer_id, 0) if meta.next_producer_id != -1
                              else (meta.producer_id, meta.producer_epoch))
            self.broker.reply(src, generation, m.EndTxnResponse(req.corr, error, pid, epoch))

        loaded = self._entries(req.transactional_id)
        if loaded is None:
            reply(m.NOT_COORDINATOR)
            return
        entry = loaded[1].get(req.transactional_id)
        v2 = self.ctx.config.kafka.transactions_v2
        prepare = PREPARE_COMMIT if req.commit else PREPARE_ABORT
        complete = COMPLETE_COMMIT if req.commit else COMPLETE_ABORT
        if (entry is not None and v2 and req.producer_id != -1
                and req.producer_id == entry.metadata.previous_producer_id
                and entry.metadata.state == complete and not entry.pending):
            reply(None, entry.metadata)        # retryOnOverflow: the rotated id's retry
            return
        if entry is None or entry.metadata.producer_id != req.producer_id:
            reply(m.INVALID_PRODUCER_ID_MAPPING)
            return
        meta = entry.metadata
        other = {PREPARE_COMMIT, COMPLETE_COMMIT, PREPARE_ABORT, COMPLETE_ABORT} - {
            prepare, complete}
        if v2:
            # TransactionCoordinator.endTransaction with isEpochBumpRequired: only the
            # current epoch may end an Ongoing transaction; a retry names the epoch the
            # transaction had before its EndTxn bumped it.
            is_retry = (req.producer_epoch == meta.last_producer_epoch
                        and meta.state in (prepare, complete, *other))
            if meta.state == ONGOING and req.producer_epoch == meta.producer_epoch:
                pass
            elif not is_retry:
                reply(m.PRODUCER_FENCED)
                return
        elif req.producer_epoch != meta.producer_epoch:
            reply(m.PRODUCER_FENCED)
            return
        if entry.pending:
            reply(m.CONCURRENT_TRANSACTIONS)
            return
        if meta.state == ONGOING:
            if v2:
                # prepareAbortOrCommit: the markers go out under the bumped epoch and the
                # same producer id; at an exhausted epoch the next producer id is taken
                # now and used once the markers are written.
                epoch = meta.producer_epoch + 1
                next_id = (self.broker.allocate_producer_id()
                           if epoch >= self.config.max_producer_epoch else -1)
                new = attrs.evolve(meta, producer_epoch=epoch,
                                   last_producer_epoch=meta.producer_epoch, state=prepare,
                                   next_producer_id=next_id)
            else:
                new = attrs.evolve(meta, state=prepare)

            def written(error: str | None) -> None:
                if error is None:
                    self._start_markers(entry)
                reply(error, new)

            self._write(entry, new, written)
        elif meta.state == complete:
            reply(None, meta)                 # a retry of the EndTxn that completed it
        elif meta.state == prepare:
            reply(m.CONCURRENT_TRANSACTIONS)
        else:
            reply(m.INVALID_TXN_STATE)

    # -- markers -----------------------------------------------------------------------

    def _start_markers(self, entry: Coordinated) -> None:
        entry.markers = [PendingMarker(p) for p in entry.metadata.partitions]
        if not entry.markers:
            self._complete(entry)
            return
        self._send_markers(entry)

    def _send_markers(self, entry: Coordinated) -> None:
        meta = entry.metadata
        coordinator_epoch = self.loaded[self.partition_for(meta.transactional_id)][0]
        for marker in entry.markers:
            if marker.corr is not None or marker.retry_at > self.ctx.now:
                continue
            leader = self.broker.metadata.leader_of(marker.partition)
            if leader is None:
                marker.retry_at = self.ctx.now + MARKER_RETRY_BACKOFF_MS
                continue
            corr = self.ctx.next_corr()
            request = m.WriteTxnMarkersRequest(corr, marker.partition, meta.producer_id,
                                               meta.producer_epoch, meta.marker_is_commit,
                                               coordinator_epoch)
            if leader == self.broker.name:
                self.marker_requests[corr] = (meta.transactional_id, leader)
                marker.corr = corr
                self.broker.write_txn_marker(request, self.on_marker_response)
            elif self.ctx.send(self.broker.name, leader, request):
                self.marker_requests[corr] = (meta.transactional_id, leader)
                marker.corr = corr
            else:
                marker.retry_at = self.ctx.now + MARKER_RETRY_BACKOFF_MS

    def on_marker_response(self, resp: m.WriteTxnMarkersResponse) -> None:
        """``TransactionMarkerRequestCompletionHandler``: retriable errors are retried;
        a fenced epoch or coordinator epoch stops sending (another coordinator owns the
        transaction now)."""
        key = self.marker_requests.pop(resp.corr, None)
        if key is None:
            return
        entry = self._entry(key[0])
        if entry is None:
            return
        marker = next((mk for mk in entry.markers if mk.corr == resp.corr), None)
        if marker is None:
            return
        marker.corr = None
        if resp.error is None:
            entry.markers.remove(marker)
            if not entry.markers:
                self._complete(entry)
        elif resp.error in (m.INVALID_PRODUCER_EPOCH, m.TRANSACTION_COORDINATOR_FENCED):
            entry.markers = []
            self.ctx.event(self.broker.name, "txn-markers-abandoned",
                           transactional_id=key[0], error=resp.error)
        else:
            marker.retry_at = self.ctx.now + MARKER_RETRY_BACKOFF_MS

    def _entry(self, transactional_id: str) -> Coordinated | None:
        loaded = self.loaded.get(self.partition_for(transactional_id))
        return None if loaded is None else loaded[1].get(transactional_id)

    def _complete(self, entry: Coordinated) -> None:
        """All markers written: CompleteCommit or CompleteAbort."""
        meta = entry.metadata
        state = COMPLETE_COMMIT if meta.state == PREPARE_COMMIT else COMPLETE_ABORT
        entry.complete_due = False
        if meta.next_producer_id != -1:       # prepareComplete: the rotation takes effect
            meta = attrs.evolve(meta, producer_id=meta.next_producer_id, producer_epoch=0,
                                last_producer_epoch=-1, next_producer_id=-1,
                                previous_producer_id=meta.producer_id)

        def written(error: str | None) -> None:
            if error is not None and error != m.NOT_COORDINATOR:
                entry.complete_due = True

        self._write(entry, attrs.evolve(meta, state=state, partitions=()), written)

    # -- timers and connections --------------------------------------------------------

    def on_tick(self) -> None:
        for partition_id in sorted(self.broker.partitions, key=str):
            if str(partition_id).startswith(TRANSACTION_STATE_TOPIC):
                self._load(partition_id)
        period = self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms
        scan = self.last_timeout_scan + (self.ctx.now - self.last_timeout_scan) // period * period
        timed_out_scan = scan > self.last_timeout_scan
        if timed_out_scan:
            self.last_timeout_scan = scan
        for _, (_, entries) in sorted(self.loaded.items(), key=lambda kv: str(kv[0])):
            for tid, entry in sorted(entries.items()):
                meta = entry.metadata
                if (timed_out_scan and meta.state == ONGOING and not entry.pending
                        and meta.start_ms + meta.timeout_ms < scan):
                    self.ctx.event(self.broker.name, "txn-timeout", transactional_id=tid)
                    self._fence_and_abort(entry, lambda error: None)
                elif entry.markers:
                    self._send_markers(entry)
                elif entry.complete_due and not entry.pending:
                    self._complete(entry)

    def on_disconnect(self, peer: str) -> None:
        """Marker requests on a lost connection are sent again (to whichever broker
        leads the partition then)."""
        for corr, (tid, broker) in sorted(self.marker_requests.items()):
            if broker != peer:
                continue
            del self.marker_requests[corr]
            entry = self._entry(tid)
            marker = None if entry is None else next(
                (mk for mk in entry.markers if mk.corr == corr), None)
            if marker is not None:
                marker.corr = None
                marker.retry_at = self.ctx.now + MARKER_RETRY_BACKOFF_MS
