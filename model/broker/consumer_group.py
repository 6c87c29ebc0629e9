"""A KIP-848 consumer group (``group.protocol=consumer``) as its coordinator holds it.

The group coordinator keeps, per group (``ConsumerGroup`` in Kafka's group-coordinator
module):

* the **group epoch**, bumped whenever the membership or a subscription changes, and the
  **target assignment** computed by a server-side assignor for that epoch (its
  **assignment epoch**);
* per member (``ConsumerGroupMember``): its **member epoch** and previous epoch, its
  reconciliation state, the partitions it is assigned and those it must still revoke.

A member converges on its target one heartbeat at a time, as
``CurrentAssignmentBuilder`` (3.8+) computes it (:func:`next_assignment`): it first
revokes what the target took away (UNREVOKED_PARTITIONS, keeping its epoch), then takes
the target epoch and whatever the target gives it that no other member still holds
(UNRELEASED_PARTITIONS while something is held back).  A partition is held while any
member has it assigned or pending revocation (the group's partition epochs), so two
members never own one partition at once: the KIP-848 specification's
``NoDoubleClientAssignment``.

kafkacheck writes the whole group as one record (``consumer-group``) where Kafka writes
one record per changed member, target and epoch; a coordinator loading the partition
replays to the same state either way.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

STABLE = "STABLE"
UNREVOKED_PARTITIONS = "UNREVOKED_PARTITIONS"
UNRELEASED_PARTITIONS = "UNRELEASED_PARTITIONS"

# ConsumerGroupHeartbeatRequest: member epoch 0 joins, -1 leaves (-2, a static member's
# temporary leave, is not modelled: static membership is classic-only in kafkacheck).
JOIN_EPOCH = 0
LEAVE_EPOCH = -1
NO_PARTITION_EPOCH = -1


@attrs.define
class ConsumerMember:
    member_id: str
    client: str = ""
    epoch: int = 0
    previous_epoch: int = -1
    state: str = STABLE
    assigned: frozenset[int] = frozenset()
    pending_revocation: frozenset[int] = frozenset()
    subscribed: bool = False                 # subscribed to the workload's topic
    rebalance_timeout_ms: int = 0
    # Timers (in memory only: a new coordinator re-arms them on load).
    session_deadline: int = 0
    rebalance_deadline: int | None = None    # armed in UNREVOKED_PARTITIONS
    rebalance_epoch: int = 0                 # the member epoch it was armed at

    def reconciled_to(self, target_epoch: int) -> bool:
        """``ConsumerGroupMember.isReconciledTo``."""
        return self.state == STABLE and self.epoch == target_epoch

    def assignment_state(self) -> tuple[Any, ...]:
        return (self.epoch, self.previous_epoch, self.state, self.assigned,
                self.pending_revocation)

    def to_value(self) -> tuple[Any, ...]:
        return (self.member_id, self.client, self.epoch, self.previous_epoch, self.state,
                tuple(sorted(self.assigned)), tuple(sorted(self.pending_revocation)),
                self.subscribed, self.rebalance_timeout_ms)

    @classmethod
    def from_value(cls, value: tuple[Any, ...]) -> "ConsumerMember":
        (member_id, client, epoch, previous, state, assigned, pending, subscribed,
         rebalance_timeout_ms) = value
        return cls(member_id, client, epoch, previous, state, frozenset(assigned),
                   frozenset(pending), subscribed, rebalance_timeout_ms)


@attrs.define
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = attrs.Factory(dict)   # in join order
    target: dict[str, frozenset[int]] = attrs.Factory(dict)

    def partition_epoch(self, partition: int) -> int:
        """``ConsumerGroup.currentPartitionEpoch``: the epoch of the member that has the
        partition assigned or pending revocation; -1 when it is free."""
        for member in self.members.values():
            if partition in member.assigned or partition in member.pending_revocation:
                return member.epoch
        return NO_PARTITION_EPOCH

    def state(self) -> str:
        """``ConsumerGroup.maybeUpdateGroupState`` (for events and descriptions)."""
        if not self.members:
            return "EMPTY"
        if self.group_epoch > self.assignment_epoch:
            return "ASSIGNING"
        if any(not m.reconciled_to(self.assignment_epoch) for m in self.members.values()):
            return "RECONCILING"
        return "STABLE"

    def to_value(self) -> tuple[Any, ...]:
        return ("consumer-group", self.group_epoch, self.assignment_epoch,
                tuple(m.to_value() for m in self.members.values()),
                tuple((mid, tuple(sorted(parts))) for mid, parts in self.target.items()))

    @classmethod
    def from_value(cls, group_id: str, value: tuple[Any, ...]) -> "ConsumerGroup":
        _, group_epoch, assignment_epoch, members, target = value
        loaded = [ConsumerMember.from_value(v) for v in members]
        return cls(group_id, group_epoch, assignment_epoch,
                   {m.member_id: m for m in loaded},
                   {mid: frozenset(parts) for mid, parts in target})


def is_consumer_group_value(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 5 and value[0] == "consumer-group"


def owns_revoked(pending: frozenset[int], owned: tuple[int, ...] | None) -> bool:
    """``CurrentAssignmentBuilder.ownsRevokedPartitions``: a member that did not report
    what it owns (``owned`` null) is assumed to still own everything it must revoke."""
    if owned is None:
        return True
    return bool(pending & set(owned))


def next_assignment(member: ConsumerMember, target_epoch: int, target: frozenset[int],
                    partition_epoch: Callable[[int], int],
                    owned: tuple[int, ...] | None,
                    keep_epoch_leaving_unrevoked: bool = True) -> ConsumerMember:
    """``CurrentAssignmentBuilder.build`` (3.8+): the member's next state toward the
    target, as a new member object (timers copied, not re-armed).
    ``keep_epoch_leaving_unrevoked``: KAFKA-19974 (4.2.0); before it, a member leaving
    UNREVOKED_PARTITIONS for another revocation moved to epoch + 1."""
    if member.state == STABLE:
        if member.epoch == target_epoch:
            return member
        return _compute(member, member.epoch, target_epoch, target, partition_epoch, owned)
    if member.state == UNREVOKED_PARTITIONS:
        if owns_revoked(member.pending_revocation, owned):
            return member         # new targets wait until the revocation is reported
        revoking_epoch = member.epoch if keep_epoch_leaving_unrevoked else member.epoch + 1
        return _compute(member, revoking_epoch, target_epoch, target, partition_epoch, owned)
    return _compute(member, member.epoch, target_epoch, target, partition_epoch, owned)


def _compute(member: ConsumerMember, revoking_epoch: int, target_epoch: int,
             target: frozenset[int], partition_epoch: Callable[[int], int],
             owned: tuple[int, ...] | None) -> ConsumerMember:
    """``CurrentAssignmentBuilder.computeNextAssignment``."""
    kept = member.assigned & target
    revoke = member.assigned - kept
    wanted = target - kept
    free = frozenset(p for p in wanted if partition_epoch(p) == NO_PARTITION_EPOCH)
    unreleased = free != wanted
    if revoke and owns_revoked(revoke, owned):
        return _evolve(member, revoking_epoch, UNREVOKED_PARTITIONS, kept, revoke)
    if free:
        state = UNRELEASED_PARTITIONS if unreleased else STABLE
        return _evolve(member, target_epoch, state, kept | free, frozenset())
    if unreleased:
        return _evolve(member, target_epoch, UNRELEASED_PARTITIONS, kept, frozenset())
    return _evolve(member, target_epoch, STABLE, kept, frozenset())


def _evolve(member: ConsumerMember, epoch: int, state: str, assigned: frozenset[int],
            pending: frozenset[int]) -> ConsumerMember:
    return attrs.evolve(member, epoch=epoch, previous_epoch=member.epoch, state=state,
                        assigned=assigned, pending_revocation=pending)
