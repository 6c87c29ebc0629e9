"""Kafka releases, and the behaviours kafkacheck switches by release.

``kafka.version`` names one release preset.  A preset is not a list of features but a
release number: each behaviour that changed between releases is a :class:`Change` that
says which Jira or KIP changed it and from which release (including backports to older
release lines), and :func:`behaviours` evaluates every change for the chosen release.
A new version-dependent mechanism (pre-KIP-101 truncation, KIP-966's eligible leader
replicas, KIP-890's transaction defences) arrives as one more :class:`Change` and one
more field of :class:`Behaviours`; the presets stay as they are.

What is *not* switched by version is documented in ``docs/model.md``: in particular the
replication model is KRaft's (Kafka 3.3+) for every preset.
"""

from __future__ import annotations

import attrs

Release = tuple[int, int, int]

#: The release presets ``kafka.version`` accepts, each standing for the newest patch
#: release of its line that kafkacheck knows of.  The newest is the default; it is also
#: the default Kafka of ``kafkacheck real``.
PRESETS: dict[str, Release] = {
    "2.4": (2, 4, 1),
    "3.0.0": (3, 0, 0),
    "3.3": (3, 3, 2),
    "3.5": (3, 5, 2),
    "3.6": (3, 6, 2),
    "3.9": (3, 9, 1),
    "4.0": (4, 0, 0),
    "4.4": (4, 4, 0),
}
NEWEST = "4.4"


@attrs.frozen
class Change:
    """One behaviour change: present in ``release`` when it is at least the first
    release of its line that has it (``fixed_in`` lists one release per line that
    received the change, the last entry covering every later line)."""

    name: str
    source: str
    fixed_in: tuple[Release, ...]

    def present_in(self, release: Release) -> bool:
        for first in sorted(self.fixed_in):
            if release[:2] == first[:2]:
                return release >= first
        return release >= max(self.fixed_in)


IDEMPOTENCE_BY_DEFAULT = Change(
    "enable.idempotence defaults to true, acks to all",
    "KIP-679, KAFKA-10619 (3.0.0)", ((3, 0, 0),))
IDEMPOTENCE_DEFAULT_APPLIED = Change(
    "the enable.idempotence default is applied (3.0.0 and 3.1.0 ignore it)",
    "KAFKA-13598 (fixed in 3.0.1, 3.1.1, 3.2.0)", ((3, 0, 1), (3, 1, 1), (3, 2, 0)))
IDEMPOTENT_EPOCH_BUMP = Change(
    "an idempotent producer bumps its epoch locally instead of resetting its producer id",
    "KIP-360, KAFKA-8710 (2.5.0)", ((2, 5, 0),))

TXN_PARTITION_VERIFICATION = Change(
    "a partition leader asks the transaction coordinator before a transactional batch "
    "opens a transaction on it (transaction.partition.verification.enable)",
    "KIP-890 part 1, KAFKA-14402, KAFKA-14884 (3.6.0)", ((3, 6, 0),))
VERIFICATION_ABORTABLE = Change(
    "a batch that fails verification gets TRANSACTION_ABORTABLE (INVALID_TXN_STATE before)",
    "KIP-890, error code 120 added in 3.8.0 (INVALID_TXN_STATE in 3.6 and 3.7)", ((3, 8, 0),))
TRANSACTION_V2 = Change(
    "transaction.version=2: the epoch is bumped at every commit and abort, and the leader "
    "adds a partition to the transaction on the client's behalf",
    "KIP-890 part 2, KAFKA-14562, KAFKA-16192 (4.0.0)", ((4, 0, 0),))

CONSUMER_3_0_DEFAULTS = Change(
    "session.timeout.ms defaults to 45000 (10000 before) and partition.assignment.strategy "
    "to range,cooperative-sticky (range before)",
    "KIP-735, KIP-726 (3.0.0)", ((3, 0, 0),))

PENDING_SYNC_TIMEOUT = Change(
    "the coordinator removes members that have not sent SyncGroup within the rebalance "
    "timeout after the join phase (DelayedSync)",
    "KAFKA-12890 (2.8.1, 3.0.0)", ((2, 8, 1), (3, 0, 0)))
ILLEGAL_GENERATION_KEEPS_MEMBER_ID = Change(
    "ILLEGAL_GENERATION resets the generation but keeps the member id",
    "KAFKA-13419 (3.2.0)", ((3, 2, 0),))
COOPERATIVE_STICKY_UNVALIDATED = Change(
    "the leader no longer validates a cooperative-sticky assignment "
    "(validateCooperativeAssignment throws before)",
    "KAFKA-13406 (2.8.2, 3.0.1, 3.1.0)", ((2, 8, 2), (3, 0, 1), (3, 1, 0)))
SUBSCRIPTION_GENERATION_FIELD = Change(
    "a subscription carries the member's current generation (ConsumerProtocolSubscription "
    "v2); before, cooperative-sticky's user data carried the generation of its last assignment",
    "KAFKA-13715 (3.4.0)", ((3, 4, 0),))
GENERATION_AWARE_CLAIMS = Change(
    "the sticky assignors resolve each doubly claimed partition by generation instead of "
    "ignoring every member below the highest generation",
    "KAFKA-14639 (3.4.1, 3.5.0)", ((3, 4, 1), (3, 5, 0)))
STABLE_OFFSET_FETCH = Change(
    "the consumer fetches committed offsets with require_stable and retries "
    "UNSTABLE_OFFSET_COMMIT while a transaction holds an offset for its partition; "
    "TxnOffsetCommit carries the consumer's generation and member id",
    "KIP-447, KAFKA-9418 (2.5.0)", ((2, 5, 0),))

CONSUMER_GROUP_PROTOCOL = Change(
    "the consumer group protocol (group.protocol=consumer): ConsumerGroupHeartbeat, "
    "server-side assignors, the 3.8+ reconciliation (CurrentAssignmentBuilder)",
    "KIP-848 (early access 3.7.0, reconciliation rewritten by KAFKA-16249 in 3.8.0, "
    "GA 4.0.0)", ((3, 8, 0),))
CLIENT_MEMBER_ID = Change(
    "a KIP-848 consumer generates its member id at start-up and keeps it across rejoins "
    "(before, the coordinator named it in its first answer)",
    "KIP-1082, KAFKA-17116 (4.0.0)", ((4, 0, 0),))
AUTO_COMMIT_AT_POLL = Change(
    "the new consumer auto-commits only inside poll(), before fetching; before, its "
    "background thread auto-committed the positions whenever the interval passed, "
    "records the application had not processed included",
    "KAFKA-18641, apache/kafka PR #18737 (4.0.0)", ((4, 0, 0),))
UNREVOKED_EXIT_KEEPS_EPOCH = Change(
    "a KIP-848 member leaving UNREVOKED_PARTITIONS for another revocation keeps its epoch "
    "(it moved to epoch + 1 before)",
    "KAFKA-19974, apache/kafka #21107 (4.2.0)", ((4, 2, 0),))
OWN_REVOCATION_RELEASED = Change(
    "a partition the member itself is revoking does not count as unreleased when its new "
    "target gives it back: assigned at once (one heartbeat later, via "
    "UNRELEASED_PARTITIONS, before)",
    "KAFKA-19449, apache/kafka #20781 (4.0.2, 4.1.2, 4.2.0)", ((4, 0, 2), (4, 1, 2), (4, 2, 0)))
EPOCH_ZERO_REJOIN = Change(
    "a known dynamic member joining again with epoch 0 is accepted, keeping its record "
    "(FENCED_MEMBER_EPOCH unless its previous epoch was 0 before)",
    "KAFKA-19233, apache/kafka #21305 (4.2.0)", ((4, 2, 0),))
NEW_GROUP_COORDINATOR = Change(
    "classic groups are served by the new group coordinator (CoordinatorRuntime), whose "
    "failed __consumer_offsets writes answer COORDINATOR_NOT_AVAILABLE for a timeout "
    "(handleOperationException); the Scala GroupCoordinator before answered a timed-out "
    "group write REBALANCE_IN_PROGRESS and a timed-out offset commit REQUEST_TIMED_OUT",
    "KIP-848, the Scala GroupCoordinator removed (4.0.0)", ((4, 0, 0),))
REVOKING_STOPS_FETCH_FIRST = Change(
    "the new consumer stops fetching partitions it is about to revoke before the "
    "auto-commit that precedes the revocation (after it before)",
    "KAFKA-16460 (4.0.0)", ((4, 0, 0),))

CHANGES = (IDEMPOTENCE_BY_DEFAULT, IDEMPOTENCE_DEFAULT_APPLIED, IDEMPOTENT_EPOCH_BUMP,
           TXN_PARTITION_VERIFICATION, VERIFICATION_ABORTABLE, TRANSACTION_V2,
           CONSUMER_3_0_DEFAULTS, PENDING_SYNC_TIMEOUT, ILLEGAL_GENERATION_KEEPS_MEMBER_ID,
           COOPERATIVE_STICKY_UNVALIDATED, SUBSCRIPTION_GENERATION_FIELD,
           GENERATION_AWARE_CLAIMS, STABLE_OFFSET_FETCH, CONSUMER_GROUP_PROTOCOL,
           CLIENT_MEMBER_ID, AUTO_COMMIT_AT_POLL, UNREVOKED_EXIT_KEEPS_EPOCH,
           OWN_REVOCATION_RELEASED, EPOCH_ZERO_REJOIN, NEW_GROUP_COORDINATOR,
           REVOKING_STOPS_FETCH_FIRST)


@attrs.frozen
class Behaviours:
    """Every version-dependent behaviour of one release, as booleans the model reads."""

    release: Release
    idempotence_by_default: bool
    idempotence_default_applied: bool
    idempotent_epoch_bump: bool
    partition_verification: bool = False
    verification_abortable: bool = False
    transaction_v2: bool = False
    consumer_3_0_defaults: bool = True
    pending_sync_timeout: bool = True
    illegal_generation_keeps_member_id: bool = True
    cooperative_sticky_unvalidated: bool = True
    subscription_generation_field: bool = True
    generation_aware_claims: bool = True
    stable_offset_fetch: bool = True
    consumer_group_protocol: bool = True
    client_member_id: bool = True
    auto_commit_at_poll: bool = True
    unrevoked_exit_keeps_epoch: bool = True
    own_revocation_released: bool = True
    epoch_zero_rejoin: bool = True
    new_group_coordinator: bool = True
    revoking_stops_fetch_first: bool = True

    @property
    def default_acks(self) -> str:
        """``acks`` when not set: ``all`` since KIP-679 (3.0.0), ``1`` before."""
        return "all" if self.idempotence_by_default else "1"


def parse_release(name: str) -> Release:
    """The release a preset name stands for; the error lists the presets."""
    release = PRESETS.get(str(name).strip())
    if release is None:
        raise ValueError(f"must be one of {', '.join(PRESETS)}; got {name!r}")
    return release


def behaviours(name: str) -> Behaviours:
    release = parse_release(name)
    return Behaviours(
        release,
        idempotence_by_default=IDEMPOTENCE_BY_DEFAULT.present_in(release),
        idempotence_default_applied=IDEMPOTENCE_DEFAULT_APPLIED.present_in(release),
        idempotent_epoch_bump=IDEMPOTENT_EPOCH_BUMP.present_in(release),
        partition_verification=TXN_PARTITION_VERIFICATION.present_in(release),
        verification_abortable=VERIFICATION_ABORTABLE.present_in(release),
        transaction_v2=TRANSACTION_V2.present_in(release),
        consumer_3_0_defaults=CONSUMER_3_0_DEFAULTS.present_in(release),
        pending_sync_timeout=PENDING_SYNC_TIMEOUT.present_in(release),
        illegal_generation_keeps_member_id=ILLEGAL_GENERATION_KEEPS_MEMBER_ID.present_in(release),
        cooperative_sticky_unvalidated=COOPERATIVE_STICKY_UNVALIDATED.present_in(release),
        subscription_generation_field=SUBSCRIPTION_GENERATION_FIELD.present_in(release),
        generation_aware_claims=GENERATION_AWARE_CLAIMS.present_in(release),
        stable_offset_fetch=STABLE_OFFSET_FETCH.present_in(release),
        consumer_group_protocol=CONSUMER_GROUP_PROTOCOL.present_in(release),
        client_member_id=CLIENT_MEMBER_ID.present_in(release),
        auto_commit_at_poll=AUTO_COMMIT_AT_POLL.present_in(release),
        unrevoked_exit_keeps_epoch=UNREVOKED_EXIT_KEEPS_EPOCH.present_in(release),
        own_revocation_released=OWN_REVOCATION_RELEASED.present_in(release),
        epoch_zero_rejoin=EPOCH_ZERO_REJOIN.present_in(release),
        new_group_coordinator=NEW_GROUP_COORDINATOR.present_in(release),
        revoking_stops_fetch_first=REVOKING_STOPS_FETCH_FIRST.present_in(release),
    )
