"""A consumer assigned to every partition, and the application loop around it.

The consumer pulls from each partition's leader from its position, sees only records
below the high watermark (read_uncommitted), detects log truncation through
``lastFetchedEpoch`` (KIP-320) and resets per ``auto.offset.reset`` when it has no committed
offset or its position is out of range.  ``poll`` returns what earlier fetches buffered and
sends the next fetches (the Java client pipelines the same way).  Committed offsets are
read and written through the group coordinator
(:class:`model.clients.coordinator.ConsumerCoordinator`).

With ``kafkacheck.consumer.api=subscribe`` the consumer is a member of a classic group
(:mod:`model.clients.membership`): its partitions are what the group's last rebalance
gave it, ``poll()`` drives the rebalances, and with ``enable.auto.commit=true`` it
commits the positions of what earlier polls returned, asynchronously at the start of a
poll once ``auto.commit.interval.ms`` has passed, before a rebalance and on ``close()``
(``ConsumerCoordinator.maybeAutoCommitOffsetsAsync``, ``onJoinPrepare``,
``maybeAutoCommitOffsetsSync``).

The application loop is the part users get wrong, so it is explicit state:
``kafkacheck.commit.strategy=after-processing`` is ``poll; process each; commitSync``
(at-least-once), ``before-processing`` is ``poll; commitSync; process each`` (at-most-once;
if commitSync throws the batch is skipped, as an exception from it would do), ``none``
leaves commits to auto-commit.  ``kafkacheck.processing=async`` hands polled records to
a worker that processes them later while the loop polls on.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from model import messages as m
from model.clients.coordinator import RETRIABLE, ConsumerCoordinator
from model.clients.consumer_membership import ConsumerGroupMembership
from model.clients.membership import NO_GENERATION, GroupMembership
from model.clients.producer import Producer
from model.clients.transform import TransformLoop
from model.context import Context
from model.broker.log import UNDEFINED_EPOCH, Record
from model.broker.producer_state import ABORT, NO_PRODUCER_ID

POLL, PROCESS, COMMIT = "poll", "process", "commit"
# Blocked in a transactional call of the output producer (consume-transform-produce).
WAITING_FOR_TRANSACTION = "waiting-for-transaction"
# onJoinPrepare's auto-commit: not started, in flight, finished (or given up on).
NOT_STARTED, WAITING, DONE = "not-started", "waiting", "done"


def returned_records(records: tuple[Record, ...], read_committed: bool,
                     aborted: tuple[tuple[int, int], ...]) -> list[Record]:
    """What the consumer returns from a fetched range (``CompletedFetch``): never a
    control record; with read_committed, no record of a batch whose producer's
    transaction the broker listed as aborted (a producer joins the aborted set when the
    range reaches that transaction's first offset, and leaves it at its ABORT marker)."""
    out: list[Record] = []
    pending = sorted(aborted, key=lambda a: a[1])
    aborted_producers: set[int] = set()
    index = 0
    while index < len(records):
        first = records[index]
        end = index + 1
        while (end < len(records) and records[end].offset - records[end].batch_index
               == first.offset - first.batch_index):
            end += 1
        batch = records[index:end]
        index = end
        if read_committed and first.producer_id != NO_PRODUCER_ID:
            while pending and pending[0][1] <= batch[-1].offset:
                aborted_producers.add(pending.pop(0)[0])
            if first.control == ABORT:
                aborted_producers.discard(first.producer_id)
            elif first.transactional and first.producer_id in aborted_producers:
                continue
        if first.control is None:
            out.extend(batch)
    return out


class Consumer:
    def __init__(self, name: str, ctx: Context,
                 metadata: Callable[[int], tuple[str | None, int]], brokers: list[str],
                 output: Producer | None = None) -> None:
        """``output``: the process's transactional producer, with
        ``kafkacheck.processing=transform`` (:mod:`model.clients.transform`)."""
        self.name = name
        self.ctx = ctx
        self.lookup = metadata
        self.brokers = brokers          # the bootstrap servers
        self.alive = True
        self.incarnation = 0
        self.subscribing = ctx.config.consumer.subscription == "subscribe"
        self.output = output
        self.transform = TransformLoop(self, output) if output is not None else None
        self._start()

    @property
    def op_process(self) -> str:
        """The Jepsen process of this incarnation (a restarted client is a new process)."""
        return f"{self.name}:{self.incarnation}"

    def _start(self) -> None:
        config = self.ctx.config.consumer
        if self.transform is not None:
            self.transform.reset()
        self.partitions = [] if self.subscribing else list(range(self.ctx.config.topic.partitions))
        self.positions: dict[int, int | None] = {p: None for p in self.partitions}
        self.position_epochs: dict[int, int] = {p: UNDEFINED_EPOCH for p in self.partitions}
        self.buffer: dict[int, list[Record]] = {p: [] for p in self.partitions}
        # The buffered fetch's offset, where it ended (the next fetch offset, past any
        # control or aborted records it skipped) and the epoch of its last batch.
        self.buffer_end: dict[int, tuple[int, int, int] | None] = {
            p: None for p in self.partitions}
        self.read_committed = self.ctx.config.consumer.isolation_level == "read_committed"
        # partition -> (corr, broker, sent_at) of the fetch / ListOffsets in flight
        self.fetching: dict[int, tuple[int, str, int]] = {}
        self.listing: dict[int, tuple[int, str, int]] = {}
        self.pending: deque[tuple[int, Record]] = deque()   # polled, not yet processed
        self.processed: dict[int, int] = {}                 # next offset after processed
        self.returned: dict[int, int] = {}                  # next offset after returned
        self.phase = POLL
        self.leaders: dict[int, tuple[str | None, int]] = {}
        self.coordinator = ConsumerCoordinator(self.name, self.ctx, self.brokers,
                                               self._commit_done, self._on_committed)
        self.coordinator.initializing = lambda: tuple(
            p for p in self.partitions if self.positions.get(p) is None)
        self.membership: GroupMembership | ConsumerGroupMembership | None = None
        # The KIP-848 consumer (AsyncKafkaConsumer) looks up the positions of newly
        # assigned partitions only when the application polls: poll() sends
        # CheckAndUpdatePositionsEvent, whose OffsetFetch and then ListOffsets the
        # background thread carries out.  False from an assignment that added partitions
        # until the next poll; always True for other consumers, whose reassignment runs
        # inside poll() already.
        self.positions_requested = True
        self.coordinator.positions_wanted = lambda: self.positions_requested
        # Partitions being revoked (KIP-848): no longer fetched or returned.
        self.revoking: set[int] = set()
        self.last_poll = self.ctx.now
        self.next_auto_commit = self.ctx.now + config.auto_commit_interval_ms
        self.join_commit = NOT_STARTED
        self.join_commit_deadline = 0
        self.join_prepared = False      # AbstractCoordinator's needsJoinPrepare, inverted
        # consumer.groupMetadata(): (generation, member id) as of the last completed
        # join.  ConsumerCoordinator sets it only in onJoinComplete, so a member that
        # has lost its generation still names the one it last had (and is fenced).
        self.group_metadata: tuple[int, str] = (NO_GENERATION, "")
        self.refresh_metadata()
        if self.subscribing:
            if config.group_protocol == "consumer":
                self.membership = ConsumerGroupMembership(self.coordinator, self)
                self.coordinator.keeps_waiting_commits = True
            else:
                self.membership = GroupMembership(self.coordinator, self._generation_lost,
                                                  lambda: tuple(self.partitions), self._fenced)
            self.coordinator.membership = self.membership
            self.coordinator.committed_known = True    # nothing assigned yet
            # Jepsen's :subscribe names the keys (partitions) of the topics subscribed to.
            every = list(range(self.ctx.config.topic.partitions))
            self.ctx.history.add(self.op_process, "invoke", "subscribe", every)
            self.ctx.history.add(self.op_process, "ok", "subscribe", every)
            return
        self.ctx.history.add(self.op_process, "invoke", "assign", list(self.partitions))
        self.ctx.history.add(self.op_process, "ok", "assign", list(self.partitions))
        self.coordinator.advance()

    def refresh_metadata(self) -> None:
        self.leaders = {p: self.lookup(p) for p in self.partitions}

    # -- what the application may do now ------------------------------------------------

    def can_poll(self) -> bool:
        """Polling waits for the output producer's initTransactions (transform)."""
        return (self.alive and self.phase == POLL
                and (self.transform is None or self.transform.ready()))

    def can_process(self) -> bool:
        if self.ctx.config.consumer.processing == "async":
            return self.alive and bool(self.pending)
        return self.alive and self.phase == PROCESS and bool(self.pending)

    def can_close(self) -> bool:
        """Processing failed and the application closes the consumer: only with
        ``kafkacheck.processing.failure=close``, while it has records to process."""
        return (self.ctx.config.consumer.processing_failure == "close" and self.can_process()
                and self.coordinator.commit is None)

    def can_commit(self) -> bool:
        return self.alive and self.phase == COMMIT and self.coordinator.commit is None

    def caught_up(self, high_watermarks: dict[int, int]) -> bool:
        """Everything below each HW of its partitions was returned, processed and
        committed (or skipped); a group member also holds a stable generation."""
        if self.membership is not None and not self.membership.stable:
            return False
        return (self.alive and self.phase == POLL and not self.pending
                and self.coordinator.commit is None
                and (self.transform is None or self.transform.ready())
                and all(self.positions[p] is not None
                        and self.positions[p] >= hw  # type: ignore[operator]
                        for p, hw in high_watermarks.items() if p in self.positions))

    # -- application calls -------------------------------------------------------------

    def poll(self) -> None:
        self.ctx.history.add(self.op_process, "invoke", "poll", [["poll"]])
        self.last_poll = self.ctx.now
        returned: dict[int, list[list[int]]] = {}
        if isinstance(self.membership, ConsumerGroupMembership):
            self.membership.on_poll()
            # updateAssignmentMetadataIfNeeded, after the reconciliation's callbacks.
            self.positions_requested = True
            if self.ctx.config.kafka.behaviours.auto_commit_at_poll:
                self._maybe_auto_commit()
        elif self.membership is not None and not self._poll_group():
            self.ctx.history.add(self.op_process, "ok", "poll", [["poll", returned]])
            self._send_requests()
            return
        else:
            self._maybe_auto_commit()
        for p in self.partitions:
            if p in self.revoking:
                continue       # FetchCollector drops what it holds for such a partition
            position = self.positions[p]
            fetched = self.buffer_end[p]
            taken = self.buffer[p]
            self.buffer[p], self.buffer_end[p] = [], None
            if fetched is None or fetched[0] != position:
                continue       # fetched for a position we have since left
            _, end, epoch = fetched
            if end > position:
                self.positions[p] = end
                self.position_epochs[p] = epoch
                self.returned[p] = end
            if taken:
                returned[p] = [[r.offset, r.value] for r in taken]
                self.pending.extend((p, r) for r in taken)
        self.ctx.history.add(self.op_process, "ok", "poll", [["poll", returned]])
        config = self.ctx.config.consumer
        if self.pending and config.processing == "transform":
            self.phase = PROCESS
        elif self.pending and config.processing == "sync":
            strategy = config.commit_strategy
            self.phase = COMMIT if strategy == "before-processing" else PROCESS
        self._send_requests()

    # -- auto-commit and rebalances (subscribe) ------------------------------------------

    def all_consumed(self) -> dict[int, int]:
        """``SubscriptionState.allConsumed``: the position of every assigned partition
        that has one (what earlier polls returned)."""
        return {p: o for p, o in sorted(self.positions.items()) if o is not None}

    def _maybe_auto_commit(self) -> None:
        """``maybeAutoCommitOffsetsAsync``: once the interval has passed, an async commit
        of the consumed positions; a retriable failure retries after the backoff."""
        config = self.ctx.config.consumer
        if not config.enable_auto_commit or self.ctx.now < self.next_auto_commit:
            return
        if (isinstance(self.membership, ConsumerGroupMembership)
                and self.coordinator.async_commit_pending()):
            return    # CommitRequestManager: no new auto-commit while one is queued or sent
        self.next_auto_commit = self.ctx.now + config.auto_commit_interval_ms
        offsets = self.all_consumed()
        if offsets:
            self._auto_commit(offsets, "interval", self._auto_commit_done)

    def _auto_commit(self, offsets: dict[int, int], reason: str, done: Any) -> None:
        self.ctx.event(self.name, "auto-commit", offsets={str(p): o for p, o in offsets.items()},
                       reason=reason)
        self.coordinator.commit_async(offsets, done)

    def _auto_commit_done(self, offsets: dict[int, int], error: str | None) -> None:
        if error is not None:
            self.ctx.event(self.name, "auto-commit-failed", error=error)
            # ConsumerCoordinator.maybeAutoCommitOffsetsAsync retries a retriable failure
            # after retry.backoff.ms.  The KIP-848 consumer's check looks for a wrapped
            # exception its futures never carry, so it waits the full interval.
            if error in RETRIABLE and not isinstance(self.membership, ConsumerGroupMembership):
                self.next_auto_commit = self.ctx.now + self.ctx.config.producer.retry_backoff_ms

    def _poll_group(self) -> bool:
        """``ConsumerCoordinator.poll``: finish a rebalance whose assignment arrived, or
        start one that is wanted; True when the consumer may fetch.  ``poll`` does not
        wait for a rebalance (KIP-429): a COOPERATIVE member fetches from the partitions
        it still owns meanwhile, an EAGER one owns none by then."""
        membership = self.membership
        assert membership is not None
        assignment = membership.take_assignment()
        if assignment is not None:
            self._join_complete(assignment)
        if not membership.needs_join():
            return membership.stable or membership.cooperative
        if not self._join_prepare():
            return membership.cooperative
        membership.send_join()
        if membership.state != "unjoined":
            self.join_commit = NOT_STARTED
        return membership.cooperative

    def _join_prepare(self) -> bool:
        """``onJoinPrepare``, once per rebalance (``needsJoinPrepare``): with auto-commit,
        commit the consumed positions first and wait for the answer (up to the rebalance
        timeout); then drop every partition as lost when the generation is already gone,
        or, EAGER, revoke every partition (a COOPERATIVE member keeps them)."""
        membership = self.membership
        assert membership is not None
        if self.join_prepared:
            return True
        config = self.ctx.config.consumer
        if self.join_commit == WAITING:
            if self.ctx.now < self.join_commit_deadline:
                return False
            self.join_commit = DONE
        if (self.join_commit == NOT_STARTED and config.enable_auto_commit
                and membership.generation != NO_GENERATION and self.all_consumed()):
            self.join_commit = WAITING
            self.join_commit_deadline = self.ctx.now + config.max_poll_interval_ms
            self._auto_commit(self.all_consumed(), "before rebalance", self._join_commit_done)
            return self.join_commit != WAITING
        lost = membership.generation == NO_GENERATION
        if self.partitions and (lost or not membership.cooperative):
            self.ctx.event(self.name, "lost" if lost else "revoked", member=membership.member_id,
                           generation=membership.owned_generation,
                           partitions=list(self.partitions))
            self._set_partitions([])
        self.join_prepared = True
        return True

    def _join_commit_done(self, offsets: dict[int, int], error: str | None) -> None:
        if error is not None:
            self.ctx.event(self.name, "auto-commit-failed", error=error)
            if error in RETRIABLE and self.ctx.now < self.join_commit_deadline:
                self.join_commit = NOT_STARTED   # the next poll tries again
                return
        self.join_commit = DONE

    def _join_complete(self, assignment: tuple[int, ...]) -> None:
        """``onJoinComplete``: the new generation's partitions; the committed offsets of
        those new to this member are fetched before their first fetch.  COOPERATIVE:
        partitions owned and no longer assigned are revoked first, and then the member
        rejoins so that their new owner can get them in the next generation."""
        membership = self.membership
        assert membership is not None
        self.join_prepared = False
        self.group_metadata = (membership.generation, membership.member_id)
        owned = set(self.partitions)
        revoked = sorted(owned - set(assignment))
        if revoked:
            assert membership.cooperative, "an EAGER member revoked everything before joining"
            self.ctx.event(self.name, "revoked", member=membership.member_id,
                           generation=membership.owned_generation, partitions=revoked)
            membership.request_rejoin(f"need to revoke partitions {revoked} and re-join")
        added = [p for p in assignment if p not in owned]
        self.ctx.event(self.name, "assigned", member=membership.member_id,
                       generation=membership.generation, partitions=added)
        if not membership.cooperative:
            self._set_partitions(list(assignment))
        else:
            self._change_partitions(revoked, added)
        self.next_auto_commit = self.ctx.now + self.ctx.config.consumer.auto_commit_interval_ms

    def _set_partitions(self, partitions: list[int]) -> None:
        self.partitions = sorted(partitions)
        self.revoking = set()
        self.positions = {p: None for p in self.partitions}
        self.position_epochs = {p: UNDEFINED_EPOCH for p in self.partitions}
        self.buffer = {p: [] for p in self.partitions}
        self.buffer_end = {p: None for p in self.partitions}
        self.fetching, self.listing = {}, {}
        self.processed = {p: o for p, o in self.processed.items() if p in self.positions}
        self.returned = {p: o for p, o in self.returned.items() if p in self.positions}
        self.coordinator.offsets_fetch = None
        self.coordinator.committed_known = not self.partitions
        self.refresh_metadata()

    def _change_partitions(self, revoked: list[int], added: list[int]) -> None:
        """``SubscriptionState.assignFromSubscribed`` keeping the partitions that stay:
        their positions, buffered records and fetches in flight are untouched."""
        for p in revoked:
            for table in (self.positions, self.position_epochs, self.buffer, self.buffer_end,
                          self.fetching, self.listing, self.processed, self.returned):
                table.pop(p, None)
            self.revoking.discard(p)
        for p in added:
            self.positions[p] = None
            self.position_epochs[p] = UNDEFINED_EPOCH
            self.buffer[p], self.buffer_end[p] = [], None
        self.partitions = sorted(self.positions)
        if added:
            self.coordinator.offsets_fetch = None
            self.coordinator.committed_known = False
            if isinstance(self.membership, ConsumerGroupMembership):
                self.positions_requested = False     # until the application polls
        self.refresh_metadata()

    # -- the KIP-848 membership's calls (model.clients.consumer_membership) ----------------

    def busy(self) -> bool:
        """The application is processing or committing, not polling."""
        return self.phase != POLL

    def stop_fetching(self, partitions: list[int]) -> None:
        """``markPendingRevocationToPauseFetching``: no more fetches or returned
        records for partitions about to be revoked."""
        for p in partitions:
            if p in self.positions:
                self.revoking.add(p)
                self.buffer[p], self.buffer_end[p] = [], None

    def reassign(self, revoked: list[int], added: list[int]) -> None:
        """A reconciliation's ``revokePartitions`` then ``assignPartitions``: kept
        partitions keep their positions; added ones start from the committed offsets."""
        membership = self.membership
        assert membership is not None
        if revoked:
            self.ctx.event(self.name, "revoked", member=membership.member_id,
                           generation=membership.owned_generation, partitions=revoked)
        self.ctx.event(self.name, "assigned", member=membership.member_id,
                       generation=membership.owned_generation, partitions=added)
        self._change_partitions(revoked, added)
        self._send_requests()

    def lose_partitions(self, reason: str) -> None:
        """``onPartitionsLost`` and ``clearAssignment``: the partitions go with nothing
        committed."""
        membership = self.membership
        assert membership is not None
        if self.partitions:
            self.ctx.event(self.name, "lost", member=membership.member_id,
                           generation=membership.owned_generation,
                           partitions=list(self.partitions), reason=reason)
        self._set_partitions([])

    def group_error(self, error: str) -> None:
        """A fatal error of the group protocol: poll() throws it and the application
        ends (a restart is a new process)."""
        self._fenced(error)

    def _generation_lost(self, reason: str) -> None:
        self.join_prepared = False       # resetStateAndRejoin: needsJoinPrepare = true
        self.ctx.event(self.name, "generation-lost", reason=reason)

    def _fenced(self, error: str) -> None:
        """FencedInstanceIdException (KIP-345): another process joined with this
        consumer's group.instance.id; the exception is fatal, so poll() or commitSync()
        throws it and the application ends (a restart is a new process)."""
        if not self.alive:
            return
        self.ctx.event(self.name, "fenced", member=self.membership.member_id
                       if self.membership is not None else "", error=error)
        self._abandon_process()
        self.ctx.history.add(self.op_process, "info", "crash", None,
                             {"error": "FencedInstanceIdException"})

    def close(self) -> None:
        """``KafkaConsumer.close()``: with auto-commit, a last commit of the consumed
        positions (the last poll's records included, processed or not), then LeaveGroup,
        and the process ends.  Kafka waits for the commit's answer (retrying up to the
        close timeout); kafkacheck sends it once and does not wait."""
        offsets = self.all_consumed()
        if self.ctx.config.consumer.enable_auto_commit and offsets:
            self._auto_commit(offsets, "close", lambda offsets, error: None)
        if self.membership is not None:
            self.membership.leave_group("consumer closed")
        self._abandon_process()
        self.ctx.event(self.name, "close")

    def process(self) -> None:
        if self.transform is not None:
            self._transform_one()
            return
        partition, record = self.pending.popleft()
        self.ctx.history.add(self.op_process, "ok", "process",
                             [partition, record.offset, record.value], {"key": record.key})
        if partition in self.positions:
            self.processed[partition] = record.offset + 1
        if self.ctx.config.consumer.processing == "async":
            return
        if not self.pending:
            strategy = self.ctx.config.consumer.commit_strategy
            self.phase = COMMIT if strategy == "after-processing" else POLL

    def commit(self) -> None:
        if self.transform is not None:
            self.phase = WAITING_FOR_TRANSACTION
            self.transform.commit(self._owned(self.processed))
            return
        strategy = self.ctx.config.consumer.commit_strategy
        offsets = self._owned(self.processed if strategy == "after-processing"
                              else self.returned)
        self.ctx.history.add(self.op_process, "invoke", "commit", offsets)
        self.coordinator.commit_sync(offsets)

    def _commit_done(self, offsets: dict[int, int], outcome: str, error: str | None) -> None:
        meta = {"error": error} if error else None
        self.ctx.history.add(self.op_process, outcome, "commit", offsets, meta)
        if error == m.FENCED_INSTANCE_ID:
            self._fenced(error)
            return
        if self.transform is not None:
            self.transform.offsets_committed()
            self.phase = POLL
            return
        strategy = self.ctx.config.consumer.commit_strategy
        if strategy == "before-processing" and outcome != "ok":
            # commitSync threw: the application never processes this batch.
            self.pending.clear()
            self.phase = POLL
        else:
            self.phase = PROCESS if strategy == "before-processing" and self.pending else POLL

    # -- consume-transform-produce (model.clients.transform) ---------------------------

    def _owned(self, offsets: dict[int, int]) -> dict[int, int]:
        """A member commits only the partitions it owns."""
        if self.membership is None:
            return dict(offsets)
        return {p: o for p, o in offsets.items() if p in self.positions}

    def _transform_one(self) -> None:
        assert self.transform is not None
        partition, record = self.pending.popleft()
        if partition in self.positions:
            self.processed[partition] = record.offset + 1
        self.transform.transform(partition, record)
        if not self.pending:
            self.phase = COMMIT

    def transaction_done(self) -> None:
        """commitTransaction returned: the loop polls again."""
        self.phase = POLL

    def commit_outside_transaction(self, offsets: dict[int, int]) -> None:
        """``commitSync`` of the positions after the output transaction committed."""
        self.ctx.history.add(self.op_process, "invoke", "commit", offsets)
        self.coordinator.commit_sync(offsets)

    def transaction_aborted(self, rewind: bool) -> None:
        """abortTransaction returned; with ``rewind`` the loop seeks every partition back
        to its committed offset (``resetToLastCommittedPositions``: a stable
        OffsetFetch, then ``auto.offset.reset`` where there is none)."""
        self.pending.clear()
        self.phase = POLL
        if not rewind or not self.partitions:
            return
        self._set_partitions(list(self.partitions))   # positions unknown again
        self.processed, self.returned = {}, {}         # nothing past the committed offsets
        self.ctx.event(self.name, "rewind", partitions=list(self.partitions))
        self._send_requests()

    def output_fenced(self, error: str) -> None:
        """The output producer's error is fatal (ProducerFencedException: a newer
        process took its transactional.id): the application closes both clients and
        the process ends."""
        if not self.alive:
            return
        self.ctx.event(self.name, "output-fenced", error=error)
        self._abandon_process()
        self.ctx.history.add(self.op_process, "info", "crash", None,
                             {"error": "ProducerFencedException"
                              if error == m.PRODUCER_FENCED else error})

    # -- requests ----------------------------------------------------------------------

    def _on_committed(self, offsets: dict[int, int]) -> None:
        for p, offset in sorted(offsets.items()):
            if self.positions.get(p, 0) is not None:
                continue       # another member's partition, or one this one is reading
            self.positions[p] = offset
            self.processed[p] = offset
            self.returned[p] = offset
            self.ctx.event(self.name, "position", partition=p, offset=offset, reason="committed")
        self._send_requests()  # poll() chains OffsetFetch -> ListOffsets -> Fetch itself

    def _send_requests(self) -> None:
        """Fetch every partition with a position; a partition without one waits for the
        committed offsets, then resets per ``auto.offset.reset`` if there is none."""
        initializing = not self.coordinator.committed_known
        if initializing:
            self.coordinator.advance()
        now = self.ctx.now
        for p in self.partitions:
            leader, epoch = self.leaders[p]
            if leader is None or p in self.revoking:
                continue
            if self.positions[p] is None:
                if not initializing and p not in self.listing and self.positions_requested:
                    corr = self.ctx.next_corr()
                    reset = self.ctx.config.consumer.auto_offset_reset
                    if self.ctx.send(self.name, leader, m.ListOffsetsRequest(
                            corr, p, reset, epoch, self.read_committed)):
                        self.listing[p] = (corr, leader, now)
                continue
            if p not in self.fetching:
                corr = self.ctx.next_corr()
                position = self.positions[p]
                request = m.FetchRequest(corr, p, None, position,  # type: ignore[arg-type]
                                         self.position_epochs[p], epoch,
                                         read_committed=self.read_committed)
                if self.ctx.send(self.name, leader, request):
                    self.fetching[p] = (corr, leader, now)

    def receive(self, src: str, generation: int, message: Any) -> None:
        if isinstance(message, m.FetchResponse):
            self._on_fetch(message)
        elif isinstance(message, m.ListOffsetsResponse):
            self._on_list_offsets(message)
        elif isinstance(message, m.FindCoordinatorResponse):
            self.coordinator.on_find_coordinator(message)
        elif isinstance(message, m.OffsetFetchResponse):
            self.coordinator.on_offset_fetch(message)
        elif isinstance(message, m.OffsetCommitResponse):
            self.coordinator.on_commit_response(message)
            self.coordinator.advance()
        elif isinstance(message, m.JoinGroupResponse) and self.membership is not None:
            self.membership.on_join_response(message)
        elif isinstance(message, m.SyncGroupResponse) and self.membership is not None:
            self.membership.on_sync_response(message)
        elif isinstance(message, m.LeaveGroupResponse) and isinstance(self.membership,
                                                                      GroupMembership):
            self.membership.on_leave_response(message)
        elif (isinstance(message, m.ConsumerGroupHeartbeatResponse)
              and isinstance(self.membership, ConsumerGroupMembership)):
            self.membership.on_heartbeat_response(message)
        else:
            raise TypeError(f"consumer cannot handle {type(message).__name__}")

    def _on_list_offsets(self, resp: m.ListOffsetsResponse) -> None:
        if resp.partition not in self.positions:
            return
        if self.listing.get(resp.partition, (None,))[0] != resp.corr:
            return
        del self.listing[resp.partition]
        if resp.error is not None:
            self.refresh_metadata()
            return
        # A reset to the log end says so: what was written before is never consumed.
        latest = {"reset": "latest"} if self.ctx.config.consumer.auto_offset_reset == "latest" else {}
        self._reset_to(resp.partition, resp.offset, "auto.offset.reset", **latest)
        self._send_requests()

    def _reset_to(self, p: int, offset: int, reason: str, **detail: str) -> None:
        self.positions[p] = offset
        self.position_epochs[p] = UNDEFINED_EPOCH
        self.buffer[p], self.buffer_end[p] = [], None
        self.ctx.event(self.name, "position", partition=p, offset=offset, reason=reason,
                       **detail)

    def _on_fetch(self, resp: m.FetchResponse) -> None:
        p = resp.partition
        assert isinstance(p, int)
        if p not in self.positions or self.fetching.get(p, (None,))[0] != resp.corr:
            return
        del self.fetching[p]
        if resp.fetch_offset != self.positions[p]:
            return  # the position moved since this fetch was sent
        if resp.error == m.OFFSET_OUT_OF_RANGE:
            self.positions[p] = None  # reset on the next poll, per auto.offset.reset
            self.ctx.event(self.name, "position", partition=p, offset=None, reason="out-of-range")
            return
        if resp.error is not None:
            self.refresh_metadata()
            return
        if resp.diverging is not None:
            # Truncation detected (KIP-320): move back to where our history and the log agree.
            epoch, end = resp.diverging
            self._reset_to(p, max(0, min(end, self.positions[p])), "truncation")  # type: ignore
            return
        # The broker bounds what a read_uncommitted consumer may see by the HW
        # (FetchIsolation.HIGH_WATERMARK); the Java client takes what it is given.
        self.buffer[p] = returned_records(resp.records, self.read_committed, resp.aborted)
        if resp.records:
            last = resp.records[-1]
            self.buffer_end[p] = (resp.fetch_offset, last.offset + 1, last.epoch)

    # -- timers, connections, crash ----------------------------------------------------

    def on_tick(self) -> None:
        limit = self.ctx.now - self.ctx.config.producer.request_timeout_ms
        timed_out = self.coordinator.timed_out_brokers() | {
            broker for corr, broker, sent_at in [*self.fetching.values(), *self.listing.values()]
            if sent_at <= limit}
        for broker in sorted(timed_out):
            # NetworkClient closes a connection whose request timed out; both ends learn.
            self.ctx.close(self.name, broker)
        self.refresh_metadata()
        membership = self.membership
        if isinstance(membership, ConsumerGroupMembership):
            membership.on_background()
        elif membership is not None:
            if (self.busy() and membership.generation != NO_GENERATION and self.ctx.now - self.last_poll
                    > self.ctx.config.consumer.max_poll_interval_ms):
                # The heartbeat thread's poll timer expired while the application was
                # busy: it leaves the group (a dynamic member).
                membership.leave_group("max.poll.interval.ms expired")
            if self.coordinator.coordinator is None:
                self.coordinator.coordinator_ready()
        self.coordinator.advance()

    def on_disconnect(self, peer: str) -> None:
        self.fetching = {p: v for p, v in self.fetching.items() if v[1] != peer}
        self.listing = {p: v for p, v in self.listing.items() if v[1] != peer}
        self.coordinator.on_disconnect(peer)
        self.refresh_metadata()
        self.coordinator.advance()

    def crash(self) -> None:
        self._abandon_process()
        self.ctx.history.add(self.op_process, "info", "crash", None)

    def _abandon_process(self) -> None:
        """The process ends: a commitSync in progress is indeterminate; a member's
        partitions die with it (for the group-overlap checker)."""
        self.alive = False
        if self.output is not None and self.output.alive:
            self.output.crash()
        if self.membership is not None and self.partitions:
            self.ctx.event(self.name, "lost", member=self.membership.member_id,
                           generation=self.membership.owned_generation,
                           partitions=list(self.partitions), reason="process ended")
        offsets = self.coordinator.abandon()
        if offsets is not None:
            self.ctx.history.add(self.op_process, "info", "commit", offsets,
                                 {"error": "CLIENT_CRASHED"})

    def restart(self) -> None:
        self.alive = True
        self.incarnation += 1
        if self.output is not None:
            self.output.restart()
        self._start()
