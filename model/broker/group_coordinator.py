"""The group coordinator's offset storage: commits are records in ``__consumer_offsets``.

A group is coordinated by the leader of ``__consumer_offsets`` partition
``abs(groupId.hashCode()) % offsets.topic.num.partitions`` (``GroupCoordinatorService``
/ ``Utils.abs``); any broker answers ``FindCoordinator`` from its metadata, and a broker
that does not lead that partition answers ``NOT_COORDINATOR``.

A commit is appended to that partition like a produce with ``acks=all``
(``offsets.commit.required.acks=-1``) and answered once the high watermark passes it, or
with ``REQUEST_TIMED_OUT`` after ``offsets.commit.timeout.ms``; append errors are mapped as
``GroupMetadataManager.storeOffsets`` maps them.  Committed offsets are read back as of the
high watermark (the new coordinator's ``CoordinatorRuntime`` reads at the last committed
offset), so a commit that was appended but never replicated is not visible, and one that
was committed survives a coordinator failover exactly as a record would.

Classic groups (``kafkacheck.consumer.api=subscribe``) live in memory at the
coordinator (:mod:`model.broker.classic_group`) and are written to the same partition
when a generation's assignment is stored (``GroupMetadataManager.storeGroup``): a new
coordinator loads the last one from its log, as ``CoordinatorRuntime`` replays it, and
expects a heartbeat from every member within its session from then on.  Commits are
validated against the group as ``ClassicGroup.validateOffsetCommit`` does; a consumer
using ``assign`` commits with generation -1 and no member id, accepted while the group
is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import attrs

from model import messages as m
from model.broker.classic_group import (COMPLETING_REBALANCE, EMPTY, PREPARING_REBALANCE,
                                        STABLE, ClassicGroup, Member, group_key,
                                        is_group_value)
from model.broker.consumer_group_coordinator import (COORDINATOR_WRITE_ERRORS,
                                                     ConsumerGroupCoordinator)
from model.broker.log import Record
from model.broker.producer_state import COMMIT, NO_SEQUENCE, BatchHeader
from model.metadata import OFFSETS_TOPIC, PartitionId, offsets_partition

if TYPE_CHECKING:
    from model.broker.broker import Broker

# The Scala GroupCoordinator (classic groups before 4.0.0): GroupMetadataManager.storeGroup
# answers a timed-out group write REBALANCE_IN_PROGRESS, and maybeConvertOffsetCommitError
# passes a timed-out offset commit through as REQUEST_TIMED_OUT.
SCALA_GROUP_WRITE_ERRORS = {**COORDINATOR_WRITE_ERRORS,
                            m.REQUEST_TIMED_OUT: m.REBALANCE_IN_PROGRESS}
SCALA_OFFSET_WRITE_ERRORS = {**COORDINATOR_WRITE_ERRORS,
                             m.REQUEST_TIMED_OUT: m.REQUEST_TIMED_OUT}


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units, 32-bit wrapping), signed."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def java_abs(n: int) -> int:
    """Kafka's ``Utils.abs``: ``Integer.MIN_VALUE`` maps to 0, not to itself."""
    return 0 if n == -(1 << 31) else abs(n)


def coordinator_partition(group: str, partitions: int) -> str:
    return offsets_partition(java_abs(java_string_hash(group)) % partitions)


def _cooperative(protocols: tuple[str, ...]) -> bool:
    """A member whose every assignor is cooperative-sticky rebalances COOPERATIVE.

    ``ClassicGroupMember.matches`` compares the subscription bytes a member sent with
    those it sends again; for such a member they carry the partitions it still owns, so
    a member rejoining after revoking some (KIP-429's second round) starts a rebalance
    even as a follower of a stable group.  For EAGER members kafkacheck compares only
    the assignor list: their subscriptions carry no ownership after the revocation
    (StickyAssignor's user data aside, which is not compared here)."""
    return all(name == "cooperative-sticky" for name in protocols)


def commit_key(group: str, partition: int) -> str:
    """The record key of one committed offset (Kafka's ``OffsetCommitKey``)."""
    return f"{group}/{partition}"


class GroupCoordinator:
    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        self.ctx = broker.ctx
        # group id -> (leader epoch it was loaded at, the group)
        self.groups: dict[str, tuple[int, ClassicGroup]] = {}
        # KIP-848 groups (group.protocol=consumer), kept apart.
        self.consumer_groups = ConsumerGroupCoordinator(self)

    def partition_for(self, group: str) -> PartitionId:
        return coordinator_partition(group, self.ctx.config.broker.offsets_topic_num_partitions)

    def _group_write_error(self, error: str) -> str:
        """What a JoinGroup or SyncGroup gets when storing the group failed."""
        return self._write_error(error, SCALA_GROUP_WRITE_ERRORS)

    def _offset_write_error(self, error: str) -> str:
        """What an OffsetCommit or TxnOffsetCommit gets when storing offsets failed."""
        return self._write_error(error, SCALA_OFFSET_WRITE_ERRORS)

    def _write_error(self, error: str, scala: dict[str, str]) -> str:
        """The new coordinator's answer from 4.0, the Scala coordinator's before."""
        new = self.ctx.config.kafka.behaviours.new_group_coordinator
        return (COORDINATOR_WRITE_ERRORS if new else scala).get(error, error)

    def leading_partition(self, group: str) -> Any:
        """The local replica of the group's offsets partition, if this broker leads it."""
        partition = self.broker.partitions.get(self.partition_for(group))
        return partition if partition is not None and partition.is_leader else None

    def cached_under_leadership(self, cache: dict[str, tuple[int, Any]], group_id: str,
                                ) -> tuple[Any, Any]:
        """The group's partition if this broker leads it, and what ``cache`` holds for
        the group as loaded under this leadership (None if never, or under an earlier
        leader epoch: a new leader loads the group again from its log)."""
        partition = self.leading_partition(group_id)
        if partition is None:
            cache.pop(group_id, None)
            return None, None
        loaded = cache.get(group_id)
        if loaded is not None and loaded[0] == partition.leader_epoch:
            return partition, loaded[1]
        return partition, None

    def _group(self, group_id: str) -> ClassicGroup | None:
        """The group as this coordinator knows it, loaded from the log when this broker
        has just become the leader of its partition; None when it is not the leader."""
        partition, loaded = self.cached_under_leadership(self.groups, group_id)
        if partition is None or loaded is not None:
            return loaded
        group = ClassicGroup(group_id)
        key = group_key(group_id)
        for record in partition.log.records:
            if record.key == key and is_group_value(record.value):
                group = ClassicGroup.from_value(group_id, record.value)
        for member in group.members.values():
            member.heartbeat_deadline = self.ctx.now + member.session_timeout_ms
        self.groups[group_id] = (partition.leader_epoch, group)
        if group.generation > 0:      # a group was stored (not just an empty name)
            self.ctx.event(self.broker.name, "group-loaded", group=group_id,
                           state=group.state, generation=group.generation,
                           members=sorted(group.members))
        return group

    def classic_group_in_use(self, group_id: str) -> bool:
        group = self._group(group_id)
        return group is not None and bool(group.members)

    def consumer_group_heartbeat(self, src: str, generation: int,
                                 req: m.ConsumerGroupHeartbeatRequest) -> None:
        self.consumer_groups.heartbeat(src, generation, req)

    def find_coordinator(self, src: str, generation: int, req: m.FindCoordinatorRequest) -> None:
        leader = self.broker.metadata.leader_of(self.partition_for(req.group))
        error = None if leader is not None else m.COORDINATOR_NOT_AVAILABLE
        self.broker.reply(src, generation, m.FindCoordinatorResponse(req.corr, error, leader))

    # -- JoinGroup ---------------------------------------------------------------------

    def join(self, src: str, generation: int, req: m.JoinGroupRequest) -> None:
        group = self._group(req.group)
        if group is None:
            self.broker.reply(src, generation, m.JoinGroupResponse(req.corr, m.NOT_COORDINATOR))
            return
        waiting = (src, generation, req.corr)
        if req.instance_id is not None and req.member_id:
            refused = group.validate_member(req.member_id, req.instance_id)
            if refused is not None:
                self.broker.reply(src, generation, m.JoinGroupResponse(req.corr, refused))
                return
        if req.instance_id is not None and not req.member_id:
            # KIP-345: a static member joins at once (no MEMBER_ID_REQUIRED); a known
            # instance replaces its previous member id.
            member_id = f"{req.instance_id}-{self.ctx.next_corr()}"
            existing = group.static_member(req.instance_id)
            if existing is not None:
                self._replace_static_member(group, existing, member_id, req, waiting)
                return
            group.pending[member_id] = self.ctx.now + req.session_timeout_ms
            req = attrs.evolve(req, member_id=member_id)
        elif not req.member_id:
            # KIP-394: a new member is given its id and must join again with it.
            member_id = f"{src}-{self.ctx.next_corr()}"
            group.pending[member_id] = self.ctx.now + req.session_timeout_ms
            self.broker.reply(src, generation, m.JoinGroupResponse(
                req.corr, m.MEMBER_ID_REQUIRED, member_id=member_id))
            return
        member = group.members.get(req.member_id)
        if member is None and req.member_id not in group.pending:
            self.broker.reply(src, generation, m.JoinGroupResponse(req.corr, m.UNKNOWN_MEMBER_ID))
            return
        if member is None:
            del group.pending[req.member_id]
            member = Member(req.member_id, src, req.session_timeout_ms,
                            req.rebalance_timeout_ms, req.protocols, is_new=True,
                            instance_id=req.instance_id)
            group.members[member.member_id] = member
            self.ctx.event(self.broker.name, "member-joined", group=group.group_id,
                           member=member.member_id)
            changed = True
        else:
            changed = member.protocols != req.protocols or (
                _cooperative(req.protocols)
                and (member.owned, member.owned_generation) != (req.owned, req.owned_generation))
            member.protocols = req.protocols
        member.owned, member.owned_generation = req.owned, req.owned_generation
        member.client = src
        if group.state == COMPLETING_REBALANCE and not changed:
            # A member that lost the JoinGroup answer: give it the current generation.
            self._answer_join(group, member, waiting)
            return
        if (group.state == STABLE and not changed
                and member.member_id != group.leader):
            # A follower rejoining with nothing new gets the current generation back.
            self._answer_join(group, member, waiting)
            return
        member.awaiting_join = waiting
        member.heartbeat_deadline = self.ctx.now + member.session_timeout_ms
        if group.state != PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"{member.member_id} joined")
        elif group.initial_delay_until is not None and member.is_new:
            # InitialDelayedJoin: every new member extends the wait, up to the cap.
            delay = self.ctx.config.broker.group_initial_rebalance_delay_ms
            group.initial_delay_until = min(self.ctx.now + delay, group.initial_delay_cap)
        self._maybe_complete_join(group)

    def _replace_static_member(self, group: ClassicGroup, old_id: str, new_id: str,
                               req: m.JoinGroupRequest, waiting: tuple[str, int, int]) -> None:
        """``updateStaticMemberThenRebalanceOrCompleteJoin``: the instance's old member
        id is fenced (its held JoinGroup / SyncGroup answered FENCED_INSTANCE_ID) and the
        new one takes its place and assignment.  In Stable with the group's protocol
        unchanged there is no rebalance: the group is stored with the new member id and
        the JoinGroup answered with the current generation (the member then syncs and
        gets its old assignment back); in CompletingRebalance a rebalance starts (the
        leader may have assigned the old id); in PreparingRebalance it joins the phase."""
        old = group.members[old_id]
        for held, answer in ((old.awaiting_join, m.JoinGroupResponse),
                             (old.awaiting_sync, m.SyncGroupResponse)):
            if held is not None:
                src, conn, corr = held
                self.broker.reply(src, conn, answer(corr, m.FENCED_INSTANCE_ID))
        old.awaiting_join = old.awaiting_sync = None
        before = (old.protocols, old.session_timeout_ms, old.rebalance_timeout_ms, old.client)
        member = group.replace_static_member(old_id, new_id)
        member.protocols, member.session_timeout_ms = req.protocols, req.session_timeout_ms
        member.rebalance_timeout_ms, member.client = req.rebalance_timeout_ms, waiting[0]
        member.owned, member.owned_generation = req.owned, req.owned_generation
        member.heartbeat_deadline = self.ctx.now + member.session_timeout_ms
        self.ctx.event(self.broker.name, "static-member-replaced", group=group.group_id,
                       instance=req.instance_id, old=old_id, new=new_id, state=group.state)
        if group.state == STABLE and group.select_protocol() == group.protocol:
            self._store_replacement(group, member, old_id, before, waiting)
            return
        member.awaiting_join = waiting
        if group.state != PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"static member {req.instance_id} rejoined as {new_id}")
        self._maybe_complete_join(group)

    def _store_replacement(self, group: ClassicGroup, member: Member, old_id: str,
                           before: tuple[Any, ...], waiting: tuple[str, int, int]) -> None:
        """Persist the group with the static member's new id, then answer its JoinGroup
        with the current generation; a failed write reverts the replacement and answers
        the error."""
        partition = self.leading_partition(group.group_id)
        generation = group.generation
        src, conn, corr = waiting

        def complete(error: str | None, offset: int | None) -> None:
            if group.members.get(member.member_id) is not member:
                return      # replaced or removed meanwhile
            if error is not None or group.generation != generation:
                new_id = member.member_id
                group.replace_static_member(new_id, old_id)
                (member.protocols, member.session_timeout_ms, member.rebalance_timeout_ms,
                 member.client) = before
                mapped = self._group_write_error(error) if error else m.REBALANCE_IN_PROGRESS
                self.broker.reply(src, conn, m.JoinGroupResponse(corr, mapped))
                return
            self._answer_join(group, member, waiting)

        if partition is None:
            complete(m.NOT_COORDINATOR, None)
            return
        partition.append_as_leader([(group_key(group.group_id), group.to_value(),
                                     self.broker.name)],
                                   "all", self.ctx.config.broker.offsets_commit_timeout_ms,
                                   complete)

    def _answer_join(self, group: ClassicGroup, member: Member, waiting: tuple[str, int, int],
                     ) -> None:
        src, generation, corr = waiting
        members = ()
        if member.member_id == group.leader:
            members = tuple((m.member_id, m.owned, m.owned_generation)
                            for m in group.members.values())
        self.broker.reply(src, generation, m.JoinGroupResponse(
            corr, None, group.generation, group.protocol, group.leader or "",
            member.member_id, members))

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        """``prepareRebalance``: a SyncGroup waiting in CompletingRebalance is answered
        REBALANCE_IN_PROGRESS and the join phase starts (with the initial delay for a
        group that was empty)."""
        if group.state == COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = ()
                if member.awaiting_sync is not None:
                    src, generation, corr = member.awaiting_sync
                    member.awaiting_sync = None
                    self.broker.reply(src, generation, m.SyncGroupResponse(
                        corr, m.REBALANCE_IN_PROGRESS))
        now = self.ctx.now
        if group.state == EMPTY:
            delay = self.ctx.config.broker.group_initial_rebalance_delay_ms
            group.initial_delay_until = now + delay
            group.initial_delay_cap = now + max(delay, group.rebalance_timeout())
        group.join_deadline = now + group.rebalance_timeout()
        group.pending_sync.clear()
        group.state = PREPARING_REBALANCE
        self.ctx.event(self.broker.name, "group-state", group=group.group_id,
                       state=group.state, generation=group.generation, reason=reason)

    def _maybe_complete_join(self, group: ClassicGroup, expired: bool = False) -> None:
        if group.state != PREPARING_REBALANCE:
            return
        if group.initial_delay_until is not None:
            if self.ctx.now < group.initial_delay_until:
                return
        elif not (expired or group.all_joined()):
            return
        self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        """``completeClassicGroupJoin``: members that did not rejoin are removed, then
        the next generation begins (``initNextGeneration``)."""
        group.initial_delay_until = None
        for member in list(group.members.values()):
            if member.awaiting_join is None:
                self._remove(group, member, "did not rejoin within the rebalance timeout")
        group.pending.clear()
        group.generation += 1
        if not group.members:
            group.state, group.protocol, group.leader = EMPTY, None, None
            self.ctx.event(self.broker.name, "group-state", group=group.group_id,
                           state=group.state, generation=group.generation, reason="no members")
            self._store(group, None)
            return
        group.protocol = group.select_protocol()
        if group.leader not in group.members:
            group.leader = next(iter(group.members))
        group.state = COMPLETING_REBALANCE
        self.ctx.event(self.broker.name, "group-state", group=group.group_id,
                       state=group.state, generation=group.generation,
                       members=list(group.members), leader=group.leader,
                       protocol=group.protocol)
        group.pending_sync = set(group.members)
        group.sync_deadline = self.ctx.now + group.rebalance_timeout()
        for member in group.members.values():
            waiting, member.awaiting_join = member.awaiting_join, None
            member.is_new = False
            member.heartbeat_deadline = self.ctx.now + member.session_timeout_ms
            assert waiting is not None
            self._answer_join(group, member, waiting)

    def _remove(self, group: ClassicGroup, member: Member, reason: str) -> None:
        del group.members[member.member_id]
        group.pending_sync.discard(member.member_id)
        self.ctx.event(self.broker.name, "member-removed", group=group.group_id,
                       member=member.member_id, generation=group.generation, reason=reason)
        if member.awaiting_join is not None:
            src, generation, corr = member.awaiting_join
            self.broker.reply(src, generation, m.JoinGroupResponse(corr, m.UNKNOWN_MEMBER_ID))
        if member.awaiting_sync is not None:
            src, generation, corr = member.awaiting_sync
            self.broker.reply(src, generation, m.SyncGroupResponse(corr, m.UNKNOWN_MEMBER_ID))

    # -- SyncGroup ---------------------------------------------------------------------

    def sync(self, src: str, generation: int, req: m.SyncGroupRequest) -> None:
        group = self._group(req.group)

        def answer(error: str | None, assignment: tuple[int, ...] = ()) -> None:
            self.broker.reply(src, generation, m.SyncGroupResponse(req.corr, error, assignment))

        if group is None:
            answer(m.NOT_COORDINATOR)
            return
        refused = group.validate_member(req.member_id, req.instance_id)
        if refused is not None:
            answer(refused)
            return
        member = group.members[req.member_id]
        if req.generation != group.generation:
            answer(m.ILLEGAL_GENERATION)
            return
        if group.state == PREPARING_REBALANCE:
            answer(m.REBALANCE_IN_PROGRESS)
            return
        member.heartbeat_deadline = self.ctx.now + member.session_timeout_ms
        group.pending_sync.discard(member.member_id)
        if group.state == STABLE:
            answer(None, member.assignment)
            return
        member.awaiting_sync = (src, generation, req.corr)
        if req.member_id == group.leader:
            assignments = dict(req.assignments)
            for other in group.members.values():
                other.assignment = tuple(assignments.get(other.member_id, ()))
            self._store(group, group.generation)

    def _store(self, group: ClassicGroup, generation: int | None) -> None:
        """``storeGroup``: the generation's assignment is written to the offsets
        partition with acks=all; only then does the group become Stable and each
        member get its assignment.  A failed write starts a new rebalance."""
        partition = self.leading_partition(group.group_id)
        if partition is None:
            return
        value = group.to_value()

        def complete(error: str | None, offset: int | None) -> None:
            if generation is None or group.state != COMPLETING_REBALANCE \
                    or group.generation != generation:
                return
            if error is not None:
                mapped = self._group_write_error(error)
                for member in group.members.values():
                    if member.awaiting_sync is not None:
                        src, conn, corr = member.awaiting_sync
                        member.awaiting_sync = None
                        self.broker.reply(src, conn, m.SyncGroupResponse(corr, mapped))
                self._prepare_rebalance(group, f"storing the assignment failed: {error}")
                return
            group.state = STABLE
            self.ctx.event(self.broker.name, "group-state", group=group.group_id,
                           state=group.state, generation=group.generation,
                           assignment={mid: list(mb.assignment)
                                       for mid, mb in group.members.items()})
            for member in group.members.values():
                if member.awaiting_sync is not None:
                    src, conn, corr = member.awaiting_sync
                    member.awaiting_sync = None
                    self.broker.reply(src, conn, m.SyncGroupResponse(corr, None, member.assignment))

        partition.append_as_leader([(group_key(group.group_id), value, self.broker.name)],
                                   "all", self.ctx.config.broker.offsets_commit_timeout_ms,
                                   complete)

    # -- Heartbeat and LeaveGroup --------------------------------------------------------

    def heartbeat(self, group_id: str, member_id: str, generation: int,
                  instance_id: str | None = None) -> str | None:
        """``classicGroupHeartbeat``; exchanged during a tick (see ``Cluster``)."""
        group = self._group(group_id)
        if group is None:
            return m.NOT_COORDINATOR
        if group.state == EMPTY:
            return m.UNKNOWN_MEMBER_ID
        refused = group.validate_member(member_id, instance_id)
        if refused is not None:
            return refused
        member = group.members[member_id]
        if generation != group.generation:
            return m.ILLEGAL_GENERATION
        member.heartbeat_deadline = self.ctx.now + member.session_timeout_ms
        return m.REBALANCE_IN_PROGRESS if group.state == PREPARING_REBALANCE else None

    def leave(self, src: str, generation: int, req: m.LeaveGroupRequest) -> None:
        group = self._group(req.group)
        if group is None:
            self.broker.reply(src, generation, m.LeaveGroupResponse(req.corr, m.NOT_COORDINATOR))
            return
        member = group.members.get(req.member_id)
        if member is None:
            self.broker.reply(src, generation, m.LeaveGroupResponse(req.corr, m.UNKNOWN_MEMBER_ID))
            return
        self._remove(group, member, "left the group")
        self._member_gone(group)
        self.broker.reply(src, generation, m.LeaveGroupResponse(req.corr, None))

    def _member_gone(self, group: ClassicGroup) -> None:
        if group.state in (STABLE, COMPLETING_REBALANCE):
            self._prepare_rebalance(group, "a member left")
        self._maybe_complete_join(group)

    def on_tick(self) -> None:
        """Session expiry (``onClassicGroupMemberHeartbeatExpiry``; a member waiting
        for its JoinGroup or SyncGroup answer is kept alive) and the end of a join phase
        that ran out of its rebalance timeout or initial delay."""
        self.consumer_groups.on_tick()
        now = self.ctx.now
        for group_id in sorted(self.groups):
            group = self._group(group_id)
            if group is None:
                continue
            for member_id, expires in sorted(group.pending.items()):
                if expires <= now:
                    del group.pending[member_id]
            expired = [mb for mb in group.members.values()
                       if mb.heartbeat_deadline <= now and mb.awaiting_join is None
                       and mb.awaiting_sync is None]
            for member in expired:
                self._remove(group, member, "session timeout")
            if expired:
                self._member_gone(group)
            self._expire_pending_sync(group)
            if group.state == PREPARING_REBALANCE:
                self._maybe_complete_join(group, expired=now >= group.join_deadline)

    def _expire_pending_sync(self, group: ClassicGroup) -> None:
        """``onExpirePendingSync`` (KAFKA-12890, 2.8.1/3.0.0): members that have not
        sent SyncGroup within the rebalance timeout after the join phase are removed and
        the group rebalances; before, such a member stayed until its session ran out."""
        if (not self.ctx.config.kafka.behaviours.pending_sync_timeout
                or group.state not in (COMPLETING_REBALANCE, STABLE)
                or not group.pending_sync or self.ctx.now < group.sync_deadline):
            return
        for member_id in sorted(group.pending_sync):
            self._remove(group, group.members[member_id],
                         "no SyncGroup within the rebalance timeout")
        self._prepare_rebalance(group, "pending SyncGroup expired")
        self._maybe_complete_join(group)

    # -- offsets -----------------------------------------------------------------------

    def _validate_commit(self, group_id: str, generation: int, member_id: str,
                         transactional: bool = False,
                         instance_id: str | None = None) -> str | None:
        """``ClassicGroup.validateOffsetCommit``.  A transactional commit (KIP-447) is
        checked against the member and generation like any other but never answered
        REBALANCE_IN_PROGRESS; one that names neither (the group-id-only
        ``sendOffsetsToTransaction``) is accepted in any state.  A KIP-848 group checks
        the member epoch instead (``ConsumerGroup.validateOffsetCommit``)."""
        consumer_group = self.consumer_groups.group(group_id)
        if consumer_group is not None:
            return self.consumer_groups.validate_commit(consumer_group, member_id, generation,
                                                        transactional)
        group = self._group(group_id)
        assert group is not None
        if generation < 0 and group.state == EMPTY:
            return None         # an admin client, or a consumer outside group management
        if generation >= 0 or member_id or instance_id is not None:
            refused = group.validate_member(member_id, instance_id)
            if refused is not None:
                return refused
            if generation != group.generation:
                return m.ILLEGAL_GENERATION
        elif not transactional and group.state != EMPTY:
            return m.UNKNOWN_MEMBER_ID
        if not transactional and group.state == COMPLETING_REBALANCE:
            return m.REBALANCE_IN_PROGRESS
        return None

    def commit(self, src: str, generation: int, req: m.OffsetCommitRequest) -> None:
        partition = self.leading_partition(req.group)
        if partition is None:
            self.broker.reply(src, generation, m.OffsetCommitResponse(req.corr, m.NOT_COORDINATOR))
            return
        refused = self._validate_commit(req.group, req.generation, req.member_id,
                                        instance_id=req.instance_id)
        if refused is not None:
            self.ctx.event(self.broker.name, "commit-refused", group=req.group,
                           member=req.member_id, generation=req.generation, error=refused,
                           offsets={str(p): o for p, o in req.offsets})
            self.broker.reply(src, generation, m.OffsetCommitResponse(req.corr, refused))
            return

        def complete(error: str | None, offset: int | None) -> None:
            if error is None:
                member = ({"member": req.member_id, "generation": req.generation}
                          if req.member_id else {})
                self.ctx.event(self.broker.name, "offsets-committed", group=req.group,
                               offsets={str(p): o for p, o in req.offsets}, **member)
            self.broker.reply(src, generation, m.OffsetCommitResponse(
                req.corr, self._offset_write_error(error) if error else None))

        records = [(commit_key(req.group, p), offset, src) for p, offset in req.offsets]
        partition.append_as_leader(records, "all",
                                   self.ctx.config.broker.offsets_commit_timeout_ms, complete)

    def txn_commit(self, src: str, generation: int, req: m.TxnOffsetCommitRequest) -> None:
        """``TxnOffsetCommit``: the offsets are appended as the producer's transactional
        batch (``GroupMetadataManager.storeOffsets`` with the producer id and epoch) and
        stay pending until the transaction's marker reaches this partition."""
        partition = self.leading_partition(req.group)
        if partition is None:
            self.broker.reply(src, generation, m.TxnOffsetCommitResponse(
                req.corr, m.NOT_COORDINATOR))
            return
        refused = self._validate_commit(req.group, req.generation, req.member_id,
                                        transactional=True, instance_id=req.instance_id)
        offsets = {str(p): o for p, o in req.offsets}
        if refused is not None:
            self.ctx.event(self.broker.name, "commit-refused", group=req.group,
                           member=req.member_id, generation=req.generation, error=refused,
                           offsets=offsets, transactional_id=req.transactional_id)
            self.broker.reply(src, generation, m.TxnOffsetCommitResponse(req.corr, refused))
            return

        def complete(error: str | None, offset: int | None) -> None:
            if error is None:
                self.ctx.event(self.broker.name, "txn-offsets-written", group=req.group,
                               offsets=offsets, producer_id=req.producer_id,
                               transactional_id=req.transactional_id)
            self.broker.reply(src, generation, m.TxnOffsetCommitResponse(
                req.corr, self._offset_write_error(error) if error else None))

        records = [(commit_key(req.group, p), offset, src) for p, offset in req.offsets]
        header = BatchHeader(req.producer_id, req.producer_epoch, NO_SEQUENCE,
                             req.transactional_id)
        partition.append_as_leader(records, "all",
                                   self.ctx.config.broker.offsets_commit_timeout_ms,
                                   complete, header, coordinator_origin=True)

    def fetch_offsets(self, src: str, generation: int, req: m.OffsetFetchRequest) -> None:
        """``OffsetFetch``: committed offsets as of the high watermark; with
        ``require_stable`` (KIP-447) as of everything written (``fetchOffsets`` at
        ``Long.MAX_VALUE``), partitions an open transaction holds an offset for
        answered UNSTABLE_OFFSET_COMMIT, and the answer held until what was written is
        committed (a write operation, ``GroupCoordinatorService.fetchOffsets``)."""
        partition = self.leading_partition(req.group)
        if partition is None:
            self.broker.reply(src, generation, m.OffsetFetchResponse(req.corr, m.NOT_COORDINATOR))
            return
        consumer_group = self.consumer_groups.group(req.group)
        refused = (self.consumer_groups.validate_fetch(consumer_group, req.member_id,
                                                       req.member_epoch)
                   if consumer_group is not None else None)
        if refused is not None:
            self.broker.reply(src, generation, m.OffsetFetchResponse(req.corr, refused))
            return
        log = partition.log
        upto = log.leo if req.require_stable else log.hw
        committed, pending = committed_offsets(log.records[:upto], req.group)
        asked = set(req.partitions) if req.partitions else set(committed) | pending
        unstable = tuple(sorted(pending & asked)) if req.require_stable else ()
        response = m.OffsetFetchResponse(
            req.corr, None, tuple(sorted((p, o) for p, o in committed.items()
                                         if p in asked and p not in unstable)), unstable)
        if not req.require_stable:
            self.broker.reply(src, generation, response)
            return

        def complete(error: str | None, offset: int | None) -> None:
            self.broker.reply(src, generation, response if error is None else
                              m.OffsetFetchResponse(req.corr, self._offset_write_error(error)))

        partition.when_committed(self.ctx.config.broker.offsets_commit_timeout_ms, complete)


def committed_offsets(records: Iterable[Record], group: str
                      ) -> tuple[dict[int, int], set[int]]:
    """Replay ``__consumer_offsets`` records of ``group`` in log order
    (``OffsetMetadataManager.replay``): a plain commit is stored at once; a
    transactional one waits in its producer's pending offsets until the producer's
    marker, where COMMIT stores it only over a commit written before it (KAFKA-5247:
    a plain commit written after it, before the marker, wins) and ABORT drops it.
    Returns the stored offsets and the partitions still pending."""
    prefix = f"{group}/"
    stored: dict[int, tuple[int, int]] = {}            # partition -> (offset, written at)
    pending: dict[int, dict[int, tuple[int, int]]] = {}  # producer id -> the same
    for record in records:
        if record.control is not None:
            offsets = pending.pop(record.producer_id, {})
            if record.control == COMMIT:
                for p, (value, at) in offsets.items():
                    if p not in stored or stored[p][1] < at:
                        stored[p] = (value, at)
            continue
        if not record.key.startswith(prefix):
            continue
        p = int(record.key[len(prefix):])
        if record.transactional:
            pending.setdefault(record.producer_id, {})[p] = (record.value, record.offset)
        else:
            stored[p] = (record.value, record.offset)
    return ({p: value for p, (value, _) in stored.items()},
            {p for offsets in pending.values() for p in offsets})


__all__ = ["GroupCoordinator", "committed_offsets", "coordinator_partition",
           "java_string_hash", "OFFSETS_TOPIC"]
