"""One classic consumer group's state on its coordinator (``ClassicGroup``).

The states and their transitions are Kafka's (``ClassicGroupState``): ``Empty``,
``PreparingRebalance`` (the join phase: members rejoin), ``CompletingRebalance`` (the
leader computes the assignment and sends it in its SyncGroup), ``Stable``.  ``Dead``
(a deleted group) is not reachable here.  A generation ends the join phase:
``initNextGeneration`` bumps it and moves to CompletingRebalance, or to Empty when no
member is left.

This module holds the data and the transitions that need no broker; the request
handlers and timers are :class:`model.broker.group_coordinator.GroupCoordinator`'s.
"""

from __future__ import annotations

from typing import Any

import attrs

from model.clients.assignors import choose_strategy
from model.messages import FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"

# (src, connection generation, corr) of a request whose answer is held back.
Waiting = tuple[str, int, int]


@attrs.define(slots=True)
class Member:
    """``ClassicGroupMember``: what a member sent in its last JoinGroup, and where its
    held-back JoinGroup / SyncGroup answer goes."""

    member_id: str
    client: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: tuple[str, ...]
    owned: tuple[int, ...] = ()
    owned_generation: int = -1
    assignment: tuple[int, ...] = ()
    heartbeat_deadline: int = 0
    awaiting_join: Waiting | None = None
    awaiting_sync: Waiting | None = None
    is_new: bool = False
    instance_id: str | None = None      # a static member's group.instance.id (KIP-345)

    def to_value(self) -> tuple[Any, ...]:
        return (self.member_id, self.client, self.session_timeout_ms,
                self.rebalance_timeout_ms, self.protocols, self.assignment,
                self.instance_id)

    @classmethod
    def from_value(cls, value: Any) -> "Member":
        member_id, client, session, rebalance, protocols, assignment, instance_id = value
        return cls(member_id, client, session, rebalance, tuple(protocols),
                   assignment=tuple(assignment), instance_id=instance_id)


@attrs.define(slots=True)
class ClassicGroup:
    group_id: str
    state: str = EMPTY
    generation: int = 0
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = attrs.field(factory=dict)
    # Member ids handed out with MEMBER_ID_REQUIRED, not yet joined (KIP-394):
    # member id -> the time it expires if the member does not join with it.
    pending: dict[str, int] = attrs.field(factory=dict)
    # The join phase ends at this time at the latest (the rebalance timeout), or for an
    # empty group's first rebalance not before ``initial_delay_until``.
    join_deadline: int = 0
    initial_delay_until: int | None = None
    initial_delay_cap: int = 0
    # Members of this generation whose SyncGroup has not arrived (DelayedSync), and
    # when they are removed for it.
    pending_sync: set[str] = attrs.field(factory=set)
    sync_deadline: int = 0

    def all_joined(self) -> bool:
        """``hasAllMembersJoined``: every member has rejoined and no member id handed
        out by MEMBER_ID_REQUIRED is still to come."""
        return not self.pending and all(m.awaiting_join is not None
                                        for m in self.members.values())

    def static_member(self, instance_id: str) -> str | None:
        """``staticMemberId``: the member id a group.instance.id is mapped to."""
        return next((m.member_id for m in self.members.values()
                     if m.instance_id == instance_id), None)

    def validate_member(self, member_id: str, instance_id: str | None) -> str | None:
        """``validateMember``: a static member's instance must map to the member id it
        names (another one: a fenced, replaced incarnation, FENCED_INSTANCE_ID); a
        dynamic member must be known (UNKNOWN_MEMBER_ID)."""
        if instance_id is not None:
            mapped = self.static_member(instance_id)
            if mapped is None:
                return UNKNOWN_MEMBER_ID
            return None if mapped == member_id else FENCED_INSTANCE_ID
        return None if member_id in self.members else UNKNOWN_MEMBER_ID

    def replace_static_member(self, old_id: str, new_id: str) -> Member:
        """``replaceStaticMember``: the instance keeps its place, assignment and (if it
        led) the leadership under a new member id."""
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        if self.leader == old_id:
            self.leader = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        return member

    def rebalance_timeout(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def select_protocol(self) -> str:
        """``ClassicGroup.selectProtocol``: a vote among the assignors every member
        supports (:func:`model.clients.assignors.choose_strategy`)."""
        return choose_strategy([m.protocols for m in self.members.values()])

    def to_value(self) -> tuple[Any, ...]:
        """The ``GroupMetadataValue`` written to ``__consumer_offsets`` when a generation's
        assignment is stored (or the group becomes empty)."""
        return ("group", self.generation, self.protocol, self.leader,
                tuple(m.to_value() for m in self.members.values()))

    @classmethod
    def from_value(cls, group_id: str, value: Any) -> "ClassicGroup":
        _, generation, protocol, leader, members = value
        loaded = [Member.from_value(v) for v in members]
        return cls(group_id, STABLE if loaded else EMPTY, generation, protocol, leader,
                   {m.member_id: m for m in loaded})


def group_key(group_id: str) -> str:
    """The record key of a group's metadata (Kafka's ``GroupMetadataKey``)."""
    return f"group:{group_id}"


def is_group_value(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 5 and value[0] == "group"
