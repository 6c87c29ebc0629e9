"""KIP-848's coordinator rules, one function at a time.

``CurrentAssignmentBuilder`` (a member's next state toward its target), the epoch check
of ``GroupMetadataManager.throwIfConsumerGroupMemberEpochIsInvalid``, the offset
validation of ``ConsumerGroup.validateOffsetCommit`` / ``validateOffsetFetch`` and the
server-side assignors (``UniformHomogeneousAssignmentBuilder``, ``RangeAssignor``), each
as Kafka's group-coordinator module (3.8 to 4.x) has it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model import messages as m
from model.broker.consumer_group import (STABLE, UNRELEASED_PARTITIONS, UNREVOKED_PARTITIONS,
                                         ConsumerGroup, ConsumerMember, next_assignment)
from model.broker.consumer_group_coordinator import ConsumerGroupCoordinator, Refused
from model.broker.server_assignors import assign
from model.clients.assignors import java_hash_map_order
from model.versions import behaviours


def member(epoch: int, assigned: set[int], state: str = STABLE, pending: set[int] = set(),
           previous: int = -1) -> ConsumerMember:
    return ConsumerMember("m", epoch=epoch, previous_epoch=previous, state=state,
                          assigned=frozenset(assigned), pending_revocation=frozenset(pending))


def free(p: int) -> int:
    return -1


# -- CurrentAssignmentBuilder -------------------------------------------------------------


def test_a_member_revokes_first_and_keeps_its_epoch_meanwhile() -> None:
    """A target that takes partition 1 away and gives partition 3: the member keeps
    epoch 10 and is given nothing new until it reports that it no longer owns 1."""
    before = member(10, {1, 2})
    revoking = next_assignment(before, 11, frozenset({2, 3}), free, owned=(1, 2))
    assert revoking.state == UNREVOKED_PARTITIONS and revoking.epoch == 10
    assert revoking.assigned == {2} and revoking.pending_revocation == {1}
    assert next_assignment(revoking, 11, frozenset({2, 3}), free, owned=(1, 2)) is revoking
    assert next_assignment(revoking, 11, frozenset({2, 3}), free, owned=None) is revoking
    done = next_assignment(revoking, 11, frozenset({2, 3}), free, owned=(2,))
    assert done.state == STABLE and done.epoch == 11 and done.assigned == {2, 3}
    assert done.pending_revocation == frozenset() and done.previous_epoch == 10


def test_a_partition_another_member_holds_is_given_only_once_released() -> None:
    """Partition 3 still has an owner's epoch: the member moves to the target epoch
    without it (UNRELEASED_PARTITIONS) and takes it on a later heartbeat."""
    held = {3: 7}
    waiting = next_assignment(member(10, {2}), 11, frozenset({2, 3}),
                              lambda p: held.get(p, -1), owned=(2,))
    assert waiting.state == UNRELEASED_PARTITIONS and waiting.epoch == 11
    assert waiting.assigned == {2}
    released = next_assignment(waiting, 11, frozenset({2, 3}), free, owned=(2,))
    assert released.state == STABLE and released.assigned == {2, 3}


def test_a_member_that_already_dropped_the_revoked_partitions_skips_revoking() -> None:
    nothing_to_revoke = next_assignment(member(10, {1, 2}), 11, frozenset({2}), free, owned=(2,))
    assert nothing_to_revoke.state == STABLE and nothing_to_revoke.epoch == 11


def test_leaving_unrevoked_partitions_for_another_revocation_bumps_the_epoch_before_4_2(
        ) -> None:
    """KAFKA-19974 (CurrentAssignmentBuilder.build, fixed in 4.2.0): a member that
    finishes revoking while its target moved on again re-enters UNREVOKED_PARTITIONS at
    its epoch + 1 before the fix, at its own epoch since."""
    revoking = member(10, {2}, UNREVOKED_PARTITIONS, pending={1}, previous=10)
    before = next_assignment(revoking, 12, frozenset({3}), free, owned=(2,),
                             keep_epoch_leaving_unrevoked=False)
    assert before.state == UNREVOKED_PARTITIONS and before.epoch == 11
    assert before.pending_revocation == {2} and before.assigned == frozenset()
    since = next_assignment(revoking, 12, frozenset({3}), free, owned=(2,))
    assert since.state == UNREVOKED_PARTITIONS and since.epoch == 10
    assert behaviours("4.0").unrevoked_exit_keeps_epoch is False
    assert behaviours("4.4").unrevoked_exit_keeps_epoch is True


# -- the epoch check ----------------------------------------------------------------------


def test_the_epoch_check_accepts_only_the_current_or_a_lost_answer() -> None:
    """throwIfConsumerGroupMemberEpochIsInvalid: a higher epoch is fenced; a lower one
    only passes as the previous epoch with what it owns within its assignment (the
    member missed the answer that moved it on)."""
    current = member(5, {0, 1}, previous=4)
    ConsumerGroupCoordinator._check_epoch(current, 5, None)
    ConsumerGroupCoordinator._check_epoch(current, 4, (0,))
    for epoch, owned in ((6, ()), (4, None), (4, (0, 2)), (3, ())):
        with pytest.raises(Refused) as refused:
            ConsumerGroupCoordinator._check_epoch(current, epoch, owned)
        assert refused.value.error == m.FENCED_MEMBER_EPOCH


def test_a_fenced_member_rejoining_with_its_old_id_is_fenced_again_before_4_2() -> None:
    """KAFKA-19233 (throwIfConsumerGroupMemberEpochIsInvalid, fixed in 4.2.0): before
    the fix, epoch 0 with a known member id passes only for a member whose previous
    epoch is 0 (its first answer was lost); since, epoch 0 always passes."""
    with pytest.raises(Refused):
        ConsumerGroupCoordinator._check_epoch(member(5, {0}, previous=4), 0, (), False)
    ConsumerGroupCoordinator._check_epoch(member(1, {0}, previous=0), 0, (), False)
    ConsumerGroupCoordinator._check_epoch(member(5, {0}, previous=4), 0, (), True)
    assert behaviours("3.9").epoch_zero_rejoin is False
    assert behaviours("4.0").epoch_zero_rejoin is False
    assert behaviours("4.4").epoch_zero_rejoin is True


# -- offsets ------------------------------------------------------------------------------


def test_offset_commits_need_the_members_exact_epoch() -> None:
    """ConsumerGroup.validateOffsetCommit: no previous-epoch allowance; the stale epoch
    of a transactional commit is ILLEGAL_GENERATION; epoch -1 only while empty; the
    committed partitions are not checked."""
    group = ConsumerGroup("g", members={"m": member(5, {0})})
    validate = ConsumerGroupCoordinator.validate_commit
    assert validate(None, group, "m", 5, False) is None          # type: ignore[arg-type]
    assert validate(None, group, "m", 4, False) == m.STALE_MEMBER_EPOCH  # type: ignore
    assert validate(None, group, "m", 4, True) == m.ILLEGAL_GENERATION  # type: ignore
    assert validate(None, group, "x", 5, False) == m.UNKNOWN_MEMBER_ID  # type: ignore
    assert validate(None, group, "", -1, False) == m.UNKNOWN_MEMBER_ID  # type: ignore
    assert validate(None, ConsumerGroup("g"), "", -1, False) is None  # type: ignore
    fetch = ConsumerGroupCoordinator.validate_fetch
    assert fetch(None, group, "", -1) is None                    # type: ignore[arg-type]
    assert fetch(None, group, "m", 3) == m.STALE_MEMBER_EPOCH    # type: ignore[arg-type]


# -- server-side assignors ----------------------------------------------------------------


def test_java_hash_map_order_is_bucket_order_then_insertion_order() -> None:
    """"q" (113) and "a" (97) share bucket 1 of a 16-bucket table, "c" (99) is in 3."""
    assert java_hash_map_order(["c", "q", "a"]) == ["q", "a", "c"]
    assert java_hash_map_order(["c", "a", "q"]) == ["a", "q", "c"]


def test_uniform_gives_the_extra_partitions_in_member_order_and_sticks_to_the_target() -> None:
    members = ["c", "q", "a"]                   # iterated q, a, c
    first = assign("uniform", members, 7, {})
    assert first == {"q": {0, 1, 2}, "a": {3, 4}, "c": {5, 6}}
    # "a" leaves: the others keep what they had and share its partitions.
    second = assign("uniform", ["c", "q"], 7, first)
    assert second["q"] == {0, 1, 2, 3} and second["c"] == {4, 5, 6}
    # A newcomer takes from the members above their quota, nothing else moves.
    third = assign("uniform", ["c", "q", "a"], 7, second)
    assert third["q"] <= second["q"] and third["c"] <= second["c"]
    assert third["q"] == {0, 1, 2} and third["a"] == {3, 6}


def test_range_is_sorted_by_member_id_and_not_sticky() -> None:
    """RangeAssignor (KAFKA-16944, 3.9): consecutive ranges in member id order."""
    assert assign("range", ["b", "a"], 5, {"b": frozenset({0, 1, 2})}) == {
        "a": {0, 1, 2}, "b": {3, 4}}


@given(members=st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=1,
                        max_size=5, unique=True),
       partitions=st.integers(0, 12), data=st.data())
def test_uniform_assignments_are_complete_and_balanced(members: list[str], partitions: int,
                                                       data: st.DataObject) -> None:
    previous = {mb: frozenset(data.draw(st.sets(st.integers(0, 11), max_size=4)))
                for mb in members}
    # A previous target never gives one partition to two members.
    seen: set[int] = set()
    for mb in members:
        previous[mb] = frozenset(previous[mb] - seen)
        seen |= previous[mb]
    result = assign("uniform", members, partitions, previous)
    owned = sorted(p for parts in result.values() for p in parts)
    assert owned == list(range(partitions))
    sizes = [len(parts) for parts in result.values()]
    assert max(sizes) - min(sizes) <= 1
