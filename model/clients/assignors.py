"""Kafka's client-side consumer partition assignors, as pure deterministic functions.

Why: with the classic group protocol the *group leader* (a consumer) computes the whole
group's assignment, with the assignor the coordinator chose.  Which partition a member
gets, and whether a moving partition is withheld for a round (cooperative rebalancing),
decides which consumer may read or commit what; a model that guessed at this would find
anomalies Kafka cannot have and miss ones it can.  So this module follows Apache Kafka's
Java classes step by step, including the order in which they walk Java hash maps:

* ``range``: ``org.apache.kafka.clients.consumer.RangeAssignor``;
* ``roundrobin``: ``RoundRobinAssignor``;
* ``sticky`` (KIP-54): ``StickyAssignor`` on ``consumer.internals.AbstractStickyAssignor``
  (its ``ConstrainedAssignmentBuilder`` when every member has the same subscription,
  its ``GeneralAssignmentBuilder`` otherwise);
* ``cooperative-sticky`` (KIP-429): ``CooperativeStickyAssignor``: the sticky result minus
  every partition changing owner, which its new owner gets one rebalance later;
* member order: ``consumer.internals.AbstractPartitionAssignor.MemberInfo`` (static members
  first by ``group.instance.id``, then dynamic members by member id);
* ``choose_strategy``: the coordinator's ``ClassicGroup.selectProtocol`` (group-coordinator).

What is modelled of the inputs: ``Subscription.owned_partitions`` with ``generation`` is what
the sticky assignors learn of a member's previous assignment (for ``sticky`` Kafka carries it
in the subscription's user data, for ``cooperative-sticky`` in ConsumerProtocolSubscription
v2+ fields; the model has one pair for both).  Generations below -1 count as -1 (unknown),
as ``Subscription`` does.  Topics nobody subscribes to, and topics with no partitions, are
dropped first, as ``AbstractPartitionAssignor.assign(Cluster, GroupSubscription)`` drops them.
Owned partitions must exist (Kafka never shrinks a topic).

Where Kafka's outcome depends on iteration order of a ``java.util.HashMap``/``HashSet``
(which members keep partitions beyond the minimum quota, which of two same-generation
previous owners counts, which moved partition is moved back, ties in protocol votes), the
order is reproduced: bucket by ``String.hashCode``/``TopicPartition.hashCode`` and table
size, then insertion order.  The order of the ``subscriptions`` dict stands for the order in
which the leader received the JoinGroup members.  Not reproduced: the order of treeified
buckets (nine or more colliding keys in a table of 64 buckets or more).

Left out: rack-aware assignment (KIP-881, ``client.rack``): members here have no rack, which
is the case in which Kafka skips all rack logic.  The sticky assignors' ``maxGeneration``
field, which in Kafka survives across rebalances on one leader instance, is per call here
(the two differ only if a group's generation went backwards, i.e. the group was recreated).
"""

from collections.abc import Callable, Hashable, Iterable, Mapping

import attrs

TopicPartition = tuple[str, int]
Assignment = dict[str, list[TopicPartition]]

RANGE = "range"
ROUND_ROBIN = "roundrobin"
STICKY = "sticky"
COOPERATIVE_STICKY = "cooperative-sticky"

EAGER = "EAGER"
COOPERATIVE = "COOPERATIVE"

#: ``ConsumerPartitionAssignor.supportedProtocols()`` of each built-in assignor.  A consumer
#: uses the highest protocol (COOPERATIVE above EAGER) that all of its configured assignors
#: support (``ConsumerCoordinator``'s constructor).
REBALANCE_PROTOCOLS: dict[str, tuple[str, ...]] = {
    RANGE: (EAGER,),
    ROUND_ROBIN: (EAGER,),
    STICKY: (EAGER,),
    COOPERATIVE_STICKY: (COOPERATIVE, EAGER),
}

NO_GENERATION = -1  # AbstractStickyAssignor.DEFAULT_GENERATION


def _as_partitions(partitions: Iterable[Iterable]) -> tuple[TopicPartition, ...]:
    """Owned partitions as hashable (topic, partition) pairs, whatever sequences were given."""
    return tuple((topic, partition) for topic, partition in partitions)


@attrs.frozen
class Subscription:
    """One member's JoinGroup metadata, as the leader's assignor sees it."""

    topics: tuple[str, ...] = attrs.field(converter=tuple)
    owned_partitions: tuple[tuple[str, int], ...] = attrs.field(
        default=(), converter=_as_partitions
    )
    generation: int = -1
    group_instance_id: str | None = None


class AssignmentFailed(RuntimeError):
    """Raised where Kafka's own assignor throws instead of returning an assignment."""


def assign(
    strategy: str,
    partitions_per_topic: dict[str, int],
    subscriptions: dict[str, Subscription],
    *,
    highest_generation_only: bool = False,
) -> dict[str, list[tuple[str, int]]]:
    """The leader's assignment: every member id mapped to its sorted (topic, partition) list.

    ``highest_generation_only`` is the sticky assignors' claim rule before KAFKA-14639
    (3.4.1, 3.5.0): only members of the newest generation count as owning anything.
    Raises ValueError for an unknown strategy and AssignmentFailed where Kafka's assignor
    throws.
    """
    assignor = _ASSIGNORS.get(strategy)
    if assignor is None:
        raise ValueError(
            f"unknown partition assignment strategy {strategy!r}; "
            f"expected one of {', '.join(_ASSIGNORS)}"
        )
    if not subscriptions:
        return {}
    subs = _as_leader_sees_them(subscriptions)
    counts = _subscribed_partition_counts(partitions_per_topic, subs)
    if strategy in (STICKY, COOPERATIVE_STICKY):
        raw = assignor(counts, subs, highest_generation_only)  # type: ignore[call-arg]
    else:
        raw = assignor(counts, subs)
    return {member: sorted(raw[member]) for member in subscriptions}


def choose_strategy(member_strategies: list[tuple[str, ...]]) -> str:
    """The protocol (assignor name) the classic coordinator picks for a group.

    ``ClassicGroup.selectProtocol``: the candidates are the protocols every member supports;
    each member votes for the first candidate in its own preference order; the most votes
    win, and a tie goes to the protocol met first when iterating the ``HashMap`` of votes.
    Raises ValueError for an empty group or when no protocol is common to all members
    (Kafka rejects such a JoinGroup with INCONSISTENT_GROUP_PROTOCOL before this point).
    """
    if not member_strategies:
        raise ValueError("cannot choose a partition assignment strategy for an empty group")
    candidates = set(member_strategies[0]).intersection(*member_strategies[1:])
    if not candidates:
        raise ValueError("no partition assignment strategy is supported by every member")
    votes: dict[str, int] = {}
    for preferences in member_strategies:
        vote = next(name for name in preferences if name in candidates)
        votes[vote] = votes.get(vote, 0) + 1
    winner = None
    for name in _JavaHashSet.of(votes, _java_string_hash).ordered():
        if winner is None or votes[name] > votes[winner]:  # Stream.max keeps the first of equals
            winner = name
    assert winner is not None
    return winner


# --- Java ordering ---------------------------------------------------------------------


def _java_key(text: str) -> bytes:
    """Sort key giving Java's ``String.compareTo`` order (UTF-16 code units)."""
    return text.encode("utf-16-be", "surrogatepass")


def _java_string_hash(text: str) -> int:
    """``String.hashCode`` as an unsigned 32-bit value."""
    units = _java_key(text)
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h


def _topic_partition_hash(tp: TopicPartition) -> int:
    """``TopicPartition.hashCode`` as an unsigned 32-bit value."""
    return (31 * (31 + tp[1]) + _java_string_hash(tp[0])) & 0xFFFFFFFF


class _JavaHashSet:
    """The keys of a ``java.util.HashMap``, iterated in the order Java iterates them.

    Java walks the table bucket by bucket (bucket = spread hash masked by the table size) and
    each bucket in insertion order; the table starts at 16 buckets, doubles when the size
    passes 3/4 of it or when a bucket of a table under 64 buckets would grow past 8 entries,
    and never shrinks.  That is all that is needed to know which entry comes first.
    """

    def __init__(self, hash_of: Callable[[Hashable], int]) -> None:
        self._hash_of = hash_of
        self._sequence: dict[Hashable, int] = {}
        self._inserted = 0
        self._buckets = 16

    @classmethod
    def of(cls, keys: Iterable[Hashable], hash_of: Callable[[Hashable], int]) -> "_JavaHashSet":
        """A map filled by ``put`` in the given order."""
        table = cls(hash_of)
        for key in keys:
            table.add(key)
        return table

    def _bucket(self, key: Hashable) -> int:
        h = self._hash_of(key)
        return (h ^ (h >> 16)) & (self._buckets - 1)

    def add(self, key: Hashable) -> None:
        """``put``: a new key goes to the end of its bucket; an existing key stays put."""
        if key in self._sequence:
            return
        bucket = self._bucket(key)
        crowded = sum(1 for other in self._sequence if self._bucket(other) == bucket) >= 8
        self._sequence[key] = self._inserted
        self._inserted += 1
        if crowded and self._buckets < 64:  # treeifyBin resizes a small table instead
            self._buckets *= 2
        if len(self._sequence) > self._buckets * 3 // 4:
            self._buckets *= 2

    def discard(self, key: Hashable) -> None:
        """``remove``: the table keeps its size, so the others keep their order."""
        self._sequence.pop(key, None)

    def __len__(self) -> int:
        return len(self._sequence)

    def _position(self, key: Hashable) -> tuple[int, int]:
        return (self._bucket(key), self._sequence[key])

    def ordered(self) -> list:
        """The keys as a Java for-each loop over the map meets them."""
        return sorted(self._sequence, key=self._position)

    def first(self) -> Hashable:
        """What ``iterator().next()`` returns."""
        return min(self._sequence, key=self._position)


def _member_order_key(member: str, subscription: Subscription) -> tuple[int, bytes]:
    """``MemberInfo.compareTo``: static members first by instance id, then dynamic by member id."""
    if subscription.group_instance_id is not None:
        return (0, _java_key(subscription.group_instance_id))
    return (1, _java_key(member))


def _sorted_members(subs: Mapping[str, Subscription]) -> list[str]:
    """Members in MemberInfo order (Java's sort is stable, so equal keys keep map order)."""
    return sorted(subs, key=lambda member: _member_order_key(member, subs[member]))


def _as_leader_sees_them(subscriptions: Mapping[str, Subscription]) -> dict[str, Subscription]:
    """The subscriptions in the iteration order of the leader's ``HashMap`` of them.

    ``ConsumerCoordinator.onLeaderElected`` puts the JoinGroup members into a ``HashMap``;
    every walk over "the subscriptions" in the assignors follows that map.  Topic lists are
    de-duplicated (Kafka sends a set) and negative generations mean "none".
    """
    order = _JavaHashSet.of(subscriptions, _java_string_hash).ordered()
    return {
        member: attrs.evolve(
            subscriptions[member],
            topics=tuple(dict.fromkeys(subscriptions[member].topics)),
            generation=max(subscriptions[member].generation, NO_GENERATION),
        )
        for member in order
    }


def _subscribed_partition_counts(
    partitions_per_topic: Mapping[str, int], subs: Mapping[str, Subscription]
) -> dict[str, int]:
    """Partition counts of the subscribed topics that exist and have partitions.

    ``AbstractPartitionAssignor.assign(Cluster, ...)`` asks the metadata only about
    subscribed topics and skips those without partitions.
    """
    subscribed = {topic for sub in subs.values() for topic in sub.topics}
    return {
        topic: partitions_per_topic[topic]
        for topic in sorted(subscribed, key=_java_key)
        if partitions_per_topic.get(topic, 0) > 0
    }


def _remove_first(items: list, item: object) -> None:
    """``List.remove(Object)``: drop the first occurrence, if any."""
    if item in items:
        items.remove(item)


# --- range and round robin -------------------------------------------------------------


def _range(counts: dict[str, int], subs: dict[str, Subscription]) -> Assignment:
    """RangeAssignor: per topic, contiguous ranges; the first P % C members get one extra."""
    assignment: Assignment = {member: [] for member in subs}
    for topic, count in counts.items():
        members = _sorted_members({m: s for m, s in subs.items() if topic in s.topics})
        if not members:
            continue
        share, extra = divmod(count, len(members))
        start = 0
        for index, member in enumerate(members):
            size = share + (1 if index < extra else 0)
            assignment[member].extend((topic, p) for p in range(start, start + size))
            start += size
    return assignment


def _round_robin(counts: dict[str, int], subs: dict[str, Subscription]) -> Assignment:
    """RoundRobinAssignor: all partitions, topics in string order, dealt round a circle of members.

    Members not subscribed to a partition's topic are skipped (the circle still advances
    past them), which is why unequal subscriptions can leave it unbalanced.
    """
    assignment: Assignment = {member: [] for member in subs}
    circle = _sorted_members(subs)
    position = 0
    for topic, count in counts.items():  # counts is in String.compareTo order
        for partition in range(count):
            while topic not in subs[circle[position % len(circle)]].topics:
                position += 1
            assignment[circle[position % len(circle)]].append((topic, partition))
            position += 1
    return assignment


# --- sticky: previous ownership --------------------------------------------------------


@attrs.define
class _Claims:
    """What ``AbstractStickyAssignor.allSubscriptionsEqual`` learns from the subscriptions."""

    all_subscriptions_equal: bool
    owned: Assignment  # per member: the previous partitions it still counts as owning
    doubly_claimed: set[TopicPartition]  # claimed by two members in the same generation
    max_generation: int


def _subscribes_like_the_first(first_topics: set[str], sub: Subscription) -> bool:
    """``allSubscriptionsEqual``'s topic check: the first member's topics are recorded in
    ``first_topics``; a later member subscribes like it if it names the same topics."""
    if not first_topics:
        first_topics.update(sub.topics)
        return True
    return len(sub.topics) == len(first_topics) and first_topics.issuperset(sub.topics)


def _collect_claims(counts: dict[str, int], subs: dict[str, Subscription]) -> _Claims:
    """Decide who counts as owning each previously owned partition.

    A member's claim counts only for a topic still assigned.  When two members claim one
    partition, the higher generation keeps it; in the same generation both lose it
    (KAFKA-12984, KAFKA-14639), and the partition is remembered as doubly claimed.
    Subscriptions are "equal" when each member's topic set equals the first non-empty one
    met, which is Kafka's test (an empty first subscription is skipped by it).
    """
    all_equal = True
    first_topics: set[str] = set()
    claimant: dict[TopicPartition, str] = {}
    owned: Assignment = {}
    doubly: set[TopicPartition] = set()
    max_generation = NO_GENERATION
    for member, sub in subs.items():
        if not _subscribes_like_the_first(first_topics, sub):
            all_equal = False
        max_generation = max(max_generation, sub.generation)
        kept = owned[member] = []
        for tp in sub.owned_partitions:
            if tp[0] not in counts:
                continue
            other = claimant.get(tp)
            if other is None:
                kept.append(tp)
                claimant[tp] = member
            elif sub.generation == subs[other].generation:
                doubly.add(tp)
                _remove_first(owned[other], tp)
                claimant[tp] = member
            elif sub.generation > subs[other].generation:
                kept.append(tp)
                _remove_first(owned[other], tp)
                claimant[tp] = member
    return _Claims(all_equal, owned, doubly, max_generation)


def _collect_claims_of_highest_generation(counts: dict[str, int],
                                          subs: dict[str, Subscription]) -> _Claims:
    """``allSubscriptionsEqual`` before KAFKA-14639 (3.4.1, 3.5.0): a member's claims
    count only if its generation is the highest seen so far; meeting a higher one drops
    every claim collected before.  A member that missed a rebalance and still owns what
    an older generation gave it is thus treated as owning nothing, and its partitions can
    be given to another member in the same round (the double ownership of KAFKA-14639).
    Two claims in the newest generation cancel each other as in the later rule."""
    all_equal = True
    first_topics: set[str] = set()
    claimant: dict[TopicPartition, str] = {}
    owned: Assignment = {}
    doubly: set[TopicPartition] = set()
    max_generation = NO_GENERATION
    newest: list[str] = []
    for member, sub in subs.items():
        if not _subscribes_like_the_first(first_topics, sub):
            all_equal = False
        kept = owned[member] = []
        if sub.generation < max_generation:
            continue
        if sub.generation > max_generation:
            claimant.clear()
            doubly.clear()
            for dropped in newest:
                owned[dropped].clear()
            newest.clear()
            max_generation = sub.generation
        newest.append(member)
        for tp in sub.owned_partitions:
            if tp[0] not in counts:
                continue
            other = claimant.get(tp)
            claimant[tp] = member
            if other is None:
                kept.append(tp)
            else:
                _remove_first(owned[other], tp)
                doubly.add(tp)
    return _Claims(all_equal, owned, doubly, max_generation)


def _sticky_with_transfers(
    counts: dict[str, int], subs: dict[str, Subscription],
    highest_generation_only: bool = False,
) -> tuple[Assignment, dict[TopicPartition, str] | None]:
    """The sticky assignment and, from the constrained builder only, the partitions changing owner.

    Kafka's general builder leaves ``partitionsTransferringOwnership`` null so that the
    cooperative assignor computes it itself; None stands for that.
    """
    claims = (_collect_claims_of_highest_generation(counts, subs) if highest_generation_only
              else _collect_claims(counts, subs))
    if claims.all_subscriptions_equal:
        return _ConstrainedBuilder(counts, claims).build()
    return _GeneralBuilder(counts, subs, claims).build(), None


def _sticky(counts: dict[str, int], subs: dict[str, Subscription],
            highest_generation_only: bool = False) -> Assignment:
    """StickyAssignor (eager): balance first, then keep previous ownership."""
    return _sticky_with_transfers(counts, subs, highest_generation_only)[0]


def _cooperative_sticky(counts: dict[str, int], subs: dict[str, Subscription],
                        highest_generation_only: bool = False) -> Assignment:
    """CooperativeStickyAssignor: the sticky assignment without the partitions changing owner.

    A partition revoked from one member cannot be given to another in the same rebalance:
    its owner must first revoke it, then rejoin; so it is withheld from the new owner now.
    """
    assignment, transferring = _sticky_with_transfers(counts, subs, highest_generation_only)
    if transferring is None:
        transferring = _partitions_changing_owner(subs, assignment)
    for tp, new_owner in transferring.items():
        _remove_first(assignment[new_owner], tp)
    return assignment


def _partitions_changing_owner(
    subs: dict[str, Subscription], assignment: Assignment
) -> dict[TopicPartition, str]:
    """``computePartitionsTransferringOwnership``: added to one member and revoked from another.

    Uses each member's owned partitions as it reported them, whatever their generation.
    """
    added: dict[TopicPartition, str] = {}
    revoked: set[TopicPartition] = set()
    for member, partitions in assignment.items():
        owned = set(subs[member].owned_partitions)
        assigned = set(partitions)
        added.update((tp, member) for tp in partitions if tp not in owned)
        revoked.update(tp for tp in subs[member].owned_partitions if tp not in assigned)
    return {tp: member for tp, member in added.items() if tp in revoked}


# --- sticky: all subscriptions equal ---------------------------------------------------


class _ConstrainedBuilder:
    """``AbstractStickyAssignor.ConstrainedAssignmentBuilder`` without racks.

    Every member may take every partition, so the quotas are known up front: each member gets
    floor(P/C) or ceil(P/C), and exactly P % C members get the ceiling.  Members first keep
    what they owned, up to their quota (smallest partition numbers first); the rest is dealt
    round robin to the members still below quota, in member-id order.
    """

    def __init__(self, counts: dict[str, int], claims: _Claims) -> None:
        self.counts = counts
        self.claims = claims
        total = sum(counts.values())
        members = len(claims.owned)
        self.min_quota, self.expected_over_min = divmod(total, members)
        self.max_quota = self.min_quota + (1 if self.expected_over_min else 0)
        self.over_min = 0
        self.assignment: Assignment = {member: [] for member in claims.owned}
        self.assigned: set[TopicPartition] = set()
        self.maybe_revoked: dict[TopicPartition, str] = {}
        self.under_min: list[str] = []
        self.exactly_min: list[str] = []
        self.transferring: dict[TopicPartition, str] = {}

    def build(self) -> tuple[Assignment, dict[TopicPartition, str]]:
        self._keep_owned()
        unassigned = [
            (topic, p)
            for topic in sorted(self.counts, key=_java_key)
            for p in range(self.counts[topic])
            if (topic, p) not in self.assigned
        ]
        self.under_min.sort(key=_java_key)
        self.exactly_min.sort(key=_java_key)
        self._deal(unassigned)
        self._verify_filled()
        return self.assignment, self.transferring

    def _keep(
        self, member: str, partitions: list[TopicPartition], revoked: list[TopicPartition]
    ) -> None:
        self.assignment[member].extend(partitions)
        self.assigned.update(partitions)
        for tp in revoked:
            self.maybe_revoked[tp] = member

    def _keep_owned(self) -> None:
        """``assignOwnedPartitions``: keep previous partitions up to the member's quota.

        Which members may keep the ceiling quota goes by map iteration order, first come
        first served; doubly claimed partitions are never kept.
        """
        for member, claimed in self.claims.owned.items():
            owned = sorted(claimed, key=lambda tp: (tp[1], _java_key(tp[0])))
            for tp in self.claims.doubly_claimed:
                _remove_first(owned, tp)
            if len(owned) < self.min_quota:
                self._keep(member, owned, [])
                self.under_min.append(member)
            elif len(owned) >= self.max_quota and self.over_min < self.expected_over_min:
                self.over_min += 1
                if self.over_min == self.expected_over_min:
                    self.exactly_min.clear()
                self._keep(member, owned[: self.max_quota], owned[self.max_quota :])
            else:
                self._keep(member, owned[: self.min_quota], owned[self.min_quota :])
                if self.over_min < self.expected_over_min:
                    self.exactly_min.append(member)

    def _deal(self, unassigned: list[TopicPartition]) -> None:
        """``assignRoundRobin``: cycle through the members under the minimum quota, then hand
        the leftovers one each to members at exactly the minimum, in order."""
        cursor = 0  # a java.util.Iterator over under_min: next index, remove() steps back
        for tp in unassigned:
            from_cycle = True
            if cursor < len(self.under_min):
                member = self.under_min[cursor]
                cursor += 1
            elif not self.under_min and not self.exactly_min:
                raise AssignmentFailed("No more unfilled consumers to be assigned.")
            elif not self.under_min:
                member = self.exactly_min.pop(0)
                from_cycle = False
            else:
                member = self.under_min[0]
                cursor = 1
            size = self._give(tp, member)
            if size == self.min_quota:
                if from_cycle:
                    cursor -= 1
                    del self.under_min[cursor]
                self.exactly_min.append(member)
            elif size == self.max_quota:
                self.over_min += 1

    def _give(self, tp: TopicPartition, member: str) -> int:
        """``assignNewPartition``: note a partition changing owner, for the cooperative assignor."""
        self.assignment[member].append(tp)
        previous = self.maybe_revoked.get(tp)
        if (previous is not None and previous != member) or tp in self.claims.doubly_claimed:
            self.transferring[tp] = member
        return len(self.assignment[member])

    def _verify_filled(self) -> None:
        """``verifyUnfilledMembers``: Kafka throws if a member ends below its quota."""
        if not self.under_min:
            return
        if self.over_min != self.expected_over_min:
            raise AssignmentFailed(
                "We haven't reached the expected number of members with more than the minQuota "
                "partitions, but no more partitions to be assigned"
            )
        for member in self.under_min:
            if len(self.assignment[member]) != self.min_quota:
                raise AssignmentFailed(
                    f"Consumer: [{member}] doesn't reach minQuota partitions, "
                    "and no more partitions to be assigned"
                )


# --- sticky: general case --------------------------------------------------------------


class _PartitionMovements:
    """``AbstractStickyAssignor.PartitionMovements``: net moves made while balancing.

    Kept so that a move from B to A can be answered by moving back a partition that went
    from A to B earlier in this same assignment, rather than a second partition.
    """

    def __init__(self) -> None:
        self.by_topic: dict[str, dict[tuple[str, str], _JavaHashSet]] = {}
        self.moves: dict[TopicPartition, tuple[str, str]] = {}

    def _forget(self, tp: TopicPartition) -> tuple[str, str]:
        pair = self.moves.pop(tp)
        pairs = self.by_topic[tp[0]]
        pairs[pair].discard(tp)
        if not len(pairs[pair]):
            del pairs[pair]
        if not pairs:
            del self.by_topic[tp[0]]
        return pair

    def _record(self, tp: TopicPartition, pair: tuple[str, str]) -> None:
        self.moves[tp] = pair
        pairs = self.by_topic.setdefault(tp[0], {})
        pairs.setdefault(pair, _JavaHashSet(_topic_partition_hash)).add(tp)

    def move(self, tp: TopicPartition, old: str, new: str) -> None:
        """``movePartition``: a partition moved twice is recorded from its original owner."""
        if tp in self.moves:
            source, _ = self._forget(tp)
            if source != new:
                self._record(tp, (source, new))
        else:
            self._record(tp, (old, new))

    def partition_to_move(self, tp: TopicPartition, old: str, new: str) -> TopicPartition:
        """``getTheActualPartitionToBeMoved``: prefer undoing an earlier move new -> old."""
        pairs = self.by_topic.get(tp[0])
        if pairs is None:
            return tp
        if tp in self.moves:
            old = self.moves[tp][0]
        reverse = pairs.get((new, old))
        if reverse is None:
            return tp
        return reverse.first()


class _GeneralBuilder:
    """``AbstractStickyAssignor.GeneralAssignmentBuilder`` without racks.

    Members subscribe to different topics, so there is no simple quota: keep every valid
    previous assignment, give each unassigned partition to the least loaded member that can
    take it, then move partitions from loaded to lighter members until no member with two
    or more fewer partitions could take one of the other's; keep that only if it is more
    balanced than before the moves (unless starting from nothing).
    """

    def __init__(
        self, counts: dict[str, int], subs: dict[str, Subscription], claims: _Claims
    ) -> None:
        self.counts = counts
        self.subs = subs
        self.max_generation = claims.max_generation
        self.current = claims.owned
        self.consumers_of: dict[str, list[str]] = {topic: [] for topic in counts}
        self.topics_of: dict[str, list[str]] = {}
        for member, sub in subs.items():
            topics = [topic for topic in sub.topics if topic in counts]
            self.topics_of[member] = topics
            for topic in topics:
                self.consumers_of[topic].append(member)
            self.current.setdefault(member, [])
        self.owner: dict[TopicPartition, str] = {}
        for member, partitions in self.current.items():
            for tp in partitions:
                self.owner[tp] = member
        topic_order = sorted(
            counts, key=lambda topic: (len(self.consumers_of[topic]), _java_key(topic))
        )
        self.all_partitions = [(topic, p) for topic in topic_order for p in range(counts[topic])]
        self.active: set[str] = set()  # the members in Kafka's sortedCurrentSubscriptions
        self.revocation_required = False
        self.movements = _PartitionMovements()

    def build(self) -> Assignment:
        previous = self._previous_owners()
        kept = set(self._keep_owned())
        unassigned = [tp for tp in self.all_partitions if tp not in kept]
        self.active.update(self.current)
        self._balance(previous, unassigned)
        return self.current

    def _previous_owners(self) -> dict[TopicPartition, tuple[str, int]]:
        """``prepopulateCurrentAssignments``: owners from generations older than the newest.

        For each partition, the most recent such owner (first met wins a tie); the balancing
        step prefers moving a partition back to it.
        """
        previous: dict[TopicPartition, tuple[str, int]] = {}
        for member, sub in self.subs.items():
            if sub.generation < self.max_generation:
                for tp in sub.owned_partitions:
                    if tp not in previous or sub.generation > previous[tp][1]:
                        previous[tp] = (member, sub.generation)
        return previous

    def _keep_owned(self) -> list[TopicPartition]:
        """``assignOwnedPartitions``: drop owned partitions of topics the member left."""
        kept: list[TopicPartition] = []
        for member, partitions in self.current.items():
            for tp in list(partitions):
                if tp[0] not in self.consumers_of:
                    partitions.remove(tp)
                    self.owner.pop(tp, None)
                elif tp[0] not in self.subs[member].topics:
                    partitions.remove(tp)
                    self.revocation_required = True
                else:
                    kept.append(tp)
        return kept

    def _by_load(self) -> list[str]:
        """``sortedCurrentSubscriptions``: fewest partitions first, then member id."""
        return sorted(
            self.active, key=lambda member: (len(self.current[member]), _java_key(member))
        )

    def _max_size(self, member: str) -> int:
        return sum(self.counts[topic] for topic in self.topics_of[member])

    def _can_move(self, member: str) -> bool:
        """``canConsumerParticipateInReassignment``."""
        partitions = self.current[member]
        if len(partitions) < self._max_size(member):
            return True
        return any(len(self.consumers_of[tp[0]]) >= 2 for tp in partitions)

    def _assign_unassigned(self, unassigned: list[TopicPartition]) -> None:
        """``maybeAssign``: each partition to the least loaded member subscribed to it."""
        for tp in unassigned:
            for member in self._by_load():
                if tp[0] in self.topics_of[member]:
                    self.current[member].append(tp)
                    self.owner[tp] = member
                    break

    def _balance(
        self, previous: dict[TopicPartition, tuple[str, int]], unassigned: list[TopicPartition]
    ) -> None:
        initializing = not self.current[self._by_load()[-1]]
        self._assign_unassigned(unassigned)
        movable_topics = {
            topic for topic, members in self.consumers_of.items() if len(members) >= 2
        }
        movable_all = [tp for tp in self.all_partitions if tp[0] in movable_topics]
        movable_new = [tp for tp in unassigned if tp[0] in movable_topics]
        fixed: Assignment = {}
        for member in self.topics_of:
            if not self._can_move(member):
                self.active.discard(member)
                fixed[member] = self.current.pop(member)
        before = {member: list(partitions) for member, partitions in self.current.items()}
        owner_before = dict(self.owner)
        if not self.revocation_required:
            self._reassign(movable_new, previous)
        moved = self._reassign(movable_all, previous)
        if not initializing and moved and _balance_score(self.current) >= _balance_score(before):
            self.current = before
            self.owner = owner_before
        self.current.update(fixed)

    def _reassign(
        self, partitions: list[TopicPartition], previous: dict[TopicPartition, tuple[str, int]]
    ) -> bool:
        """``performReassignments``: sweep until balanced or a sweep moves nothing."""
        performed = False
        while True:
            modified = False
            for tp in partitions:
                if self._is_balanced():
                    break
                owner = self.owner[tp]
                if tp in previous:
                    former = previous[tp][0]
                    if former not in self.current:  # Kafka: NullPointerException
                        raise AssignmentFailed(
                            f"previous owner {former} of {tp} takes no part in reassignment"
                        )
                    if len(self.current[owner]) > len(self.current[former]) + 1:
                        self._move(tp, former)
                        performed = modified = True
                        continue
                if any(
                    len(self.current[owner]) > len(self.current[o]) + 1
                    for o in self.consumers_of[tp[0]]
                ):
                    self._move(tp, next(m for m in self._by_load() if tp[0] in self.topics_of[m]))
                    performed = modified = True
            if not modified:
                return performed

    def _move(self, tp: TopicPartition, new_owner: str) -> None:
        """``reassignPartition``: possibly move back an earlier partition instead of this one."""
        actual = self.movements.partition_to_move(tp, self.owner[tp], new_owner)
        old_owner = self.owner[actual]
        self.movements.move(actual, old_owner, new_owner)
        self.current[old_owner].remove(actual)
        self.current[new_owner].append(actual)
        self.owner[actual] = new_owner

    def _is_balanced(self) -> bool:
        """``isBalanced``: counts within one, or no member could take a partition from a member
        with two or more partitions more than it has."""
        by_load = self._by_load()
        if len(self.current[by_load[0]]) >= len(self.current[by_load[-1]]) - 1:
            return True
        holder = {tp: member for member, partitions in self.current.items() for tp in partitions}
        for member in by_load:
            size = len(self.current[member])
            if size == self._max_size(member):
                continue
            mine = set(self.current[member])
            for topic in self.topics_of[member]:
                for p in range(self.counts[topic]):
                    if (topic, p) not in mine and size + 1 < len(self.current[holder[(topic, p)]]):
                        return False
        return True


def _balance_score(assignment: Assignment) -> int:
    """``getBalanceScore``: sum over member pairs of the difference in partition counts."""
    sizes = [len(partitions) for partitions in assignment.values()]
    return sum(abs(a - b) for i, a in enumerate(sizes) for b in sizes[i + 1 :])


_ASSIGNORS: dict[str, Callable[[dict[str, int], dict[str, Subscription]], Assignment]] = {
    RANGE: _range,
    ROUND_ROBIN: _round_robin,
    STICKY: _sticky,
    COOPERATIVE_STICKY: _cooperative_sticky,
}


def java_hash_map_order(keys: Iterable[str]) -> list[str]:
    """String keys put into a ``java.util.HashMap`` in this order, as Java iterates them
    (used by the server-side assignors of KIP-848 as well)."""
    return list(_JavaHashSet.of(keys, _java_string_hash).ordered())


def java_string_order(keys: Iterable[str]) -> list[str]:
    """Strings sorted as Java's ``String.compareTo`` sorts them."""
    return sorted(keys, key=_java_key)
