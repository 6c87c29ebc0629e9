"""The acceptance hunts: Kafka-documented unsafe configurations must show their anomaly,
documented safe ones must not, under the default faults (crashes, partitions, clock,
client crashes).

A "finds" test stops at the first run showing the anomaly, so it is usually quick; its
budget is an upper bound.  A "finds none" test runs its whole budget.  Shrinking is off
here (it only matters for saved counterexamples).
"""

from __future__ import annotations

import pytest

from kafkacheck.hunt import hunt
from kafkacheck.matrix import hunt_config

pytestmark = pytest.mark.hunt

LOSS = frozenset({"lost-write", "processed-zero-times"})
UNSAFE_VISIBILITY = frozenset({"uncommitted-read", "committed-prefix-changed",
                               "isr-log-mismatch", "hw-exceeds-isr-leo"})
SAFE_PRODUCER = {"acks": "all", "min.insync.replicas": "2"}


def _hunt(settings: dict[str, str], target: frozenset[str], examples: int, seed: int = 0):
    return hunt(hunt_config(settings), examples=examples, steps=100, seed=seed,
                target=target, out_dir=None, shrink=False)


def test_acks_1_loses_acknowledged_writes(hunt_budget: int) -> None:
    result = _hunt({"acks": "1"}, frozenset({"lost-write"}), 1500 * hunt_budget)
    assert "lost-write" in result.anomalies


def test_acks_0_loses_writes(hunt_budget: int) -> None:
    result = _hunt({"acks": "0"}, frozenset({"lost-write"}), 1500 * hunt_budget)
    assert "lost-write" in result.anomalies


def test_acks_all_with_min_insync_2_loses_nothing_and_reads_only_committed(
        hunt_budget: int) -> None:
    result = _hunt(SAFE_PRODUCER, LOSS | UNSAFE_VISIBILITY, 300 * hunt_budget)
    assert result.anomalies == {}
    assert result.runs >= 300 * hunt_budget


def test_commit_before_processing_loses_records(hunt_budget: int) -> None:
    settings = {**SAFE_PRODUCER, "kafkacheck.commit.strategy": "before-processing"}
    result = _hunt(settings, frozenset({"processed-zero-times"}), 1500 * hunt_budget)
    assert "processed-zero-times" in result.anomalies


def test_commit_after_processing_loses_nothing(hunt_budget: int) -> None:
    settings = {**SAFE_PRODUCER, "kafkacheck.commit.strategy": "after-processing"}
    result = _hunt(settings, LOSS, 300 * hunt_budget)
    assert result.anomalies == {}


def test_commit_after_processing_duplicates(hunt_budget: int) -> None:
    """At-least-once is not exactly-once: a crash between processing and commit
    makes the restarted consumer process records again."""
    settings = {**SAFE_PRODUCER, "kafkacheck.commit.strategy": "after-processing"}
    result = _hunt(settings, frozenset({"processed-more-than-once"}), 1500 * hunt_budget)
    assert "processed-more-than-once" in result.anomalies


def test_unclean_leader_election_loses_committed_records(hunt_budget: int) -> None:
    settings = {**SAFE_PRODUCER, "unclean.leader.election.enable": "true"}
    result = _hunt(settings, frozenset({"committed-prefix-changed", "lost-write"}),
                   2000 * hunt_budget)
    assert result.anomalies


def test_retries_without_idempotence_reorder_keys(hunt_budget: int) -> None:
    """max.in.flight.requests.per.connection > 1 with retries and no idempotence: a
    retried batch can land after a later one (Kafka documents this)."""
    result = _hunt({"acks": "all"}, frozenset({"reorder"}), 1500 * hunt_budget)
    assert "reorder" in result.anomalies


def test_one_request_in_flight_keeps_per_key_order(hunt_budget: int) -> None:
    settings = {"acks": "all", "max.in.flight.requests.per.connection": "1"}
    result = _hunt(settings, frozenset({"reorder"}), 300 * hunt_budget)
    assert result.anomalies == {}
