"""Kafka's client-side partition assignors, checked against Kafka's own examples and tests.

Expected values come from the assignors' javadoc and from Kafka's unit tests
(clients/src/test/java/org/apache/kafka/clients/consumer/*AssignorTest.java); the few that
depend on details the javadoc predates were checked against kafka-clients 4.4.0.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.clients.assignors import (
    REBALANCE_PROTOCOLS,
    Subscription,
    assign,
    choose_strategy,
)


def parts(*names: str) -> list[tuple[str, int]]:
    """Javadoc notation: ``parts("t0p0", "t1p2")`` -> [("t0", 0), ("t1", 2)], sorted."""
    result = []
    for name in names:
        topic, _, partition = name.rpartition("p")
        result.append((topic, int(partition)))
    return sorted(result)


T01 = ("t0", "t1")
T0123 = ("t0", "t1", "t2", "t3")


# --- RangeAssignor ---------------------------------------------------------------------


def test_range_javadoc_example():
    """RangeAssignor javadoc: C0 and C1 on t0, t1 (3 partitions each); C0 gets both extras."""
    result = assign("range", {"t0": 3, "t1": 3}, {"C0": Subscription(T01), "C1": Subscription(T01)})
    assert result == {
        "C0": parts("t0p0", "t0p1", "t1p0", "t1p1"),
        "C1": parts("t0p2", "t1p2"),
    }


def test_range_static_members_keep_their_ranges_when_member_ids_change():
    """RangeAssignor javadoc and RangeAssignorTest.
    testStaticMemberRangeAssignmentPersistentAfterMemberIdChanges:
    with group.instance.id the order follows instance ids (I0 before I1), not the new member ids."""
    counts = {"t0": 3, "t1": 3}
    static = assign(
        "range",
        counts,
        {
            "C3": Subscription(T01, group_instance_id="I0"),
            "C2": Subscription(T01, group_instance_id="I1"),
        },
    )
    assert static == {"C3": parts("t0p0", "t0p1", "t1p0", "t1p1"), "C2": parts("t0p2", "t1p2")}
    dynamic = assign("range", counts, {"C3": Subscription(T01), "C2": Subscription(T01)})
    assert dynamic == {"C2": parts("t0p0", "t0p1", "t1p0", "t1p1"), "C3": parts("t0p2", "t1p2")}


def test_member_order_puts_static_members_before_dynamic_ones():
    """AbstractPartitionAssignor.MemberInfo.compareTo: a static member sorts before a dynamic one
    whatever their member ids ("Z" with an instance id comes before dynamic "A")."""
    result = assign(
        "range",
        {"t0": 3},
        {
            "A": Subscription(("t0",)),
            "Z": Subscription(("t0",), group_instance_id="I9"),
        },
    )
    assert result == {"Z": parts("t0p0", "t0p1"), "A": parts("t0p2")}


def test_topics_without_partitions_or_subscribers_are_left_out():
    """AbstractPartitionAssignor.assign(Cluster, ...): only subscribed topics with metadata are
    assigned; a subscribed topic missing from the metadata is skipped, an unsubscribed one ignored.
    """
    result = assign(
        "range",
        {"t0": 2, "other": 5},
        {
            "C0": Subscription(("t0", "missing")),
            "C1": Subscription(("t0",)),
        },
    )
    assert result == {"C0": parts("t0p0"), "C1": parts("t0p1")}


# --- RoundRobinAssignor ----------------------------------------------------------------


def test_roundrobin_javadoc_example_identical_subscriptions():
    """RoundRobinAssignor javadoc: C0, C1 on t0, t1 (3 partitions each) alternate partitions."""
    result = assign(
        "roundrobin", {"t0": 3, "t1": 3}, {"C0": Subscription(T01), "C1": Subscription(T01)}
    )
    assert result == {
        "C0": parts("t0p0", "t0p2", "t1p1"),
        "C1": parts("t0p1", "t1p0", "t1p2"),
    }


def test_roundrobin_javadoc_example_unequal_subscriptions():
    """RoundRobinAssignor javadoc: members not subscribed to a topic are skipped, which unbalances
    (C0 on t0; C1 on t0, t1; C2 on t0, t1, t2; 1, 2 and 3 partitions)."""
    result = assign(
        "roundrobin",
        {"t0": 1, "t1": 2, "t2": 3},
        {
            "C0": Subscription(("t0",)),
            "C1": Subscription(("t0", "t1")),
            "C2": Subscription(("t0", "t1", "t2")),
        },
    )
    assert result == {
        "C0": parts("t0p0"),
        "C1": parts("t1p0"),
        "C2": parts("t1p1", "t2p0", "t2p1", "t2p2"),
    }


def test_roundrobin_javadoc_static_members():
    """RoundRobinAssignor javadoc: after a rolling bounce (C0->C5, C1->C3, C2->C4) instance ids
    I0, I1, I2 keep [t0p0, t1p0], [t0p1, t1p1], [t0p2, t1p2]."""
    result = assign(
        "roundrobin",
        {"t0": 3, "t1": 3},
        {
            "C5": Subscription(T01, group_instance_id="I0"),
            "C3": Subscription(T01, group_instance_id="I1"),
            "C4": Subscription(T01, group_instance_id="I2"),
        },
    )
    assert result == {
        "C5": parts("t0p0", "t1p0"),
        "C3": parts("t0p1", "t1p1"),
        "C4": parts("t0p2", "t1p2"),
    }


# --- StickyAssignor --------------------------------------------------------------------


def test_sticky_javadoc_example_1_fresh_assignment_equals_roundrobin():
    """StickyAssignor javadoc, example 1: C0, C1, C2 on t0..t3 (2 partitions each); sticky and
    round robin both give C0 [t0p0, t1p1, t3p0], C1 [t0p1, t2p0, t3p1], C2 [t1p0, t2p1]."""
    counts = {t: 2 for t in T0123}
    subs = {c: Subscription(T0123) for c in ("C0", "C1", "C2")}
    expected = {
        "C0": parts("t0p0", "t1p1", "t3p0"),
        "C1": parts("t0p1", "t2p0", "t3p1"),
        "C2": parts("t1p0", "t2p1"),
    }
    assert assign("sticky", counts, subs) == expected
    assert assign("roundrobin", counts, subs) == expected


def test_sticky_javadoc_example_1_keeps_c0_and_c2_partitions_when_c1_leaves():
    """StickyAssignor javadoc, example 1 after C1 leaves: C0 and C2 keep everything they had and
    split C1's three partitions 4/4, where round robin reshuffles.  The javadoc gives C0 t2p0 and
    C2 t0p1; today's ConstrainedAssignmentBuilder deals the freed t0p1, t2p0, t3p1 round robin
    to C0, C2, C2 (as kafka-clients 4.4.0 does); both keep all previous ownership."""
    counts = {t: 2 for t in T0123}
    c0_before, c2_before = parts("t0p0", "t1p1", "t3p0"), parts("t1p0", "t2p1")
    result = assign(
        "sticky",
        counts,
        {
            "C0": Subscription(T0123, c0_before, generation=1),
            "C2": Subscription(T0123, c2_before, generation=1),
        },
    )
    assert set(c0_before) <= set(result["C0"]) and set(c2_before) <= set(result["C2"])
    assert result == {
        "C0": parts("t0p0", "t0p1", "t1p1", "t3p0"),
        "C2": parts("t1p0", "t2p0", "t2p1", "t3p1"),
    }
    round_robin = assign(
        "roundrobin", counts, {"C0": Subscription(T0123), "C2": Subscription(T0123)}
    )
    assert round_robin == {
        "C0": parts("t0p0", "t1p0", "t2p0", "t3p0"),
        "C2": parts("t0p1", "t1p1", "t2p1", "t3p1"),
    }


def test_sticky_javadoc_example_2_unequal_subscriptions():
    """StickyAssignor javadoc, example 2 (GeneralAssignmentBuilder): balanced where round robin is
    not, and when C0 leaves C1 takes t0p0 while keeping t1p0, t1p1 (5 assignments kept)."""
    counts = {"t0": 1, "t1": 2, "t2": 3}
    topics = {"C0": ("t0",), "C1": ("t0", "t1"), "C2": ("t0", "t1", "t2")}
    fresh = assign("sticky", counts, {c: Subscription(t) for c, t in topics.items()})
    assert fresh == {
        "C0": parts("t0p0"),
        "C1": parts("t1p0", "t1p1"),
        "C2": parts("t2p0", "t2p1", "t2p2"),
    }
    after = assign(
        "sticky",
        counts,
        {
            "C1": Subscription(topics["C1"], fresh["C1"], generation=1),
            "C2": Subscription(topics["C2"], fresh["C2"], generation=1),
        },
    )
    assert after == {"C1": parts("t0p0", "t1p0", "t1p1"), "C2": parts("t2p0", "t2p1", "t2p2")}


@pytest.mark.parametrize(
    "partitions, consumer1", [(3, [("topic", 1)]), (4, [("topic", 1), ("topic", 3)])]
)
def test_sticky_same_generation_double_claim_is_kept_by_neither(partitions, consumer1):
    """StickyAssignorTest.testAllConsumersHaveOwnedPartitionInvalidatedWhenClaimedBy-
    MultipleConsumersInSameGeneration{Equal,Unequal}PartitionsPerConsumer (KAFKA-12984,
    KAFKA-14639): consumer1 and consumer2 both claim topic-0 in generation 1, so neither keeps
    it; it goes to consumer3."""
    result = assign(
        "sticky",
        {"topic": partitions},
        {
            "consumer1": Subscription(("topic",), [("topic", 0), ("topic", 1)], generation=1),
            "consumer2": Subscription(("topic",), [("topic", 0), ("topic", 2)], generation=1),
            "consumer3": Subscription(("topic",), [], generation=1),
        },
    )
    assert result == {
        "consumer1": consumer1,
        "consumer2": [("topic", 2)],
        "consumer3": [("topic", 0)],
    }


@pytest.mark.parametrize("strategy", ["sticky", "cooperative-sticky"])
@pytest.mark.parametrize("winner, loser", [("consumer1", "consumer2"), ("consumer2", "consumer1")])
def test_sticky_conflicting_claims_go_to_the_higher_generation(strategy, winner, loser):
    """AbstractStickyAssignorTest.testOwnedPartitionsAreInvalidatedForConsumerWithStaleGeneration:
    both claim the same three partitions; the generation-10 member keeps them, whichever member
    it is, and the generation-9 member gets the other three (nothing is withheld)."""
    claimed = [("topic", 0), ("topic", 2), ("topic2", 1)]
    topics = ("topic", "topic2")
    result = assign(
        strategy,
        {"topic": 3, "topic2": 3},
        {
            winner: Subscription(topics, claimed, generation=10),
            loser: Subscription(topics, claimed, generation=9),
        },
    )
    assert result == {
        winner: sorted(claimed),
        loser: [("topic", 1), ("topic2", 0), ("topic2", 2)],
    }


def test_sticky_double_claim_voids_a_later_claim_met_after_it():
    """AbstractStickyAssignor.allSubscriptionsEqual and
    ConstrainedAssignmentBuilder.assignOwnedPartitions:
    Java meets "a", "b" (generation 1, both claiming t-0) before "c" (generation 2, also claiming
    it); t-0 is then marked as doubly claimed, so even "c" does not keep it and cooperative-sticky
    withholds it.  Had Java met "c"'s claim first, the lower generations would not count at all
    and the owner keeps it (kafka-clients 4.4.0 agrees on both)."""
    counts = {"t": 3}
    later_claim_last = {
        "a": Subscription(("t",), [("t", 0)], generation=1),
        "b": Subscription(("t",), [("t", 0)], generation=1),
        "c": Subscription(("t",), [("t", 0)], generation=2),
    }
    assert assign("sticky", counts, later_claim_last) == {
        "a": [("t", 0)],
        "b": [("t", 1)],
        "c": [("t", 2)],
    }
    assert assign("cooperative-sticky", counts, later_claim_last) == {
        "a": [],
        "b": [("t", 1)],
        "c": [("t", 2)],
    }
    later_claim_first = {
        "a": Subscription(("t",), [("t", 0)], generation=2),
        "b": Subscription(("t",), [("t", 0)], generation=1),
        "c": Subscription(("t",), [("t", 0)], generation=1),
    }
    assert assign("cooperative-sticky", counts, later_claim_first) == {
        "a": [("t", 0)],
        "b": [("t", 1)],
        "c": [("t", 2)],
    }


def test_sticky_general_builder_moves_a_partition_back_to_its_previous_owner():
    """AbstractStickyAssignor.GeneralAssignmentBuilder.performReassignments: C3 (generation 2) wins
    t-0 from C2 (generation 1), then must shed a partition; t-0 goes back to its previous owner C2
    rather than to the least loaded member C1 (kafka-clients 4.4.0 agrees)."""
    result = assign(
        "sticky",
        {"t": 1, "u": 1},
        {
            "C1": Subscription(("t",), [], generation=2),
            "C3": Subscription(("t", "u"), [("t", 0)], generation=2),
            "C2": Subscription(("t",), [("t", 0)], generation=1),
        },
    )
    assert result == {"C1": [], "C2": [("t", 0)], "C3": [("u", 0)]}


def test_sticky_member_over_quota_keeps_lowest_partition_numbers_across_topics():
    """AbstractStickyAssignor.ConstrainedAssignmentBuilder.assignOwnedPartitions sorts a member's
    owned partitions by partition number, then topic: C0, owning all of t0 and t1, keeps
    partition 0 of each when C1 joins, not t0p0 and t0p1."""
    result = assign(
        "sticky",
        {"t0": 2, "t1": 2},
        {
            "C0": Subscription(T01, parts("t0p0", "t0p1", "t1p0", "t1p1"), generation=1),
            "C1": Subscription(T01),
        },
    )
    assert result == {"C0": parts("t0p0", "t1p0"), "C1": parts("t0p1", "t1p1")}


def test_sticky_ceiling_quota_goes_by_java_hashmap_order():
    """AbstractStickyAssignor.ConstrainedAssignmentBuilder.assignOwnedPartitions walks the leader's
    HashMap of members: of "Z" and "b", who each owned 3 of 7 partitions, only one may keep 3 when
    "a" joins.  Java visits "b" (bucket 2) before "Z" (bucket 10), so "b" keeps all three and "Z"
    gives up t2 (kafka-clients 4.4.0 agrees); the dict order passed in does not matter."""
    counts = {"t": 7}
    members = {
        "Z": Subscription(("t",), [("t", 0), ("t", 1), ("t", 2)], generation=1),
        "b": Subscription(("t",), [("t", 3), ("t", 4), ("t", 5)], generation=1),
        "a": Subscription(("t",)),
    }
    expected = {
        "Z": [("t", 0), ("t", 1)],
        "b": [("t", 3), ("t", 4), ("t", 5)],
        "a": [("t", 2), ("t", 6)],
    }
    assert assign("sticky", counts, members) == expected
    assert assign("sticky", counts, dict(reversed(members.items()))) == expected


# --- CooperativeStickyAssignor ---------------------------------------------------------


@pytest.mark.parametrize(
    "partitions, consumer1", [(3, [("topic", 1)]), (4, [("topic", 1), ("topic", 3)])]
)
def test_cooperative_sticky_withholds_a_doubly_claimed_partition(partitions, consumer1):
    """CooperativeStickyAssignorTest.testAllConsumersHaveOwnedPartitionInvalidatedWhenClaimedBy-
    MultipleConsumersInSameGeneration*: topic-0 counts as owned by both claimants, so consumer3
    cannot get it until both have revoked it."""
    result = assign(
        "cooperative-sticky",
        {"topic": partitions},
        {
            "consumer1": Subscription(("topic",), [("topic", 0), ("topic", 1)], generation=1),
            "consumer2": Subscription(("topic",), [("topic", 0), ("topic", 2)], generation=1),
            "consumer3": Subscription(("topic",), [], generation=1),
        },
    )
    assert result == {"consumer1": consumer1, "consumer2": [("topic", 2)], "consumer3": []}


def test_cooperative_sticky_withholds_moving_partitions_for_one_round():
    """CooperativeStickyAssignor.adjustAssignment (KIP-429): when C1 joins, sticky moves t-2, t-3
    from C0 to C1 at once; cooperative-sticky revokes them from C0 but gives them to C1 only in the
    follow-up rebalance, after C0 has reported them gone."""
    counts = {"t": 4}
    joined = {
        "C0": Subscription(("t",), [("t", p) for p in range(4)], generation=1),
        "C1": Subscription(("t",)),
    }
    assert assign("sticky", counts, joined) == {
        "C0": [("t", 0), ("t", 1)],
        "C1": [("t", 2), ("t", 3)],
    }
    first = assign("cooperative-sticky", counts, joined)
    assert first == {"C0": [("t", 0), ("t", 1)], "C1": []}
    second = assign(
        "cooperative-sticky",
        counts,
        {
            "C0": Subscription(("t",), first["C0"], generation=2),
            "C1": Subscription(("t",), first["C1"], generation=2),
        },
    )
    assert second == {"C0": [("t", 0), ("t", 1)], "C1": [("t", 2), ("t", 3)]}


def test_cooperative_sticky_withholds_moving_partitions_with_unequal_subscriptions():
    """CooperativeStickyAssignor.computePartitionsTransferringOwnership (the general builder's
    path): C1, subscribed to t1 only, is due C0's two t1 partitions, but gets them next round."""
    counts = {"t0": 2, "t1": 2}
    subs = {
        "C0": Subscription(T01, parts("t0p0", "t0p1", "t1p0", "t1p1"), generation=1),
        "C1": Subscription(("t1",)),
    }
    assert assign("sticky", counts, subs) == {
        "C0": parts("t0p0", "t0p1"),
        "C1": parts("t1p0", "t1p1"),
    }
    assert assign("cooperative-sticky", counts, subs) == {"C0": parts("t0p0", "t0p1"), "C1": []}


member_ids = st.sampled_from(["C0", "C1", "C2", "C3", "Aa", "BB", "consumer1", "z"])


@given(
    partitions=st.integers(min_value=0, max_value=9),
    owners=st.dictionaries(
        member_ids, st.sets(st.integers(min_value=0, max_value=9)), min_size=1, max_size=5
    ),
    generations=st.lists(st.integers(min_value=-1, max_value=3), min_size=5, max_size=5),
)
def test_sticky_assignments_are_valid_balanced_and_cooperative_never_double_assigns(
    partitions, owners, generations
):
    """AbstractStickyAssignorTest.verifyValidityAndBalance and CooperativeStickyAssignorTest.
    verifyCooperativeValidity, for identical subscriptions: sticky assigns each partition exactly
    once with counts within one; cooperative-sticky never hands a partition to a member while
    another member still reports owning it and is losing it."""
    subs = {
        member: Subscription(
            ("t",), [("t", p) for p in sorted(owned) if p < partitions], generations[i]
        )
        for i, (member, owned) in enumerate(owners.items())
    }
    sticky = assign("sticky", {"t": partitions}, subs)
    assert sorted(tp for tps in sticky.values() for tp in tps) == [
        ("t", p) for p in range(partitions)
    ]
    sizes = [len(tps) for tps in sticky.values()]
    assert max(sizes) - min(sizes) <= 1

    cooperative = assign("cooperative-sticky", {"t": partitions}, subs)
    added, revoked = set(), set()
    for member, sub in subs.items():
        added |= set(cooperative[member]) - set(sub.owned_partitions)
        revoked |= set(sub.owned_partitions) - set(cooperative[member])
    assert not added & revoked


# --- protocol selection and the API ----------------------------------------------------


def test_choose_strategy_uses_a_protocol_every_member_supports():
    """ClassicGroup.selectProtocol: only protocols all members support are candidates, even if
    one is every member's second choice."""
    assert (
        choose_strategy(
            [
                ("range", "cooperative-sticky"),
                ("cooperative-sticky", "range"),
                ("cooperative-sticky",),
            ]
        )
        == "cooperative-sticky"
    )


def test_choose_strategy_takes_the_majority_vote():
    """ClassicGroup.selectProtocol: each member votes for its first candidate; most votes win."""
    assert (
        choose_strategy(
            [
                ("roundrobin", "range"),
                ("range", "roundrobin"),
                ("range", "roundrobin"),
            ]
        )
        == "range"
    )
    assert (
        choose_strategy(
            [
                ("range", "roundrobin"),
                ("roundrobin", "range"),
                ("roundrobin", "range"),
            ]
        )
        == "roundrobin"
    )


@pytest.mark.parametrize(
    "first, second, winner",
    [
        ("range", "roundrobin", "range"),
        ("roundrobin", "cooperative-sticky", "roundrobin"),
        ("sticky", "cooperative-sticky", "sticky"),
    ],
)
def test_choose_strategy_breaks_ties_by_java_hashmap_order(first, second, winner):
    """ClassicGroup.selectProtocol: on a tie Stream.max keeps the protocol met first in the
    HashMap of votes (by String.hashCode bucket), not the first member's choice."""
    assert choose_strategy([(first, second), (second, first)]) == winner
    assert choose_strategy([(second, first), (first, second)]) == winner


def test_choose_strategy_rejects_empty_and_inconsistent_groups():
    """ClassicGroup.selectProtocol throws for an empty group; a group with no common protocol
    never gets there (INCONSISTENT_GROUP_PROTOCOL)."""
    with pytest.raises(ValueError):
        choose_strategy([])
    with pytest.raises(ValueError):
        choose_strategy([("range",), ("roundrobin",)])


def test_rebalance_protocols():
    """ConsumerPartitionAssignor.supportedProtocols: EAGER by default; CooperativeStickyAssignor
    supports COOPERATIVE and EAGER."""
    assert REBALANCE_PROTOCOLS == {
        "range": ("EAGER",),
        "roundrobin": ("EAGER",),
        "sticky": ("EAGER",),
        "cooperative-sticky": ("COOPERATIVE", "EAGER"),
    }


def test_unknown_strategy_is_a_value_error():
    """ConsumerCoordinator.lookupAssignor finds no assignor of an unknown name: a one-line
    ValueError here."""
    with pytest.raises(ValueError) as raised:
        assign("fair", {"t": 1}, {"C0": Subscription(("t",))})
    assert "fair" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "strategy, c0, c1",
    [
        ("range", [("a", 0), ("b", 0)], []),
        ("roundrobin", [("a", 0)], [("b", 0)]),
        ("sticky", [("a", 0)], [("b", 0)]),
        ("cooperative-sticky", [("a", 0)], [("b", 0)]),
    ],
)
def test_every_member_gets_a_sorted_list_even_when_empty(strategy, c0, c1):
    """ConsumerPartitionAssignor.GroupAssignment has an entry per member, empty ones included:
    three members, topics "b" and "a" of one partition each; Range works per topic (C0 gets
    both), the others spread them; each list is sorted by (topic, partition)."""
    result = assign(
        strategy, {"b": 1, "a": 1}, {m: Subscription(("b", "a")) for m in ("C0", "C1", "C2")}
    )
    assert result == {"C0": c0, "C1": c1, "C2": []}
