"""A consumer's membership of a KIP-848 consumer group (``group.protocol=consumer``).

As the new consumer (``AsyncKafkaConsumer``) does it: its membership manager
(``ConsumerMembershipManager``, ``MembershipManagerImpl`` in 3.9) and heartbeat manager
(``ConsumerHeartbeatRequestManager``), on the consumer's background thread:

* One RPC, ``ConsumerGroupHeartbeat``, joins (epoch 0), heartbeats at the interval the
  coordinator gives (``group.consumer.heartbeat.interval.ms``), acknowledges each
  reconciled assignment at once, and leaves (epoch -1).  One heartbeat is in flight at a
  time.  A full request (every field) follows a join and every error; otherwise the
  owned partitions are sent only when the reconciled assignment changed.
* The member epoch is taken from every successful answer.  An answer with an assignment
  different from what the member has reconciled starts a **reconciliation**: with
  ``enable.auto.commit`` an auto-commit of ``allConsumed()`` first (retried until the
  rebalance timeout, and the revocation goes ahead even if it fails), then the revoked
  partitions are dropped and the added ones assigned (positions from the committed
  offsets), then the member acknowledges (ACKNOWLEDGING).  The partitions being revoked
  stop being fetched before that auto-commit since KAFKA-16460 (4.0), after it before.
  With auto-commit a 4.0 consumer starts a reconciliation only inside ``poll()``
  (KAFKA-18641's fix); before, whenever the background thread runs.
* FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID: the partitions are lost (nothing is
  committed) and the member joins again with epoch 0 and the same member id.
* ``max.poll.interval.ms`` without ``poll()``: the member leaves (epoch -1), loses its
  partitions without committing (STALE), and joins again at its next ``poll()``.
* Member ids: a 4.0 consumer names itself at start-up (KIP-1082); a 3.9 one is named by
  the coordinator's first answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from model import messages as m
from model.clients.coordinator import COMMIT_FAILED, RETRIABLE, Request

if TYPE_CHECKING:
    from model.clients.consumer import Consumer
    from model.clients.coordinator import ConsumerCoordinator

# MemberState (the client's).
UNSUBSCRIBED, JOINING, RECONCILING = "UNSUBSCRIBED", "JOINING", "RECONCILING"
ACKNOWLEDGING, STABLE, FENCED = "ACKNOWLEDGING", "STABLE", "FENCED"
LEAVING, STALE, FATAL = "LEAVING", "STALE", "FATAL"
NOT_IN_GROUP = (UNSUBSCRIBED, FENCED, STALE, FATAL)

JOIN_EPOCH, LEAVE_EPOCH = 0, -1


@attrs.define
class RevocationCommit:
    """The auto-commit a reconciliation waits for before it revokes."""

    attempt: int
    target: tuple[int, ...]
    revoked: list[int]
    added: list[int]
    deadline: int
    retry_at: int | None = None


class ConsumerGroupMembership:
    # The new consumer fetches the partitions it keeps throughout a reconciliation.
    cooperative = True
    instance_id = None

    def __init__(self, coordinator: "ConsumerCoordinator", consumer: "Consumer") -> None:
        self.coordinator = coordinator
        self.consumer = consumer
        self.ctx = coordinator.ctx
        self.name = coordinator.name
        self.group = coordinator.group
        self.config = self.ctx.config.consumer
        self.behaviours = self.ctx.config.kafka.behaviours
        self.member_id = (f"{self.name}-i{consumer.incarnation}"
                          if self.behaviours.client_member_id else "")
        self.epoch = JOIN_EPOCH
        self.state = UNSUBSCRIBED
        self.target: tuple[int, ...] | None = None
        self.current: tuple[int, ...] | None = None    # the last reconciled assignment
        self.local_epoch = 0                           # bumped by every reconciliation
        self.sent_owned: tuple[tuple[int, ...], int] | None = None
        self.send_all = True
        self.request: Request | None = None
        self.interval_ms = 0
        self.next_heartbeat_at = 0
        self.retry_at = 0
        self.reconciliation = 0        # id of the reconciliation under way (0: none)
        self.reconciliations = 0
        self.poll_expired = False
        self.auto_commit_in_flight = False
        self.revocation_commit: RevocationCommit | None = None
        if not self.behaviours.client_member_id:
            self._join()            # 3.x joins at subscribe() (KAFKA-17154, fixed in 4.0)

    # -- what the consumer and the coordinator ask ---------------------------------------

    @property
    def stable(self) -> bool:
        return self.state == STABLE

    @property
    def generation(self) -> int:
        """The epoch commits carry: the member epoch while it has one, else -1."""
        return self.epoch if self.epoch > 0 else -1

    @property
    def owned_generation(self) -> int:
        return self.epoch

    def rebalancing(self) -> bool:
        return self.state in (JOINING, RECONCILING, ACKNOWLEDGING)

    def commit_identity(self) -> tuple[int, str, str | None]:
        """OffsetCommit's member id and epoch (``MemberInfo``): -1 without an epoch; a
        3.9 member then sends no member id either."""
        if self.epoch > 0:
            return self.epoch, self.member_id, None
        return -1, self.member_id if self.behaviours.client_member_id else "", None

    def fetch_identity(self) -> tuple[str, int]:
        """OffsetFetch names the member only while it has an epoch."""
        return (self.member_id, self.epoch) if self.epoch > 0 else ("", -1)

    def commit_refusal(self) -> str | None:
        """The new consumer sends a commit whatever the member's state."""
        return None

    def on_commit_refused(self, error: str) -> str:
        """STALE_MEMBER_EPOCH and UNKNOWN_MEMBER_ID fail a commitSync with
        CommitFailedException; the membership is the heartbeat's business."""
        return COMMIT_FAILED

    # -- the application thread ----------------------------------------------------------

    def on_poll(self) -> None:
        """``PollEvent``: a stale member (or, 4.0, one not yet joined) joins; with
        auto-commit a 4.0 member reconciles here."""
        if self.state == STALE or (self.state == UNSUBSCRIBED
                                   and self.behaviours.client_member_id):
            self.poll_expired = False
            self._join()
        self.maybe_reconcile(from_poll=True)
        self.maybe_heartbeat()

    def leave_group(self, reason: str) -> None:
        """``close()``/``leaveGroup``: the leave heartbeat (its answer not waited for)."""
        if self.state in NOT_IN_GROUP:
            return
        self.ctx.event(self.name, "leave-group", member=self.member_id,
                       generation=self.epoch, reason=reason)
        self.epoch = LEAVE_EPOCH
        self.current = None
        self.state = LEAVING
        self.maybe_heartbeat()
        self.state = UNSUBSCRIBED

    # -- the background thread -----------------------------------------------------------

    def on_background(self) -> None:
        """One background loop: the poll timer, 3.9's auto-commit, a reconciliation,
        the heartbeat."""
        consumer = self.consumer
        if (self.state not in NOT_IN_GROUP and self.state != LEAVING and consumer.busy()
                and self.ctx.now - consumer.last_poll > self.config.max_poll_interval_ms):
            self._poll_timer_expired()
        if not self.behaviours.auto_commit_at_poll:
            self._maybe_auto_commit_in_background()
        pending = self.revocation_commit
        if (pending is not None and pending.retry_at is not None
                and self.ctx.now >= pending.retry_at):
            self._commit_before_revocation()
        self.maybe_reconcile(from_poll=False)
        self.maybe_heartbeat()

    def _maybe_auto_commit_in_background(self) -> None:
        """``CommitRequestManager.poll`` before KAFKA-18641's fix: whenever the interval
        has passed, an async commit of ``allConsumed()``, the positions past everything
        poll() has returned, whether or not the application has processed it."""
        consumer = self.consumer
        if (not self.config.enable_auto_commit or self.auto_commit_in_flight
                or self.ctx.now < consumer.next_auto_commit):
            return
        consumer.next_auto_commit = self.ctx.now + self.config.auto_commit_interval_ms
        offsets = consumer.all_consumed()
        if not offsets:
            return
        self.auto_commit_in_flight = True

        def done(offsets: dict[int, int], error: str | None) -> None:
            self.auto_commit_in_flight = False
            consumer._auto_commit_done(offsets, error)

        consumer._auto_commit(offsets, "interval (background thread)", done)

    def _poll_timer_expired(self) -> None:
        """``transitionToSendingLeaveGroup(true)`` then ``transitionToStale``: leave with
        epoch -1, lose the partitions without committing; the next poll rejoins."""
        self.ctx.event(self.name, "leave-group", member=self.member_id,
                       generation=self.epoch, reason="max.poll.interval.ms expired")
        self.poll_expired = True
        self.epoch = LEAVE_EPOCH
        self.current = None
        self.state = LEAVING
        self.maybe_heartbeat()
        self.state = STALE
        self._abandon_reconciliation()
        self.consumer.lose_partitions("max.poll.interval.ms expired")

    def _join(self) -> None:
        """``transitionToJoining``: epoch 0, every field, nothing owned."""
        self.state = JOINING
        self.epoch = JOIN_EPOCH
        self.target = None
        self.current = None
        self.send_all = True
        self._abandon_reconciliation()

    def maybe_heartbeat(self) -> None:
        if self.state in NOT_IN_GROUP or not self.consumer.alive:
            return
        if not self.coordinator.coordinator_ready():
            return
        now = self.ctx.now
        if self.state != LEAVING:
            if self.request is not None or now < self.retry_at:
                return
            if self.state not in (JOINING, ACKNOWLEDGING) and now < self.next_heartbeat_at:
                return
        target = self.coordinator.coordinator
        assert target is not None
        owned_now = self.current if self.current is not None else ()
        sent = (owned_now, self.local_epoch)
        full = self.send_all or self.state == JOINING
        corr = self.ctx.next_corr()
        request = m.ConsumerGroupHeartbeatRequest(
            corr, self.group, self.member_id, self.epoch,
            rebalance_timeout_ms=self.config.max_poll_interval_ms if full else None,
            subscribed=True if full else None,
            server_assignor=self.config.group_remote_assignor if full else None,
            owned=owned_now if full or sent != self.sent_owned else None)
        if not self.ctx.send(self.name, target, request):
            return
        self.sent_owned, self.send_all = sent, False
        if self.state == LEAVING:
            return                  # the answer to a leave is not waited for
        self.request = Request(corr, target, now)
        self.next_heartbeat_at = now + self.interval_ms
        if self.state == ACKNOWLEDGING:
            self.state = STABLE if self.target == self.current else RECONCILING

    def on_heartbeat_response(self, resp: m.ConsumerGroupHeartbeatResponse) -> None:
        if self.request is None or self.request.corr != resp.corr:
            return
        self.request = None
        if resp.error is not None:
            self._heartbeat_failed(resp.error)
            return
        if resp.heartbeat_interval_ms != self.interval_ms:
            # updateHeartbeatIntervalMs: a changed interval restarts the timer from the
            # answer (the join went out with an interval of 0, which would otherwise
            # send the next heartbeat at once).
            self.interval_ms = resp.heartbeat_interval_ms
            self.next_heartbeat_at = self.ctx.now + self.interval_ms
        if self.state in NOT_IN_GROUP or self.state == LEAVING:
            return
        if not self.behaviours.client_member_id:
            self.member_id = resp.member_id
        self.epoch = resp.member_epoch
        self.consumer.group_metadata = (self.epoch, self.member_id)
        if resp.assignment is not None:
            self.target = tuple(sorted(resp.assignment))
            if self.current is None or self.target != self.current:
                self.state = RECONCILING
            elif self.state in (JOINING, RECONCILING):
                self.state = STABLE
        self.maybe_reconcile(from_poll=False)
        self.maybe_heartbeat()

    def _heartbeat_failed(self, error: str) -> None:
        self.ctx.event(self.name, "heartbeat-error", member=self.member_id,
                       generation=self.epoch, error=error)
        self.send_all = True
        self.retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
        if error in (m.FENCED_MEMBER_EPOCH, m.UNKNOWN_MEMBER_ID):
            self._fenced(error)
        elif error in RETRIABLE or error == m.COORDINATOR_LOAD_IN_PROGRESS:
            if error != m.COORDINATOR_LOAD_IN_PROGRESS:
                self.coordinator.mark_unknown()
        else:
            self.state = FATAL
            self.consumer.group_error(error)

    def _fenced(self, error: str) -> None:
        """``transitionToFenced``: epoch 0, the partitions lost (no commit), the
        assignment cleared, and a new join with the same member id."""
        if self.state in NOT_IN_GROUP:
            return
        self.state = FENCED
        self.epoch = JOIN_EPOCH
        self._abandon_reconciliation()
        self.consumer.lose_partitions(error)
        self._join()

    def on_disconnect(self, peer: str) -> None:
        if self.request is not None and self.request.broker == peer:
            self.request = None
            self._heartbeat_failed(m.NETWORK_EXCEPTION)

    def timed_out(self, now: int, request_timeout_ms: int) -> set[str]:
        request = self.request
        return {request.broker} if request is not None and request.timed_out(
            now, request_timeout_ms) else set()

    # -- reconciliation ----------------------------------------------------------------

    def maybe_reconcile(self, from_poll: bool) -> None:
        """``maybeReconcile``: one reconciliation at a time toward the latest target."""
        if self.state != RECONCILING or self.reconciliation or self.target is None:
            return
        if (self.behaviours.auto_commit_at_poll and self.config.enable_auto_commit
                and not from_poll):
            return
        consumer = self.consumer
        target = self.target
        owned = set(consumer.partitions)
        if set(target) == owned:
            # Nothing to revoke or assign: acknowledge the new epoch, no callbacks.
            self.current = target
            self.local_epoch += 1
            self.state = ACKNOWLEDGING
            self.maybe_heartbeat()
            return
        revoked = sorted(owned - set(target))
        added = sorted(set(target) - owned)
        self.reconciliations += 1
        attempt = self.reconciliations
        self.reconciliation = attempt
        if self.behaviours.revoking_stops_fetch_first:
            consumer.stop_fetching(revoked)
        if not self.config.enable_auto_commit or not consumer.all_consumed():
            self._finish_reconciliation(attempt, target, revoked, added)
            return
        self.revocation_commit = RevocationCommit(
            attempt, target, revoked, added, self.ctx.now + self.config.max_poll_interval_ms)
        self._commit_before_revocation()

    def _commit_before_revocation(self) -> None:
        """``maybeAutoCommitSyncBeforeRevocation``: commit ``allConsumed()``; a
        retriable failure (or a stale epoch while the member has one) is retried with
        fresh positions after the backoff until the rebalance timeout; then the
        reconciliation goes on whatever the outcome."""
        pending = self.revocation_commit
        assert pending is not None
        consumer = self.consumer
        pending.retry_at = None

        def committed(offsets: dict[int, int], error: str | None) -> None:
            if self.revocation_commit is not pending or self.reconciliation != pending.attempt:
                return
            retry = error in RETRIABLE or (error == m.STALE_MEMBER_EPOCH and self.epoch > 0)
            if error is not None and retry and self.ctx.now < pending.deadline:
                pending.retry_at = self.ctx.now + self.ctx.config.producer.retry_backoff_ms
                return
            if error is not None:
                self.ctx.event(self.name, "auto-commit-failed", error=error)
            self.revocation_commit = None
            self._finish_reconciliation(pending.attempt, pending.target, pending.revoked,
                                        pending.added)

        consumer._auto_commit(consumer.all_consumed(), "before revocation", committed)

    def _abandon_reconciliation(self) -> None:
        """A reconciliation under way stops (the member was fenced, went stale or
        joins again): nothing it would still do happens."""
        self.reconciliation = 0
        self.revocation_commit = None

    def _finish_reconciliation(self, attempt: int, target: tuple[int, ...],
                               revoked: list[int], added: list[int]) -> None:
        """``revokeAndAssign``: revoke, assign, then acknowledge at once."""
        if self.reconciliation != attempt or self.state != RECONCILING:
            return
        self.reconciliation = 0
        consumer = self.consumer
        if not self.behaviours.revoking_stops_fetch_first:
            consumer.stop_fetching(revoked)
        consumer.reassign(revoked, added)
        self.current = target
        self.local_epoch += 1
        consumer.next_auto_commit = self.ctx.now + self.config.auto_commit_interval_ms
        self.state = ACKNOWLEDGING
        self.maybe_heartbeat()
