"""A consumer's membership of a classic group: join, sync, heartbeat, leave.

As the Java client's ``AbstractCoordinator`` / ``ConsumerCoordinator`` do it, with the
rebalance protocol its assignors allow (``partition.assignment.strategy``): EAGER, or
COOPERATIVE (KIP-429) when cooperative-sticky is the only assignor listed.

* ``poll()`` starts a (re)join when the consumer has no generation or a rejoin was
  requested: ``onJoinPrepare`` first (with auto-commit, an async commit of the consumed
  positions it waits for, up to the rebalance timeout), then, EAGER, it revokes every
  partition (``onPartitionsRevoked``), or, if the generation was already lost, drops
  them (``onPartitionsLost``), and sends JoinGroup.  A COOPERATIVE member keeps its
  partitions, and keeps fetching from them, through the rebalance; the new assignment
  revokes those it no longer has and the member rejoins at once (``onJoinComplete``),
  so a partition moves over two rebalances.
* The JoinGroup answer chains on without the application (the heartbeat thread also
  completes response futures): MEMBER_ID_REQUIRED is answered by joining again with the
  given id (KIP-394); the leader runs the assignor and every member sends SyncGroup.
  The assignment takes effect in the next ``poll()`` (``onJoinComplete``).
* The heartbeat thread heartbeats every ``heartbeat.interval.ms`` (exchanged during a
  tick, see ``Cluster``): REBALANCE_IN_PROGRESS requests a rejoin; ILLEGAL_GENERATION
  resets the generation (and since KAFKA-13419, 3.2, keeps the member id); a SyncGroup
  answered REBALANCE_IN_PROGRESS rejoins keeping the generation (KAFKA-14639's summary),
  so a COOPERATIVE member that missed an assignment rejoins claiming what an older
  generation gave it;
  UNKNOWN_MEMBER_ID resets both.  If the application has not called ``poll()`` for
  ``max.poll.interval.ms`` while busy, it leaves the group (``maybeLeaveGroup``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from model import messages as m
from model.clients.assignors import COOPERATIVE, Subscription, assign
from model.clients.coordinator import COMMIT_FAILED, REBALANCING, Request

if TYPE_CHECKING:
    from model.clients.coordinator import ConsumerCoordinator

NO_GENERATION = -1
TOPIC = "t"

UNJOINED, JOINING, SYNCING, STABLE = "unjoined", "joining", "syncing", "stable"
# AbstractCoordinator.JOIN_GROUP_TIMEOUT_LAPSE
JOIN_GROUP_TIMEOUT_LAPSE_MS = 5000


class GroupMembership:
    def __init__(self, coordinator: "ConsumerCoordinator",
                 on_lost_generation: Callable[[str], None],
                 owned_now: Callable[[], tuple[int, ...]],
                 on_fenced: Callable[[str], None] = lambda error: None) -> None:
        self.coordinator = coordinator
        self.ctx = coordinator.ctx
        self.name = coordinator.name
        self.group = coordinator.group
        self.config = coordinator.ctx.config.consumer
        self.protocols = tuple(self.config.partition_assignment_strategy.split(","))
        self.cooperative = self.config.rebalance_protocol == COOPERATIVE
        self.behaviours = coordinator.ctx.config.kafka.behaviours
        self.owned_now = owned_now               # SubscriptionState.assignedPartitions
        self.on_lost_generation = on_lost_generation
        self.on_fenced = on_fenced
        # KIP-345: kafkacheck gives consumer cN the group.instance.id <setting>-cN.
        self.instance_id = (f"{self.config.group_instance_id}-{self.name}"
                            if self.config.group_instance_id is not None else None)
        self.member_id = ""
        self.generation = NO_GENERATION
        self.state = UNJOINED
        self.rejoin_needed = True
        self.request: Request | None = None      # the JoinGroup or SyncGroup in flight
        self.join_retry_at = 0
        self.pending_assignment: tuple[int, ...] | None = None
        self.owned: tuple[int, ...] = ()         # what onJoinComplete last assigned
        self.owned_generation = NO_GENERATION
        self.last_heartbeat = -(1 << 62)
        self.leave: Request | None = None

    # -- what poll() asks --------------------------------------------------------------

    @property
    def stable(self) -> bool:
        """A generation is known and no rebalance is wanted or under way."""
        return (self.state == STABLE and not self.rejoin_needed
                and self.pending_assignment is None)

    def rebalancing(self) -> bool:
        return self.state in (JOINING, SYNCING) or self.pending_assignment is not None

    def needs_join(self) -> bool:
        """No JoinGroup or SyncGroup in flight, and no generation or a rejoin wanted."""
        if self.pending_assignment is not None:
            return False
        return self.state == UNJOINED or (self.state == STABLE and self.rejoin_needed)

    def subscription_ownership(self) -> tuple[tuple[int, ...], int]:
        """What the subscription says the member owns, and as of which generation.

        EAGER: the last assignment and its generation (StickyAssignor's user data).
        COOPERATIVE: the partitions it still owns (``ownedPartitions``) with, since
        KAFKA-13715 (3.4.0), its current generation (``generationId``), before it the
        generation of its last assignment (CooperativeStickyAssignor's user data, set
        in ``onAssignment``); the two differ for a member that joined a generation
        whose SyncGroup it then missed."""
        if not self.cooperative:
            return self.owned, self.owned_generation
        if self.behaviours.subscription_generation_field:
            return self.owned_now(), self.generation
        return self.owned_now(), self.owned_generation

    def commit_identity(self) -> tuple[int, str, str | None]:
        """OffsetCommit's generation, member id and group.instance.id."""
        return self.generation, self.member_id, self.instance_id

    def fetch_identity(self) -> tuple[str, int]:
        """A classic member's OffsetFetch names no member (before v9)."""
        return "", -1

    def commit_refusal(self) -> str | None:
        """``sendOffsetCommitRequest``: a member without a stable generation does not
        send the commit (RebalanceInProgressException during a rebalance,
        CommitFailedException otherwise)."""
        if self.state == STABLE:
            return None
        return REBALANCING if self.rebalancing() else COMMIT_FAILED

    def on_commit_refused(self, error: str) -> str:
        """``OffsetCommitResponseHandler``: REBALANCE_IN_PROGRESS requests a rejoin
        (RebalanceInProgressException); UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION reset
        the generation (CommitFailedException)."""
        if error == m.REBALANCE_IN_PROGRESS:
            self.rejoin_needed = True
            return REBALANCING
        self.reset(error, keep_member_id=error == m.ILLEGAL_GENERATION)
        return COMMIT_FAILED

    def send_join(self) -> None:
        """JoinGroup, with the subscription's ownership (:meth:`subscription_ownership`),
        which the sticky assignors read."""
        if self.request is not None or self.ctx.now < self.join_retry_at:
            return
        if not self.coordinator.coordinator_ready():
            return
        target = self.coordinator.coordinator
        assert target is not None
        corr = self.ctx.next_corr()
        owned, generation = self.subscription_ownership()
        self.ctx.send(self.name, target, m.JoinGroupRequest(
            corr, self.group, self.member_id, self.config.session_timeout_ms,
            self.config.max_poll_interval_ms, self.protocols, owned, generation,
            self.instance_id))
        # AbstractCoordinator.sendJoinGroupRequest: the coordinator may hold a JoinGroup
        # for the whole rebalance, so the client waits the rebalance timeout
        # (max.poll.interval.ms) plus JOIN_GROUP_TIMEOUT_LAPSE, not request.timeout.ms.
        join_timeout = max(self.ctx.config.producer.request_timeout_ms,
                           self.config.max_poll_interval_ms + JOIN_GROUP_TIMEOUT_LAPSE_MS)
        self.request = Request(corr, target, self.ctx.now, join_timeout)
        self.state = JOINING
        self.rejoin_needed = False

    def take_assignment(self) -> tuple[int, ...] | None:
        """``onJoinComplete``: the assignment SyncGroup brought, once."""
        assignment, self.pending_assignment = self.pending_assignment, None
        if assignment is not None:
            self.owned, self.owned_generation = assignment, self.generation
        return assignment

    # -- responses ---------------------------------------------------------------------

    def _answers(self, corr: int) -> bool:
        if self.request is None or self.request.corr != corr:
            return False
        self.request = None
        return True

    def on_join_response(self, resp: m.JoinGroupResponse) -> None:
        if not self._answers(resp.corr):
            return
        if resp.error == m.MEMBER_ID_REQUIRED:
            self.member_id = resp.member_id
            self.state = UNJOINED
            self.rejoin_needed = True
            self.send_join()
            return
        if resp.error is not None:
            self._join_failed(resp.error)
            return
        self.generation, self.member_id = resp.generation, resp.member_id
        self.ctx.event(self.name, "joined", member=self.member_id, generation=self.generation,
                       leader=resp.leader == self.member_id)
        assignments: tuple[tuple[str, tuple[int, ...]], ...] = ()
        if resp.leader == self.member_id:
            assert resp.protocol is not None
            assignments = self._assign(resp.protocol, resp.members)
        target = self.coordinator.coordinator
        if target is None or not self.ctx.network.accepts(self.name, target):
            self._join_failed(m.NOT_COORDINATOR)
            return
        corr = self.ctx.next_corr()
        self.ctx.send(self.name, target, m.SyncGroupRequest(
            corr, self.group, self.generation, self.member_id, assignments,
            self.instance_id))
        self.request = Request(corr, target, self.ctx.now)
        self.state = SYNCING

    def _assign(self, protocol: str,
                members: tuple[tuple[str, tuple[int, ...], int], ...],
                ) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The leader's ``performAssignment`` with the group's chosen assignor."""
        partitions = self.ctx.config.topic.partitions
        subscriptions = {
            member_id: Subscription((TOPIC,), tuple((TOPIC, p) for p in owned), generation)
            for member_id, owned, generation in members}
        result = assign(protocol, {TOPIC: partitions}, subscriptions,
                        highest_generation_only=not self.behaviours.generation_aware_claims)
        return tuple((member_id, tuple(p for _, p in result.get(member_id, [])))
                     for member_id, *_ in members)

    def on_sync_response(self, resp: m.SyncGroupResponse) -> None:
        if not self._answers(resp.corr):
            return
        if resp.error is not None:
            self._join_failed(resp.error)
            return
        self.state = STABLE
        self.pending_assignment = resp.assignment
        self.last_heartbeat = self.ctx.now

    def _join_failed(self, error: str) -> None:
        """``JoinGroupResponseHandler`` / ``SyncGroupResponseHandler`` errors: every one
        ends this attempt and the next poll joins again; an unknown member starts over
        without a member id; a lost coordinator is discovered again."""
        self.state = UNJOINED
        self.rejoin_needed = True
        if error == m.FENCED_INSTANCE_ID:
            self.on_fenced(error)
            return
        if error in (m.UNKNOWN_MEMBER_ID, m.ILLEGAL_GENERATION):
            self.reset(error, keep_member_id=self._keeps_member_id(error))
        if error in (m.NOT_COORDINATOR, m.COORDINATOR_NOT_AVAILABLE, m.NETWORK_EXCEPTION,
                     m.REQUEST_TIMED_OUT):
            self.coordinator.mark_unknown()
            self.join_retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms

    # -- the heartbeat thread ----------------------------------------------------------

    def heartbeat_due(self) -> bool:
        return (self.generation != NO_GENERATION and self.state in (SYNCING, STABLE)
                and self.ctx.now - self.last_heartbeat >= self.config.heartbeat_interval_ms)

    def on_heartbeat(self, error: str | None) -> None:
        """``HeartbeatResponseHandler``."""
        self.last_heartbeat = self.ctx.now
        if error is None:
            return
        self.ctx.event(self.name, "heartbeat-error", member=self.member_id,
                       generation=self.generation, error=error)
        if error == m.REBALANCE_IN_PROGRESS:
            self.rejoin_needed = True
        elif error == m.FENCED_INSTANCE_ID:
            self.on_fenced(error)
        elif error in (m.ILLEGAL_GENERATION, m.UNKNOWN_MEMBER_ID):
            self.reset(error, keep_member_id=self._keeps_member_id(error))
        elif error in (m.NOT_COORDINATOR, m.COORDINATOR_NOT_AVAILABLE):
            self.coordinator.mark_unknown()

    def _keeps_member_id(self, error: str) -> bool:
        """KAFKA-13419 (3.2.0): ILLEGAL_GENERATION keeps the member id, which may still
        be valid; before it, and for UNKNOWN_MEMBER_ID, the member starts over."""
        return error == m.ILLEGAL_GENERATION and self.behaviours.illegal_generation_keeps_member_id

    def request_rejoin(self, reason: str) -> None:
        """``requestRejoin``: the next poll joins again, keeping the generation."""
        self.rejoin_needed = True
        self.ctx.event(self.name, "rejoin-requested", member=self.member_id,
                       generation=self.generation, reason=reason)

    def reset(self, reason: str, keep_member_id: bool = False) -> None:
        """``resetStateAndRejoin`` / ``resetGenerationOnResponseError``: the generation
        is gone; the partitions are lost (``onPartitionsLost`` at the next poll)."""
        had = self.generation != NO_GENERATION
        self.generation = NO_GENERATION
        if not keep_member_id:
            self.member_id = ""
        self.state = UNJOINED
        self.rejoin_needed = True
        self.pending_assignment = None
        if had:
            self.on_lost_generation(reason)

    def leave_group(self, reason: str) -> None:
        """``maybeLeaveGroup``: a dynamic member with a member id sends LeaveGroup (its
        answer is not waited for) and forgets its generation.  A static member (KIP-345)
        sends nothing: only its session's expiry removes it from the group."""
        target = self.coordinator.coordinator
        if (self.instance_id is None and self.member_id and target is not None
                and self.ctx.network.accepts(self.name, target)):
            corr = self.ctx.next_corr()
            self.ctx.send(self.name, target, m.LeaveGroupRequest(corr, self.group, self.member_id))
            self.leave = Request(corr, target, self.ctx.now)
        self.ctx.event(self.name, "leave-group", member=self.member_id,
                       generation=self.generation, reason=reason)
        self.reset(reason)

    def on_leave_response(self, resp: m.LeaveGroupResponse) -> None:
        if self.leave is not None and self.leave.corr == resp.corr:
            self.leave = None

    def timed_out(self, now: int, request_timeout_ms: int) -> set[str]:
        return {r.broker for r in (self.request, self.leave)
                if r is not None and r.timed_out(now, request_timeout_ms)}

    def on_disconnect(self, peer: str) -> None:
        if self.leave is not None and self.leave.broker == peer:
            self.leave = None
        if self.request is not None and self.request.broker == peer:
            self.request = None
            self._join_failed(m.NETWORK_EXCEPTION)
