"""One replica of one partition on a broker: Kafka's ``Partition`` and ``Replica``.

As leader it appends, serves fetches, tracks each follower's fetch state
(``Replica.updateFetchStateOrThrow``), moves the high watermark
(``Partition.maybeIncrementLeaderHW``), proposes ISR changes to the controller
(``maybeExpandIsr`` / ``maybeShrinkIsr`` through ``AlterPartition``, KIP-497) and completes
``acks=all`` appends once the HW passes them (``DelayedProduce`` with
``checkEnoughReplicasReachOffset``).  As follower it fetches from the leader and truncates
where the leader says its log diverged (``AbstractFetcherThread``).

An object of this class is the in-memory part only: it is created when the broker
publishes metadata naming it a replica and dropped when the broker process dies.  The log
itself (:class:`model.broker.log.ReplicaLog`) belongs to the broker and survives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import attrs

from model import messages as m
from model.broker.log import ReplicaLog
from model.broker.producer_state import NO_HEADER, BatchHeader
from model.context import CONTROLLER
from model.metadata import PartitionId, PartitionState

if TYPE_CHECKING:
    from model.broker.broker import Broker

UNKNOWN_OFFSET = -1

#: Called once with the outcome of an append: (error, offset of the first record).
Completion = Callable[[str | None, int | None], None]


@attrs.define(slots=True)
class FollowerState:
    """``Replica.ReplicaState``: what the leader knows of one follower."""

    log_end_offset: int = UNKNOWN_OFFSET
    last_fetch_leader_leo: int = UNKNOWN_OFFSET
    last_fetch_time: int = 0
    last_caught_up_time: int = 0
    broker_epoch: int | None = None

    def is_caught_up(self, leader_end_offset: int, now: int, max_lag_ms: int) -> bool:
        """``ReplicaState.isCaughtUp``: at the leader's log end, or caught up recently."""
        return (leader_end_offset == self.log_end_offset
                or now - self.last_caught_up_time <= max_lag_ms)


@attrs.define(slots=True)
class DelayedAppend:
    """An ``acks=all`` append waiting for the HW (``DelayedProduce``)."""

    first_offset: int
    required_offset: int
    deadline: int
    complete: Completion


@attrs.define(slots=True)
class ParkedFetch:
    """A fetch with nothing to return yet, held by the leader (``DelayedFetch``) until
    there is data for it or its wait runs out."""

    src: str
    generation: int
    request: m.FetchRequest
    deadline: int


@attrs.frozen(slots=True)
class TopicSettings:
    """The topic-level configs a partition obeys."""

    min_insync_replicas: int
    unclean_leader_election_enable: bool


class Partition:
    def __init__(self, broker: "Broker", partition: PartitionId, log: ReplicaLog,
                 settings: TopicSettings) -> None:
        self.broker = broker
        self.ctx = broker.ctx
        self.name = broker.name
        self.partition = partition
        self.log = log
        self.settings = settings
        self.leader: str | None = None
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.replicas: tuple[str, ...] = ()
        self.isr: tuple[str, ...] = ()
        # An AlterPartition in flight (``PendingExpandIsr`` / ``PendingShrinkIsr``).
        self.pending_isr: tuple[str, ...] | None = None
        self.pending_corr = 0
        self.pending_unsent = False   # its connection dropped: resend on the next tick
        # Leader role.
        self.followers: dict[str, FollowerState] = {}
        self.epoch_start_offset: int | None = None
        self.delayed: list[DelayedAppend] = []
        self.parked: list[ParkedFetch] = []
        # Producer id -> the verification guard of a transactional batch waiting for the
        # coordinator's answer (``VerificationStateEntry``).
        self.verifying: dict[int, int] = {}
        # Follower role.
        self.fetch_corr: int | None = None
        self.fetch_retry_at = 0

    @property
    def is_leader(self) -> bool:
        return self.leader == self.name

    def maximal_isr(self) -> tuple[str, ...]:
        """The ISR the leader must respect while a change is in flight (KIP-497): a
        member being added counts at once, one being removed until the change is done."""
        if self.pending_isr is None:
            return self.isr
        return tuple(r for r in self.replicas if r in self.isr or r in self.pending_isr)

    def effective_min_isr(self) -> int:
        """``Partition.effectiveMinIsr``: min.insync.replicas capped by the replica count."""
        return min(self.settings.min_insync_replicas, len(self.replicas))

    # -- becoming leader or follower (ReplicaManager.applyDelta) -------------------------

    def apply_state(self, state: PartitionState) -> None:
        """Apply the partition's state from published metadata."""
        if state.partition_epoch < self.partition_epoch:
            return   # the AlterPartition response already told us something newer
        self.ctx.touch()
        if state.leader == self.name:
            self._make_leader(state)
        else:
            self._make_follower(state)

    def _make_leader(self, state: PartitionState) -> None:
        """``Partition.makeLeader``."""
        now = self.ctx.now
        is_new_leader = not self.is_leader
        is_new_epoch = state.leader_epoch > self.leader_epoch
        self.replicas, self.isr, self.pending_isr = state.replicas, state.isr, None
        if is_new_epoch:
            start = self.log.leo
            self.log.assign_epoch_start(state.leader_epoch, start)
            for replica in state.replicas:
                if replica == self.name:
                    continue
                in_sync = replica in state.isr
                old = self.followers.get(replica, FollowerState())
                if is_new_leader:
                    self.followers[replica] = FollowerState(
                        last_caught_up_time=now if in_sync else 0)
                else:
                    self.followers[replica] = FollowerState(
                        old.log_end_offset, start, now if in_sync else 0,
                        now if in_sync else 0, old.broker_epoch)
            self.leader_epoch = state.leader_epoch
            self.epoch_start_offset = start
            self.fetch_corr = None
            self.ctx.event(self.name, "become-leader", partition=self.partition,
                           epoch=state.leader_epoch, leo=self.log.leo, hw=self.log.hw)
        self.partition_epoch = state.partition_epoch
        self.leader = self.name
        self.maybe_increment_hw()

    def _make_follower(self, state: PartitionState) -> None:
        """``Partition.makeFollower``; the fetcher restarts on a new leader epoch."""
        was_leader = self.is_leader
        is_new_epoch = state.leader_epoch > self.leader_epoch
        self.leader, self.leader_epoch = state.leader, state.leader_epoch
        self.partition_epoch = state.partition_epoch
        self.replicas, self.isr, self.pending_isr = state.replicas, (), None
        self.epoch_start_offset = None
        if was_leader:
            self.fail_delayed(m.NOT_LEADER_OR_FOLLOWER)
            self._answer_parked(expired=True)       # now answered NOT_LEADER_OR_FOLLOWER
            self.followers = {}
            self.ctx.event(self.name, "become-follower", partition=self.partition,
                           leader=state.leader, epoch=state.leader_epoch)
        if is_new_epoch or was_leader:
            self.fetch_corr = None
            self.fetch_retry_at = 0
        self.send_fetch()

    def shutdown(self) -> None:
        """The broker process died: in-flight appends and fetches are never answered."""
        self.delayed = []
        self.parked = []

    # -- leader: appends ---------------------------------------------------------------

    def append_as_leader(self, records: list[tuple[str, int, str]], acks: str,
                         timeout_ms: int, complete: Completion,
                         header: BatchHeader = NO_HEADER, verified: bool = False,
                         coordinator_origin: bool = False) -> None:
        """``Partition.appendRecordsToLeader`` followed, for ``acks=all``, by a
        ``DelayedProduce``; ``complete`` gets the outcome.  An idempotent producer's
        batch (``header``) is first checked against the producer state: a duplicate is
        answered with the original batch's offset, once the HW passes it for acks=all
        (the ``DelayedProduce`` waits for the duplicate's own last offset).
        ``coordinator_origin``: the group coordinator writes a producer's transactional
        offsets (AppendOrigin.COORDINATOR), checked by epoch only and not verified."""
        if not self.is_leader:
            complete(m.NOT_LEADER_OR_FOLLOWER, None)
            return
        if acks == "all" and len(self.isr) < self.effective_min_isr():
            complete(m.NOT_ENOUGH_REPLICAS, None)
            return
        if coordinator_origin:
            check = self.log.producers.validate_coordinator_append(header.producer_id,
                                                                   header.producer_epoch)
            # Transaction version 2: TxnOffsetCommit v5 has the coordinator add the
            # offsets partition to the transaction (KIP-890 part 2); part 1's check of
            # transactional offsets (KAFKA-15449, 3.7) is not modelled.
            verified = verified or self.broker.txn_verifier.mode() != "add"
        else:
            check = self.log.producers.validate(header.producer_id, header.producer_epoch,
                                                header.sequence, len(records),
                                                header.transactional)
        if check.error is not None:
            complete(check.error, None)
            return
        if (check.duplicate_of is None and header.transactional and not verified
                and not self.log.producers.ongoing(header.producer_id)
                and self.broker.txn_verifier.mode() is not None):
            self._verify_then_append(records, acks, timeout_ms, complete, header,
                                     coordinator_origin)
            return
        if check.duplicate_of is not None:
            first = check.duplicate_of
            required = first + len(records)
            self.ctx.event(self.name, "duplicate", partition=self.partition, offset=first,
                           producer_id=header.producer_id, sequence=header.sequence)
        else:
            first = self.log.leo
            for record in self.log.append_batch(self.leader_epoch, records, *header.fields(),
                                                header.transactional):
                self.ctx.event(self.name, "append", partition=self.partition,
                               offset=record.offset, epoch=record.epoch, value=record.value)
            required = self.log.leo
        if acks == "all":
            self.delayed.append(DelayedAppend(first, required,
                                              self.ctx.now + timeout_ms, complete))
        else:
            complete(None, first)
        self.maybe_increment_hw()

    def _verify_then_append(self, records: list[tuple[str, int, str]], acks: str,
                            timeout_ms: int, complete: Completion,
                            header: BatchHeader, coordinator_origin: bool = False) -> None:
        """KIP-890: before a transactional batch opens a transaction here, ask the
        coordinator whether this partition is in the producer's open transaction (part
        1, ``verify_only``), or have it added (transaction version 2).  A marker written
        for the producer while the answer travels voids it (the verification guard of
        KAFKA-14884), and the batch is refused."""
        producer_id = header.producer_id
        guard = self.verifying.get(producer_id)
        if guard is None:
            guard = self.verifying[producer_id] = self.ctx.next_corr()

        def verified(error: str | None) -> None:
            if self.verifying.get(producer_id) != guard and error is None:
                error = self.broker.txn_verifier.voided_error()
            if error is not None:
                complete(error, None)
                return
            self.append_as_leader(records, acks, timeout_ms, complete, header, verified=True,
                                  coordinator_origin=coordinator_origin)

        self.broker.txn_verifier.verify(header.transactional_id, producer_id,
                                        header.producer_epoch, self.partition, verified)

    def write_marker(self, producer_id: int, producer_epoch: int, commit: bool,
                     coordinator_epoch: int, timeout_ms: int, complete: Completion) -> None:
        """``WriteTxnMarkers`` on the leader: a control record appended like an
        ``acks=all`` write (``ReplicaManager.appendRecords`` with origin COORDINATOR),
        after ``appendEndTxnMarker``'s epoch checks."""
        if not self.is_leader:
            complete(m.NOT_LEADER_OR_FOLLOWER, None)
            return
        if len(self.isr) < self.effective_min_isr():
            complete(m.NOT_ENOUGH_REPLICAS, None)
            return
        error = self.log.producers.validate_marker(producer_id, producer_epoch,
                                                   coordinator_epoch)
        if error is not None:
            complete(error, None)
            return
        self.verifying.pop(producer_id, None)
        record = self.log.append_marker(self.leader_epoch, producer_id, producer_epoch,
                                        commit, coordinator_epoch)
        self.ctx.event(self.name, "marker", partition=self.partition, offset=record.offset,
                       producer_id=producer_id, producer_epoch=producer_epoch,
                       control=record.control)
        self.delayed.append(DelayedAppend(record.offset, self.log.leo,
                                          self.ctx.now + timeout_ms, complete))
        self.maybe_increment_hw()

    def _complete_delayed(self) -> None:
        """``checkEnoughReplicasReachOffset``: done once the HW reaches the append; an
        error if the maximal ISR is then smaller than ``min.insync.replicas``."""
        if not self.delayed:
            return
        waiting = []
        for d in self.delayed:
            if self.log.hw >= d.required_offset:
                if self.effective_min_isr() <= len(self.maximal_isr()):
                    d.complete(None, d.first_offset)
                else:
                    d.complete(m.NOT_ENOUGH_REPLICAS_AFTER_APPEND, None)
            else:
                waiting.append(d)
        self.delayed = waiting

    def when_committed(self, timeout_ms: int, complete: Completion) -> None:
        """``complete`` once the HW reaches the log end as it is now (a coordinator
        write operation with no records of its own, as a stable OffsetFetch is), or
        with REQUEST_TIMED_OUT after ``timeout_ms``."""
        self.delayed.append(DelayedAppend(self.log.leo, self.log.leo,
                                          self.ctx.now + timeout_ms, complete))
        self._complete_delayed()

    def fail_delayed(self, error: str) -> None:
        delayed, self.delayed = self.delayed, []
        for d in delayed:
            d.complete(error, None)

    def expire_delayed(self, now: int) -> None:
        expired = [d for d in self.delayed if d.deadline <= now]
        if expired:
            self.delayed = [d for d in self.delayed if d.deadline > now]
            for d in expired:
                d.complete(m.REQUEST_TIMED_OUT, None)

    # -- leader: fetches ---------------------------------------------------------------

    def epoch_error(self, current_leader_epoch: int) -> str | None:
        """KIP-320: a request naming another leader epoch is refused, not served."""
        if not self.is_leader:
            return m.NOT_LEADER_OR_FOLLOWER
        if current_leader_epoch < self.leader_epoch:
            return m.FENCED_LEADER_EPOCH
        if current_leader_epoch > self.leader_epoch:
            return m.UNKNOWN_LEADER_EPOCH
        return None

    def fetch(self, src: str, generation: int, req: m.FetchRequest) -> None:
        """``Partition.fetchRecords`` then, with nothing to return yet, a ``DelayedFetch``
        (``replica.fetch.wait.max.ms`` for followers, the consumer's ``fetch.max.wait.ms``;
        ``fetch.min.bytes`` is 1).  The follower's fetch state is updated when the
        request arrives; the answer's records and HW are read when it is sent."""
        error = self.epoch_error(req.current_leader_epoch)
        if error is None and req.replica is not None and req.replica not in self.replicas:
            error = m.UNKNOWN_LEADER_EPOCH
        if error is not None:
            self._reply_error(src, generation, req, error)
            return
        log = self.log
        diverging = log.diverging_epoch(req.fetch_offset, req.last_fetched_epoch)
        if diverging is not None:
            self.broker.reply(src, generation, m.FetchResponse(
                req.corr, req.partition, None, (), log.hw, diverging, req.fetch_offset))
            return
        if req.fetch_offset > log.leo:
            self._reply_error(src, generation, req, m.OFFSET_OUT_OF_RANGE)
            return
        # The HW is read before this fetch updates the follower's state, so a follower
        # learns a HW its own fetch moved only from its next fetch.
        hw = log.hw
        if req.replica is not None:
            error = self._update_follower_fetch_state(req.replica, req.fetch_offset,
                                                      req.broker_epoch)
            if error is not None:
                self._reply_error(src, generation, req, error)
                return
        if self._readable(req) > req.fetch_offset:
            self._answer(src, generation, req, hw)
            return
        wait = (self.broker.config.replica_fetch_wait_max_ms if req.replica is not None
                else self.ctx.config.consumer.fetch_max_wait_ms)
        self.parked.append(ParkedFetch(src, generation, req, self.ctx.now + wait))

    def _readable(self, req: m.FetchRequest) -> int:
        """Where the records a fetch may see end: the LEO for a follower, the HW for a
        read_uncommitted consumer, the last stable offset for a read_committed one
        (``FetchIsolation``)."""
        if req.replica is not None:
            return self.log.leo
        return self.log.last_stable_offset() if req.read_committed else self.log.hw

    def _answer(self, src: str, generation: int, req: m.FetchRequest, hw: int) -> None:
        end = self._readable(req)
        records = tuple(self.log.records[req.fetch_offset:end])
        if req.read_committed:
            response = m.FetchResponse(
                req.corr, req.partition, None, records, hw, None, req.fetch_offset,
                end, self.log.producers.aborted_transactions(req.fetch_offset, end))
        else:
            response = m.FetchResponse(req.corr, req.partition, None, records, hw, None,
                                       req.fetch_offset)
        self.broker.reply(src, generation, response)

    def _reply_error(self, src: str, generation: int, req: m.FetchRequest, error: str) -> None:
        self.broker.reply(src, generation, m.FetchResponse(
            req.corr, req.partition, error, fetch_offset=req.fetch_offset))

    def _answer_parked(self, expired: bool = False) -> None:
        """Answer held fetches that now have data (or whose wait ran out, or whose
        leader is gone)."""
        if not self.parked:
            return
        waiting = []
        for parked in self.parked:
            req = parked.request
            error = self.epoch_error(req.current_leader_epoch)
            if error is not None:
                self._reply_error(parked.src, parked.generation, req, error)
            elif self._readable(req) > req.fetch_offset or (
                    expired and parked.deadline <= self.ctx.now):
                self._answer(parked.src, parked.generation, req, self.log.hw)
            else:
                waiting.append(parked)
        self.parked = waiting

    def _update_follower_fetch_state(self, replica: str, offset: int,
                                     broker_epoch: int) -> str | None:
        """``Replica.updateFetchStateOrThrow``, then ``maybeExpandIsr`` and the HW."""
        known_epoch = self.broker.metadata.broker_epoch(replica)
        if (broker_epoch != m.NO_BROKER_EPOCH and known_epoch is not None
                and known_epoch > broker_epoch):
            return m.NOT_LEADER_OR_FOLLOWER   # a fetch from a replaced incarnation
        now = self.ctx.now
        leo = self.log.leo
        state = self.followers.setdefault(replica, FollowerState())
        if offset >= leo:
            caught_up = max(state.last_caught_up_time, now)
        elif offset >= state.last_fetch_leader_leo:
            caught_up = max(state.last_caught_up_time, state.last_fetch_time)
        else:
            caught_up = state.last_caught_up_time
        self.followers[replica] = FollowerState(
            offset, max(leo, state.last_fetch_leader_leo), now, caught_up, broker_epoch)
        self._maybe_expand_isr(replica)
        self.maybe_increment_hw()
        return None

    # -- leader: ISR and high watermark --------------------------------------------------

    def _isr_eligible(self, replica: str) -> bool:
        """``Partition.isReplicaIsrEligible``: unfenced, and its fetches carried the
        broker epoch the metadata knows (KIP-903)."""
        metadata = self.broker.metadata
        state = self.followers.get(replica)
        return (metadata.is_active(replica) and state is not None
                and state.broker_epoch in (m.NO_BROKER_EPOCH, metadata.broker_epoch(replica)))

    def _in_sync(self, replica: str) -> bool:
        """``Partition.isFollowerInSync``: at the HW and past this epoch's start."""
        state = self.followers.get(replica)
        return (state is not None and self.epoch_start_offset is not None
                and state.log_end_offset >= self.log.hw
                and state.log_end_offset >= self.epoch_start_offset)

    def _maybe_expand_isr(self, replica: str) -> None:
        if (self.pending_isr is None and replica not in self.isr
                and self._isr_eligible(replica) and self._in_sync(replica)):
            self._propose_isr(tuple(r for r in self.replicas if r in self.isr or r == replica))

    def maybe_shrink_isr(self, now: int) -> None:
        """``Partition.maybeShrinkIsr`` (run every ``replica.lag.time.max.ms / 2``)."""
        if not self.is_leader or self.pending_isr is not None:
            return
        lag = self.broker.config.replica_lag_time_max_ms
        leo = self.log.leo
        out = {r for r in self.isr if r != self.name and not self.followers.get(
            r, FollowerState()).is_caught_up(leo, now, lag)}
        if out:
            self._propose_isr(tuple(r for r in self.isr if r not in out))

    def maybe_increment_hw(self) -> None:
        """``Partition.maybeIncrementLeaderHW``: the minimum log end offset over the
        maximal ISR and over caught-up eligible replicas about to join it
        (KAFKA-15021, 3.6); never while the ISR is smaller than the effective
        ``min.insync.replicas`` (KAFKA-15583, 3.7)."""
        if not self.is_leader:
            return
        if len(self.isr) < self.effective_min_isr():
            self._complete_delayed()
            self._answer_parked()
            return
        now = self.ctx.now
        lag = self.broker.config.replica_lag_time_max_ms
        leo = self.log.leo
        new_hw = leo
        maximal = self.maximal_isr()
        for replica in self.replicas:
            if replica == self.name:
                continue
            state = self.followers.get(replica, FollowerState())
            joining = state.is_caught_up(leo, now, lag) and self._isr_eligible(replica)
            if state.log_end_offset < new_hw and (replica in maximal or joining):
                new_hw = state.log_end_offset
        if new_hw > self.log.hw:
            self.log.hw = new_hw
            self.ctx.event(self.name, "hw", partition=self.partition, hw=new_hw)
        self._complete_delayed()
        self._answer_parked()

    def _propose_isr(self, new_isr: tuple[str, ...]) -> None:
        """Send an AlterPartition; until the controller answers, the change is pending and
        the HW counts the maximal ISR (KIP-497).  Like Kafka's AlterPartitionManager, a
        request whose connection dropped is resent, never silently forgotten: it may
        have been applied with only the answer lost."""
        self.pending_isr = new_isr
        self.pending_corr = self.ctx.next_corr()
        self.ctx.touch()
        self._send_alter_partition()

    def _send_alter_partition(self) -> None:
        assert self.pending_isr is not None
        members = tuple((r, self._broker_epoch_of(r)) for r in self.pending_isr)
        sent = self.ctx.send(self.name, CONTROLLER, m.AlterPartition(
            self.pending_corr, self.partition, self.name, self.leader_epoch,
            self.partition_epoch, members))
        self.pending_unsent = not sent

    def _broker_epoch_of(self, replica: str) -> int:
        """The broker epoch to name ``replica`` with in an AlterPartition: ours, or the
        one its last fetch carried (-1, "unchecked", if it has not fetched)."""
        if replica == self.name:
            return self.broker.broker_epoch
        epoch = self.followers.get(replica, FollowerState()).broker_epoch
        return m.NO_BROKER_EPOCH if epoch is None else epoch

    def on_alter_partition_response(self, resp: m.AlterPartitionResponse) -> None:
        """``Partition.handleAlterPartitionUpdate`` / ``handleAlterPartitionError``."""
        if self.pending_isr is None or resp.corr != self.pending_corr:
            return   # an answer to a request we no longer wait for
        self.ctx.touch()
        if resp.error is None:
            assert resp.state is not None
            self.pending_isr = None
            if resp.state.partition_epoch > self.partition_epoch and self.is_leader \
                    and resp.state.leader_epoch == self.leader_epoch:
                self.isr, self.partition_epoch = resp.state.isr, resp.state.partition_epoch
            self.maybe_increment_hw()
        elif resp.error == m.INELIGIBLE_REPLICA:
            # Refused and nothing changed: revert to the committed ISR and propose again
            # when the time comes.
            self.pending_isr = None
        # Other errors (a stale epoch): the change stays pending, the maximal ISR keeps
        # counting it, until the metadata log brings the partition's current state.

    # -- follower ----------------------------------------------------------------------

    def send_fetch(self) -> None:
        if (self.leader is None or self.is_leader or self.fetch_corr is not None
                or self.ctx.now < self.fetch_retry_at):
            return
        corr = self.ctx.next_corr()
        log = self.log
        # A follower's lastFetchedEpoch is its epoch cache's latest epoch (Kafka's
        # ``log.latestEpoch``), not the epoch of its last record.
        request = m.FetchRequest(corr, self.partition, self.name, log.leo,
                                 log.latest_epoch(), self.leader_epoch,
                                 self.broker.broker_epoch)
        if self.ctx.send(self.name, self.leader, request):
            self.fetch_corr = corr
        else:
            self._back_off()

    def _back_off(self) -> None:
        self.fetch_retry_at = self.ctx.now + self.broker.config.replica_fetch_backoff_ms

    def on_fetch_response(self, resp: m.FetchResponse) -> None:
        if self.fetch_corr != resp.corr:
            return  # a response to a fetch we have abandoned
        self.fetch_corr = None
        log = self.log
        if resp.error is not None:
            self._back_off()
            return
        if resp.diverging is not None:
            self.ctx.touch()
            cut = log.truncation_offset(resp.diverging)
            dropped = log.truncate_to(cut)  # also clears epochs starting at the cut
            if dropped:
                self.ctx.event(self.name, "truncate", partition=self.partition, offset=cut,
                               dropped=dropped)
        else:
            if resp.records:
                self.ctx.touch()
            for record in resp.records:
                if record.offset == log.leo:
                    log.append_replicated(record)
            new_hw = min(resp.high_watermark, log.leo)
            if new_hw != log.hw:
                log.hw = new_hw
                self.ctx.event(self.name, "hw", partition=self.partition, hw=new_hw)
        self.send_fetch()

    # -- timers and connections --------------------------------------------------------

    def on_tick(self) -> None:
        if self.is_leader:
            self.expire_delayed(self.ctx.now)
            self._answer_parked(expired=True)
            if self.pending_isr is not None and self.pending_unsent:
                self._send_alter_partition()
        else:
            self.send_fetch()

    def on_disconnect(self, peer: str) -> None:
        if peer == self.leader and self.fetch_corr is not None:
            self.fetch_corr = None
            self._back_off()
        if peer == CONTROLLER and self.pending_isr is not None:
            self.pending_unsent = True
