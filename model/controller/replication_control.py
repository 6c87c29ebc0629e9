"""Elections and ISR changes, as KRaft's ``ReplicationControlManager`` and
``PartitionChangeBuilder`` make them (Kafka 3.6+/4.0 without KIP-966's ELR).

Every function here is pure: it takes a partition's current state and returns the record
of its next state (or None when nothing changes), so the same rules serve fencing,
unfencing and ``AlterPartition``.

The rules, from ``PartitionChangeBuilder.build`` / ``electAnyLeader``:

* the current leader stays if it is still in the target ISR and acceptable;
* otherwise the first replica, in assignment order, that is in the target ISR and
  acceptable (registered, unfenced, not the broker being removed) is elected cleanly;
* otherwise, with ``unclean.leader.election.enable``, the first acceptable replica is
  elected uncleanly and the ISR becomes just that replica (data below the old HW may be
  lost);
* otherwise the partition has no leader.
* An ISR that would become empty is left as it was (before KIP-966 the ISR never empties:
  the last member stays, leaderless, until it returns).
* The leader epoch is bumped on every leader change (including to no leader); the
  partition epoch on every change.  Since KAFKA-15021 (metadata version 3.6) an ISR shrink
  alone no longer bumps the leader epoch.
"""

from __future__ import annotations

from typing import Callable

import attrs

from model.metadata import PartitionRecord, PartitionState

Acceptable = Callable[[str], bool]


def change_partition(state: PartitionState, *, target_isr: tuple[str, ...],
                     acceptable: Acceptable, unclean_allowed: bool) -> PartitionRecord | None:
    """The record moving ``state`` towards ``target_isr``, electing as Kafka would."""

    def valid(replica: str | None) -> bool:
        return replica is not None and replica in target_isr and acceptable(replica)

    leader, unclean = state.leader, False
    isr = target_isr if target_isr else state.isr
    if not valid(state.leader):
        leader = next((r for r in state.replicas if valid(r)), None)
        if leader is None and unclean_allowed:
            leader = next((r for r in state.replicas if acceptable(r)), None)
            if leader is not None:
                unclean, isr = True, (leader,)
    if leader == state.leader and isr == state.isr:
        return None
    leader_epoch = state.leader_epoch + (1 if leader != state.leader else 0)
    new = attrs.evolve(state, leader=leader, isr=isr, leader_epoch=leader_epoch,
                       partition_epoch=state.partition_epoch + 1)
    return PartitionRecord(new, unclean)


def remove_from_isr(state: PartitionState, broker: str, *, active: Acceptable,
                    unclean_allowed: bool) -> PartitionRecord | None:
    """``handleBrokerFenced``: drop ``broker`` from the ISR and from leadership."""
    return change_partition(
        state, target_isr=tuple(r for r in state.isr if r != broker),
        acceptable=lambda r: r != broker and active(r), unclean_allowed=unclean_allowed)


def elect_for_unfenced(state: PartitionState, broker: str, *, active: Acceptable,
                       unclean_allowed: bool) -> PartitionRecord | None:
    """``handleBrokerUnfenced``: a leaderless partition may now elect ``broker`` (its
    registration still reads fenced while these records are generated)."""
    if state.leader is not None:
        return None
    return change_partition(
        state, target_isr=state.isr, acceptable=lambda r: r == broker or active(r),
        unclean_allowed=unclean_allowed)
