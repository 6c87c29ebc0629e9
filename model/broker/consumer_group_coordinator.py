"""The group coordinator's side of KIP-848: ``ConsumerGroupHeartbeat`` and its timers.

As ``GroupMetadataManager.consumerGroupHeartbeat`` (3.8+) handles one heartbeat:

1. epoch -1 leaves (the member is removed, whatever its epoch);
2. epoch 0 joins: an unknown member id is a new member; a known one keeps its record
   (KAFKA-19233, 4.2.0).  Before 4.2 a known one must pass the epoch check below with
   nothing owned, which only a member whose first answer was lost (previous epoch 0)
   does, so a fenced member rejoining with its old id is refused until its session runs
   out;
3. the epoch check (``throwIfConsumerGroupMemberEpochIsInvalid``): a higher epoch than
   the member's, or a lower one that is not its previous epoch with what it owns a
   subset of its assignment, is FENCED_MEMBER_EPOCH;
4. a new member (a subscription change) bumps the group epoch; the target assignment is
   computed again on the next heartbeat after a bump (``updateTargetAssignment``);
5. the member moves one step toward its target (:func:`next_assignment`); entering
   UNREVOKED_PARTITIONS arms its rebalance timer (the member's ``max.poll.interval.ms``),
   which removes it if it is still at that epoch when the timer fires;
6. the session timer restarts (``group.consumer.session.timeout.ms``); a member not heard
   from for that long is removed, freeing its partitions and bumping the group epoch.

Every change is written to ``__consumer_offsets`` and the heartbeat is answered once the
write is committed (``CoordinatorRuntime``); a failed write reverts the group to what is
committed.  A heartbeat that changes nothing is answered once everything written before
it is committed.  A coordinator that has just become leader loads the group from its
log and re-arms every member's session (``onLoaded``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import attrs

from model import messages as m
from model.broker.classic_group import group_key
from model.broker.consumer_group import (JOIN_EPOCH, LEAVE_EPOCH, UNREVOKED_PARTITIONS,
                                         ConsumerGroup, ConsumerMember,
                                         is_consumer_group_value, next_assignment)
from model.broker.server_assignors import assign

if TYPE_CHECKING:
    from model.broker.group_coordinator import GroupCoordinator

# How the new group coordinator answers a failed write to __consumer_offsets, for every
# request it serves (GroupCoordinatorService.handleOperationException in 3.9,
# CoordinatorOperationExceptionHelper in 4.x): a timed-out write is
# COORDINATOR_NOT_AVAILABLE, as too few replicas are.
COORDINATOR_WRITE_ERRORS = {
    m.NOT_ENOUGH_REPLICAS: m.COORDINATOR_NOT_AVAILABLE,
    m.NOT_ENOUGH_REPLICAS_AFTER_APPEND: m.COORDINATOR_NOT_AVAILABLE,
    m.NOT_LEADER_OR_FOLLOWER: m.NOT_COORDINATOR,
    m.REQUEST_TIMED_OUT: m.COORDINATOR_NOT_AVAILABLE,
}


class Refused(Exception):
    """A heartbeat answered with an error, nothing changed."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class ConsumerGroupCoordinator:
    def __init__(self, coordinator: "GroupCoordinator") -> None:
        self.coordinator = coordinator
        self.broker = coordinator.broker
        self.ctx = coordinator.ctx
        self.config = self.ctx.config.broker
        # group id -> (leader epoch it was loaded at, the group)
        self.groups: dict[str, tuple[int, ConsumerGroup]] = {}

    # -- loading -----------------------------------------------------------------------

    def group(self, group_id: str) -> ConsumerGroup | None:
        """The consumer group as this coordinator knows it (loaded from the log when it
        has just become leader); None if it is not the leader or there is none."""
        partition, loaded = self.coordinator.cached_under_leadership(self.groups, group_id)
        if partition is None or loaded is not None:
            return loaded
        group = self._load(group_id, partition.log.records)
        if group is None:
            return None
        self.groups[group_id] = (partition.leader_epoch, group)
        self.ctx.event(self.broker.name, "group-loaded", group=group_id, protocol="consumer",
                       epoch=group.group_epoch, members=sorted(group.members))
        return group

    def _load(self, group_id: str, records: Any) -> ConsumerGroup | None:
        key = group_key(group_id)
        value = None
        for record in records:
            if record.key == key and is_consumer_group_value(record.value):
                value = record.value
        if value is None:
            return None
        group = ConsumerGroup.from_value(group_id, value)
        for member in group.members.values():          # onLoaded re-arms the timers
            member.session_deadline = self.ctx.now + self.config.group_consumer_session_timeout_ms
            if member.state == UNREVOKED_PARTITIONS:
                member.rebalance_deadline = self.ctx.now + member.rebalance_timeout_ms
                member.rebalance_epoch = member.epoch
        return group

    def _create(self, group_id: str) -> ConsumerGroup:
        partition = self.coordinator.leading_partition(group_id)
        assert partition is not None
        group = ConsumerGroup(group_id)
        self.groups[group_id] = (partition.leader_epoch, group)
        return group

    # -- ConsumerGroupHeartbeat ----------------------------------------------------------

    def heartbeat(self, src: str, conn: int, req: m.ConsumerGroupHeartbeatRequest) -> None:
        def answer(resp: m.ConsumerGroupHeartbeatResponse) -> None:
            self.broker.reply(src, conn, resp)

        if self.coordinator.leading_partition(req.group) is None:
            answer(m.ConsumerGroupHeartbeatResponse(req.corr, m.NOT_COORDINATOR))
            return
        if self.coordinator.classic_group_in_use(req.group):
            # A classic group with members: not converted (group.consumer.migration.policy
            # is not modelled), GROUP_ID_NOT_FOUND as Kafka answers an unconvertible group.
            answer(m.ConsumerGroupHeartbeatResponse(req.corr, m.GROUP_ID_NOT_FOUND))
            return
        group = self.group(req.group)
        before = group.to_value() if group is not None else None
        try:
            if req.member_epoch == LEAVE_EPOCH:
                group, resp = self._leave(group, req)
            else:
                group, resp = self._beat(group, src, req)
        except Refused as refused:
            answer(m.ConsumerGroupHeartbeatResponse(req.corr, refused.error))
            return
        self._write(group, before, lambda error: answer(
            resp if error is None else m.ConsumerGroupHeartbeatResponse(req.corr, error)))

    def _leave(self, group: ConsumerGroup | None,
               req: m.ConsumerGroupHeartbeatRequest
               ) -> tuple[ConsumerGroup, m.ConsumerGroupHeartbeatResponse]:
        """``consumerGroupLeave``: no epoch check; the member is removed."""
        if group is None:
            raise Refused(m.GROUP_ID_NOT_FOUND)
        member = group.members.get(req.member_id)
        if member is None:
            raise Refused(m.UNKNOWN_MEMBER_ID)
        self.fence(group, member, "left the group")
        return group, m.ConsumerGroupHeartbeatResponse(req.corr, None, req.member_id,
                                                       LEAVE_EPOCH)

    def _beat(self, group: ConsumerGroup | None, src: str,
              req: m.ConsumerGroupHeartbeatRequest
              ) -> tuple[ConsumerGroup, m.ConsumerGroupHeartbeatResponse]:
        joining = req.member_epoch == JOIN_EPOCH
        if joining and (req.rebalance_timeout_ms is None or req.subscribed is None
                        or req.owned is None or req.owned):
            raise Refused(m.INVALID_REQUEST)
        member_id = req.member_id
        if not member_id:
            if not joining or self.ctx.config.kafka.behaviours.client_member_id:
                raise Refused(m.INVALID_REQUEST)    # KIP-1082: the client names itself
            member_id = f"{src}-{self.ctx.next_corr()}"   # 3.x: the coordinator does
        if group is None:
            if not joining:
                raise Refused(m.GROUP_ID_NOT_FOUND)
            group = self._create(req.group)
        member = group.members.get(member_id)
        if member is None:
            if not joining:
                raise Refused(m.UNKNOWN_MEMBER_ID)
            member = ConsumerMember(member_id, src)
            self.ctx.event(self.broker.name, "member-joined", group=group.group_id,
                           member=member_id, protocol="consumer")
        else:
            self._check_epoch(member, req.member_epoch, () if joining else req.owned,
                              self.ctx.config.kafka.behaviours.epoch_zero_rejoin)
        updated = attrs.evolve(member, client=src)
        if req.rebalance_timeout_ms is not None:
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.subscribed is not None:
            updated.subscribed = req.subscribed
        if member_id not in group.members or updated.subscribed != member.subscribed:
            group.group_epoch += 1           # hasMemberSubscriptionChanged
        group.members[member_id] = updated
        if group.group_epoch > group.assignment_epoch:
            self._update_target(group, req.server_assignor)
        reconciled = self._reconcile(group, updated, req.owned)
        reconciled.session_deadline = (self.ctx.now
                                       + self.config.group_consumer_session_timeout_ms)
        full = joining or (req.rebalance_timeout_ms is not None
                           and req.subscribed is not None and req.owned is not None)
        changed = reconciled.assigned != member.assigned   # hasAssignedPartitionsChanged
        resp = m.ConsumerGroupHeartbeatResponse(
            req.corr, None, member_id, reconciled.epoch,
            self.config.group_consumer_heartbeat_interval_ms,
            tuple(sorted(reconciled.assigned)) if full or changed else None)
        return group, resp

    @staticmethod
    def _check_epoch(member: ConsumerMember, received: int,
                     owned: tuple[int, ...] | None, epoch_zero_rejoins: bool = True) -> None:
        """``throwIfConsumerGroupMemberEpochIsInvalid``; ``epoch_zero_rejoins``: its early
        return for epoch 0 (KAFKA-19233, 4.2.0)."""
        if epoch_zero_rejoins and received == JOIN_EPOCH:
            return
        if received > member.epoch:
            raise Refused(m.FENCED_MEMBER_EPOCH)
        if received < member.epoch and not (
                received == member.previous_epoch and owned is not None
                and set(owned) <= member.assigned):
            raise Refused(m.FENCED_MEMBER_EPOCH)

    def _update_target(self, group: ConsumerGroup, asked: str | None) -> None:
        """``updateTargetAssignment``: every subscribed member's target for the group
        epoch, sticky to the previous target."""
        configured = self.config.group_consumer_assignors.split(",")
        assignor = asked if asked in configured else configured[0]
        subscribed = [mid for mid, mb in group.members.items() if mb.subscribed]
        target = assign(assignor, subscribed, self.ctx.config.topic.partitions, group.target)
        group.target = {mid: target.get(mid, frozenset()) for mid in group.members}
        group.assignment_epoch = group.group_epoch
        self.ctx.event(self.broker.name, "target-assignment", group=group.group_id,
                       epoch=group.assignment_epoch, assignor=assignor,
                       target={mid: sorted(parts) for mid, parts in group.target.items()})

    def _reconcile(self, group: ConsumerGroup, member: ConsumerMember,
                   owned: tuple[int, ...] | None) -> ConsumerMember:
        """``maybeReconcile``: one step of ``CurrentAssignmentBuilder``, and the
        rebalance timer armed on entering UNREVOKED_PARTITIONS, cancelled on leaving."""
        if member.reconciled_to(group.assignment_epoch):
            return member
        target = group.target.get(member.member_id, frozenset())
        others = ConsumerGroup(group.group_id, members={
            mid: mb for mid, mb in group.members.items() if mid != member.member_id})
        behaviours = self.ctx.config.kafka.behaviours
        # Before KAFKA-19449 (4.0.2, 4.1.2, 4.2.0) the member's own pending revocation
        # counted as held too: a partition given back waited for UNRELEASED_PARTITIONS.
        own_pending = (frozenset() if behaviours.own_revocation_released
                       else member.pending_revocation)

        def partition_epoch(p: int) -> int:
            return member.epoch if p in own_pending else others.partition_epoch(p)

        new = next_assignment(member, group.assignment_epoch, target, partition_epoch, owned,
                              behaviours.unrevoked_exit_keeps_epoch)
        if new is member or new.assignment_state() == member.assignment_state():
            return member
        if new.state == UNREVOKED_PARTITIONS:
            new.rebalance_deadline = self.ctx.now + new.rebalance_timeout_ms
            new.rebalance_epoch = new.epoch
        else:
            new.rebalance_deadline = None
        group.members[member.member_id] = new
        self.ctx.event(self.broker.name, "member-assignment", group=group.group_id,
                       member=new.member_id, epoch=new.epoch, state=new.state,
                       assigned=sorted(new.assigned),
                       revoking=sorted(new.pending_revocation))
        return new

    # -- removal and timers --------------------------------------------------------------

    def fence(self, group: ConsumerGroup, member: ConsumerMember, reason: str) -> None:
        """``consumerGroupFenceMember``: the member and its target go, its partitions
        are free at once, and the group epoch is bumped (the target is computed again
        on the next heartbeat)."""
        del group.members[member.member_id]
        group.target.pop(member.member_id, None)
        group.group_epoch += 1
        self.ctx.event(self.broker.name, "member-removed", group=group.group_id,
                       member=member.member_id, generation=member.epoch, reason=reason)

    def on_tick(self) -> None:
        """Session and rebalance timeouts (``scheduleConsumerGroupSessionTimeout``,
        ``scheduleConsumerGroupRebalanceTimeout``)."""
        now = self.ctx.now
        for group_id in sorted(self.groups):
            group = self.group(group_id)
            if group is None:
                continue
            before = group.to_value()
            for member in list(group.members.values()):
                if member.session_deadline <= now:
                    self.fence(group, member, "session timeout")
                elif (member.rebalance_deadline is not None and member.rebalance_deadline <= now
                      and member.epoch == member.rebalance_epoch):
                    self.fence(group, member, "did not revoke within the rebalance timeout")
            self._write(group, before, lambda error: None)

    # -- writing -----------------------------------------------------------------------

    def _write(self, group: ConsumerGroup, before: Any,
               complete: Callable[[str | None], None]) -> None:
        """Append the group if it changed, and ``complete`` once committed.

        As ``CoordinatorRuntime``: the change is applied when its records are appended
        (later heartbeats see it) and answered when the high watermark passes them.  An
        append that fails outright (nothing written) reverts this change alone
        (``SnapshotRegistry.revertToSnapshot``); a write that times out stays, as its
        records may still be committed; a coordinator that loses its partition is
        unloaded, and the next leader loads what its log holds."""
        partition = self.coordinator.leading_partition(group.group_id)
        if partition is None:
            complete(m.NOT_COORDINATOR)
            return
        timeout = self.config.offsets_commit_timeout_ms
        appending = True

        def done(error: str | None, offset: int | None) -> None:
            if error is not None and appending:
                self._revert(group, before)
            complete(None if error is None else COORDINATOR_WRITE_ERRORS.get(error, error))

        value = group.to_value()
        if value == before:
            partition.when_committed(timeout, done)
        else:
            partition.append_as_leader([(group_key(group.group_id), value, self.broker.name)],
                                       "all", timeout, done)
        appending = False

    def _revert(self, group: ConsumerGroup, before: Any) -> None:
        """Undo one change whose append failed; members keep their in-memory timers."""
        loaded = self.groups.get(group.group_id)
        if loaded is None or loaded[1] is not group:
            return
        if before is None:
            del self.groups[group.group_id]
            return
        restored = ConsumerGroup.from_value(group.group_id, before)
        for member_id, member in restored.members.items():
            old = group.members.get(member_id)
            if old is not None:
                member.session_deadline = old.session_deadline
                member.rebalance_deadline = old.rebalance_deadline
                member.rebalance_epoch = old.rebalance_epoch
        self.groups[group.group_id] = (loaded[0], restored)

    # -- offsets -----------------------------------------------------------------------

    def validate_commit(self, group: ConsumerGroup, member_id: str, epoch: int,
                        transactional: bool) -> str | None:
        """``ConsumerGroup.validateOffsetCommit``: an epoch below 0 is accepted only by a
        group without members; otherwise the member must exist and send its current
        epoch exactly (STALE_MEMBER_EPOCH, ILLEGAL_GENERATION for TxnOffsetCommit).  The
        committed partitions are not checked against the member's assignment."""
        if epoch < 0 and not group.members:
            return None
        member = group.members.get(member_id)
        if member is None:
            return m.UNKNOWN_MEMBER_ID
        if epoch != member.epoch:
            return m.ILLEGAL_GENERATION if transactional else m.STALE_MEMBER_EPOCH
        return None

    def validate_fetch(self, group: ConsumerGroup, member_id: str, epoch: int) -> str | None:
        """``ConsumerGroup.validateOffsetFetch``."""
        if not member_id and epoch < 0:
            return None
        member = group.members.get(member_id)
        if member is None:
            return m.UNKNOWN_MEMBER_ID
        return m.STALE_MEMBER_EPOCH if epoch != member.epoch else None
