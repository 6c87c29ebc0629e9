"""The acceptance hunts: Kafka-documented unsafe configurations must show their anomaly,
documented safe ones must not, under the default faults (crashes, partitions, nemeses,
clock, client crashes).

A "finds" test stops at the first run showing the anomaly, so it is usually quick; its
budget is an upper bound.  A "finds none" test runs its whole budget, which is sized from
``benchmarks/seeded_bugs.py``: realistic bugs planted in the model are found by hunts of
the safe configuration within ``SAFE_BUDGET`` runs (docs/performance.md), so a clean
result over that many runs means something.  ``--long-hunts`` multiplies every budget by
ten.  Minimisation is off here (it only matters for saved counterexamples).
"""

from __future__ import annotations

import pytest

from invariants.guarantees import guarantee
from kafkacheck.hunt import hunt
from kafkacheck.matrix import hunt_config
from tests.seeded import seeded_bugs

pytestmark = pytest.mark.hunt

# What a safe configuration must never show, whatever the faults: loss, reads of
# uncommitted data, an offset holding two values, or a cluster that never recovers.
NEVER = frozenset({"lost-write", "unseen", "processed-zero-times", "uncommitted-read",
                   "inconsistent-offsets", "committed-prefix-changed", "unsettled", "G1a"})
SAFE_PRODUCER = {"acks": "all", "min.insync.replicas": "2"}
SAFE_BUDGET = 600      # runs; benchmarks/seeded_bugs.py: the deepest planted bug found needed 571
FIND_BUDGET = 1500     # an upper bound: these stop at the first find


def _hunt(settings: dict[str, str], target: frozenset[str], examples: int, seed: int = 0,
          faults: frozenset[str] | None = None):
    return hunt(hunt_config(settings), examples=examples, steps=100, seed=seed,
                target=target, out_dir=None, shrink=False, faults=faults)


def test_acks_1_loses_acknowledged_writes(hunt_budget: int) -> None:
    result = _hunt({"acks": "1"}, frozenset({"lost-write"}), FIND_BUDGET * hunt_budget)
    assert "lost-write" in result.anomalies


def test_acks_0_loses_writes(hunt_budget: int) -> None:
    result = _hunt({"acks": "0"}, frozenset({"lost-write"}), FIND_BUDGET * hunt_budget)
    assert "lost-write" in result.anomalies


def test_acks_all_with_min_insync_2_loses_nothing_and_reads_only_committed(
        hunt_budget: int) -> None:
    result = _hunt(SAFE_PRODUCER, NEVER, SAFE_BUDGET * hunt_budget)
    assert result.anomalies == {}
    assert result.runs >= SAFE_BUDGET * hunt_budget


def test_commit_before_processing_loses_records(hunt_budget: int) -> None:
    settings = {**SAFE_PRODUCER, "kafkacheck.commit.strategy": "before-processing"}
    result = _hunt(settings, frozenset({"processed-zero-times"}), FIND_BUDGET * hunt_budget)
    assert "processed-zero-times" in result.anomalies


def test_commit_after_processing_loses_nothing(hunt_budget: int) -> None:
    settings = {**SAFE_PRODUCER, "kafkacheck.commit.strategy": "after-processing"}
    result = _hunt(settings, NEVER, SAFE_BUDGET * hunt_budget)
    assert result.anomalies == {}
    assert result.runs >= SAFE_BUDGET * hunt_budget


def test_commit_after_processing_duplicates(hunt_budget: int) -> None:
    """At-least-once is not exactly-once: a crash between processing and commit
    makes the restarted consumer process records again."""
    settings = {**SAFE_PRODUCER, "kafkacheck.commit.strategy": "after-processing"}
    result = _hunt(settings, frozenset({"processed-more-than-once"}), FIND_BUDGET * hunt_budget)
    assert "processed-more-than-once" in result.anomalies


def test_unclean_leader_election_loses_acknowledged_writes(hunt_budget: int) -> None:
    """The acceptance hunt of the truthful-core issue: `kafkacheck hunt --set acks=all
    --set min.insync.replicas=2 --set unclean.leader.election.enable=true` (seed 0)
    finds an acknowledged write lost, and the configuration is then not
    at-least-once."""
    settings = {**SAFE_PRODUCER, "unclean.leader.election.enable": "true"}
    result = _hunt(settings, frozenset({"lost-write"}), FIND_BUDGET * hunt_budget)
    assert "lost-write" in result.anomalies
    assert guarantee(result.anomalies) in ("at-most-once", "none")


NO_IDEMPOTENCE = {"acks": "all", "enable.idempotence": "false"}


def test_retries_without_idempotence_reorder_keys(hunt_budget: int) -> None:
    """max.in.flight.requests.per.connection > 1 with retries and no idempotence: a
    retried batch can land after a later one (Kafka documents this)."""
    result = _hunt(NO_IDEMPOTENCE, frozenset({"reorder"}), FIND_BUDGET * hunt_budget)
    assert "reorder" in result.anomalies


def test_retries_without_idempotence_duplicate(hunt_budget: int) -> None:
    """A retried batch whose first attempt was written is written again."""
    result = _hunt(NO_IDEMPOTENCE, frozenset({"duplicate"}), FIND_BUDGET * hunt_budget)
    assert "duplicate" in result.anomalies


def test_one_request_in_flight_keeps_per_key_order(hunt_budget: int) -> None:
    settings = {**NO_IDEMPOTENCE, "max.in.flight.requests.per.connection": "1"}
    result = _hunt(settings, frozenset({"reorder"}), SAFE_BUDGET * hunt_budget)
    assert result.anomalies == {}


def test_idempotence_keeps_retries_from_duplicating_or_reordering(hunt_budget: int) -> None:
    """Kafka's idempotent producer (KIP-98, KIP-360): retries after lost responses
    (requests that time out and land late, up to five in flight) and producer restarts
    write no duplicate and keep per-key order while each partition keeps its leader, as
    long as no batch runs out of delivery.timeout.ms (set to its maximum here; see the
    next test).  Leader changes are left out: Kafka's own idempotence does not hold
    across them (the failover and kill tests below).  The budget finds a planted
    duplicate-window bug (test_the_idempotence_budget_finds_a_planted_bug)."""
    bug = seeded_bugs().BY_NAME["duplicate-window-of-one"]
    result = _hunt(bug.settings, bug.never, SAFE_BUDGET * hunt_budget, faults=bug.faults)
    assert result.anomalies == {}
    assert result.runs >= SAFE_BUDGET * hunt_budget


@pytest.mark.long_hunt
def test_an_expired_batch_lets_the_idempotent_producer_duplicate() -> None:
    """A model finding: with Kafka's default delivery.timeout.ms a batch can expire while
    its requests are still travelling; the epoch bump that resolves its sequence
    (TransactionManager.canRetry, KIP-360) restarts the next batch's sequence at 0, and a
    late request of the old epoch lands first: one acknowledged send, two records.  The
    same faults as the test above, no broker kill.  Runs to the first find by seed
    (0 to 4), each late request read only once the one ahead of it on its connection is
    answered: none in 5,000, none in 5,000, 3,653, 5,971, 441, so the hunt is a long one
    (seed 4); the default suite replays it step by step:
    tests/test_idempotence.py::test_an_expired_batch_and_its_epoch_bump_write_a_late_request_twice."""
    bug = seeded_bugs()
    result = _hunt({"acks": "all"}, frozenset({"duplicate"}), 5000, seed=4,
                   faults=bug.IDEMPOTENT_FAULTS)
    assert "duplicate" in result.anomalies


def test_the_idempotence_budget_finds_a_planted_bug() -> None:
    bug = seeded_bugs().BY_NAME["duplicate-window-of-one"]
    with bug.plant():
        result = _hunt(bug.settings, bug.never, SAFE_BUDGET, faults=bug.faults)
    assert "duplicate" in result.anomalies


def test_a_leader_failover_can_duplicate_an_idempotent_producers_batch(
        hunt_budget: int) -> None:
    """A model finding (2026-12-02), read step by step against Kafka's source: around a
    leader change the producer's later batch of a partition reaches the new leader first;
    with no state for the producer it is accepted at any sequence
    (ProducerAppendInfo.checkSequence), so the earlier batch's retry is
    OUT_OF_ORDER_SEQUENCE_NUMBER and, being the next sequence, bumps the epoch and
    renumbers both (TransactionManager.canRetry): the later record is written twice.
    Network cuts and client crashes, no broker killed.  Runs to the first find by seed
    (0 to 4, a broker reading a producer connection's requests one at a time): none in
    3,000, 287, none in 3,000, 494, 1,574; this test runs seed 1.  Deterministic case:
    tests/test_idempotence.py::test_a_new_leader_without_the_producers_state_lets_a_failover_duplicate_and_reorder."""
    result = _hunt(seeded_bugs().IDEMPOTENT, frozenset({"duplicate"}),
                   FIND_BUDGET * hunt_budget, seed=1,
                   faults=frozenset({"network-partition", "client-crash"}))
    assert "duplicate" in result.anomalies


def test_a_leader_restarted_after_a_kill_can_duplicate_an_idempotent_producers_batch(
        hunt_budget: int) -> None:
    """A model finding, confirmed on real Kafka 4.4.0 and 3.9.1 (docs/real-kafka.md;
    tests/real/test_long.py replays it): a broker restarted after a kill recovers its producer
    state from a snapshot holding each producer's last batch only
    (LogLoader.recoverSegment, ProducerStateManager.readSnapshot).  Elected again, it
    answers the retry of an earlier unacknowledged batch OUT_OF_ORDER_SEQUENCE_NUMBER; the
    client takes that as a gap, bumps its epoch and renumbers the batch from 0
    (TransactionManager.canRetry, bumpIdempotentProducerEpoch), and the broker appends
    it again.  A broker reads a producer connection's requests one at a time, so the
    batches whose answers are lost must each be answered (replicated) before the next is
    read: runs to the first find by seed (0 to 3): none in 4,000, 2,697, 1,186, 2,788;
    this test runs seed 2."""
    result = _hunt({"acks": "all"}, frozenset({"duplicate"}), FIND_BUDGET * hunt_budget,
                   seed=2)
    assert "duplicate" in result.anomalies


def test_kafka_3_0_0_defaults_duplicate(hunt_budget: int) -> None:
    """KAFKA-13598: Kafka 3.0.0's client ignored the enable.idempotence default, so its
    default producer retries without idempotence and duplicates."""
    result = _hunt({"kafka.version": "3.0.0"}, frozenset({"duplicate"}),
                   FIND_BUDGET * hunt_budget)
    assert "duplicate" in result.anomalies


def test_an_application_resend_after_a_producer_restart_duplicates(hunt_budget: int) -> None:
    """Idempotence covers the producer's own retries only: an application that resends
    after a restart (a new producer id) writes duplicates."""
    settings = {"acks": "all", "kafkacheck.producer.loop": "resend-after-restart"}
    result = _hunt(settings, frozenset({"duplicate"}), FIND_BUDGET * hunt_budget)
    assert "duplicate" in result.anomalies


@pytest.mark.parametrize("bug", ["isr-rejoin-before-hw", "lost-request-not-written",
                                 "no-leader-epoch-bump"])
def test_the_safe_budget_is_deep_enough_to_find_planted_bugs(bug: str) -> None:
    """The "finds nothing" hunts above mean something only if the same hunt (settings,
    seed, budget) finds a realistic bug when one is planted: each of these stops it within
    SAFE_BUDGET, as an anomaly it must never show or a broken model invariant."""
    from kafkacheck.hunt import ModelBugFound
    with seeded_bugs().BY_NAME[bug].plant():
        try:
            result = _hunt(SAFE_PRODUCER, NEVER, SAFE_BUDGET)
        except ModelBugFound as found:
            assert found.runs <= SAFE_BUDGET
            return
    assert set(result.anomalies) & NEVER


# -- transactions (KIP-98, KIP-890) -----------------------------------------------------

TRANSACTIONAL = {**SAFE_PRODUCER, "transactional.id": "app"}
READ_COMMITTED = {**TRANSACTIONAL, "isolation.level": "read_committed"}
# What read_committed consumers of a transactional producer must never see.
NEVER_TXN = NEVER | {"torn-transaction", "hanging-transaction", "duplicate"}


def test_read_uncommitted_consumers_read_aborted_transactions(hunt_budget: int) -> None:
    """isolation.level=read_uncommitted (the consumer default) returns records of aborted
    transactions: Jepsen's G1a."""
    result = _hunt(TRANSACTIONAL, frozenset({"G1a"}), FIND_BUDGET * hunt_budget)
    assert "G1a" in result.anomalies


def test_read_committed_sees_only_committed_transactions(hunt_budget: int) -> None:
    """Kafka 4.x with read_committed: no aborted read, no torn or hanging transaction, no
    lost or duplicated write, under every fault family (late requests and client
    pauses included)."""
    result = _hunt(READ_COMMITTED, NEVER_TXN, SAFE_BUDGET * hunt_budget)
    assert result.anomalies == {}
    assert result.runs >= SAFE_BUDGET * hunt_budget


def test_a_fenced_zombie_producer_never_becomes_visible(hunt_budget: int) -> None:
    """Two producer instances share one transactional.id (a replacement started while
    the old one was paused): each InitProducerId fences the other (PrepareEpochFence,
    then the abort of its open transaction), and read_committed consumers see nothing
    torn, aborted or lost.  The deterministic case is
    tests/test_transactions.py::test_a_new_instance_fences_the_old_one_and_aborts_its_open_transaction."""
    settings = {**READ_COMMITTED, "kafkacheck.producers": "2",
                "kafkacheck.transactional.id.shared": "true"}
    result = _hunt(settings, NEVER_TXN, SAFE_BUDGET * hunt_budget)
    assert result.anomalies == {}


LATE = frozenset({"late-request"})
# A transaction that outlives its batches: the broker's maximum transaction.timeout.ms
# (15 minutes), as stream processors set it.  With the 60 s default the coordinator
# aborts a stalled transaction and bumps its epoch (fencing the late produce) before a
# batch can run out of delivery.timeout.ms (120 s); the long hunt below shows the
# default still hangs, through a failed epoch fence, but about eight times more rarely.
LONG_TRANSACTIONS = {**READ_COMMITTED, "transaction.timeout.ms": "900000"}


# Runs to the first find with late requests only (a late request lands at most 102.2 s
# after it was sent, tcp_orphan_retries; a broker reads a producer connection's requests
# one at a time), seeds 0 to 4: the 3.5 hanging transaction in 623, 485, 401, 6 and
# 85; the 3.9 KAFKA-17754 anomaly in 12, 95, 84, 147 and 502.  A "finds none" contrast
# runs three times the mean.
KAFKA_14402_DEPTH = 320
KAFKA_17754_DEPTH = 168


def test_kafka_3_5_hangs_a_transaction_that_outlives_its_batches(hunt_budget: int) -> None:
    """KIP-890 (KAFKA-14402): before 3.6 a produce that outlives its request timeout
    and lands after its transaction's ABORT marker opens a transaction nothing closes.
    Only the fault the bug needs (late requests) is used; seed 0 finds it in 623 runs.
    Deterministic case: tests/test_transactions.py (3.5 versus 3.6)."""
    result = _hunt({**LONG_TRANSACTIONS, "kafka.version": "3.5"},
                   frozenset({"hanging-transaction"}), FIND_BUDGET * hunt_budget, faults=LATE)
    assert "hanging-transaction" in result.anomalies


def test_kafka_3_6_verification_refuses_the_late_produce(hunt_budget: int) -> None:
    """KIP-890 part 1: the partition leader asks the coordinator whether the producer's
    transaction is open (AddPartitionsToTxn verifyOnly) before appending, so the same
    hunt finds no hanging transaction in three times the runs 3.5 needs on average."""
    budget = 3 * KAFKA_14402_DEPTH * hunt_budget
    result = _hunt({**LONG_TRANSACTIONS, "kafka.version": "3.6"},
                   frozenset({"hanging-transaction"}), budget, faults=LATE)
    assert result.anomalies == {}
    assert result.runs >= budget


KAFKA_17754 = frozenset({"torn-transaction", "G1a", "lost-write"})


def test_kafka_3_9_lets_a_late_end_txn_into_the_next_transaction(hunt_budget: int) -> None:
    """KAFKA-17754 (KIP-890 part 2): under the classic protocol (transaction version 1,
    3.9 and earlier) a producer keeps its epoch from one transaction to the next, so an
    EndTxn that outlived its request timeout lands in the next transaction and ends the
    part of it already added: an aborted read, a torn transaction or a lost write.
    Late requests only; seed 0 finds it in 12 runs.  Deterministic case:
    tests/test_transactions.py (3.9 versus 4.0)."""
    result = _hunt({**LONG_TRANSACTIONS, "kafka.version": "3.9"}, KAFKA_17754,
                   FIND_BUDGET * hunt_budget, faults=LATE)
    assert result.anomalies.keys() & KAFKA_17754


def test_kafka_4_0_transaction_version_2_fences_the_late_end_txn(hunt_budget: int) -> None:
    """Transaction version 2 (4.0 broker and client) bumps the epoch at every EndTxn,
    so the last transaction's late EndTxn is fenced (PRODUCER_FENCED) instead of ending
    the next one: the same hunt finds none in three times the runs 3.9 needs on
    average."""
    budget = 3 * KAFKA_17754_DEPTH * hunt_budget
    result = _hunt({**LONG_TRANSACTIONS, "kafka.version": "4.0"}, KAFKA_17754, budget,
                   faults=LATE)
    assert result.anomalies == {}
    assert result.runs >= budget


@pytest.mark.long_hunt
def test_kafka_3_5_hangs_a_transaction_on_a_produce_delayed_past_its_abort() -> None:
    """The same bug with Kafka's default transaction.timeout.ms (60 s): a transaction
    the coordinator times out itself is aborted at a bumped epoch
    (``TransactionCoordinator.abortTimedOutTransactions``), whose markers fence the late
    produce, so the hang needs the application's own abort at the old epoch first.
    Runs to the first find by seed, a broker reading a producer connection's requests
    one at a time: none in 4,000 (seed 0), 1,376, 4,552, none in 6,000, 345 (seeds
    1 to 4); this test runs seed 1."""
    result = _hunt({**READ_COMMITTED, "kafka.version": "3.5"},
                   frozenset({"hanging-transaction"}), 4000, seed=1, faults=LATE)
    assert "hanging-transaction" in result.anomalies


@pytest.mark.long_hunt
def test_kafka_3_6_verification_stops_hanging_transactions() -> None:
    result = _hunt({**READ_COMMITTED, "kafka.version": "3.6"},
                   frozenset({"hanging-transaction"}), 4000, faults=LATE)
    assert result.anomalies == {}
