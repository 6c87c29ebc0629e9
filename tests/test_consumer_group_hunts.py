"""The KIP-848 acceptance hunts: two consumers in one consumer-protocol group
(``group.protocol=consumer``) on replication that loses nothing, the rows of
``KIP_848_CELLS`` in the guarantee report.

Runs to the first find were measured without minimisation on 2026-12-03 and are in each
docstring; the "finds none" budget is 1.5 times the deepest find of the same loss on the
release before the fix (3.9, seeds 0 to 2: 364, 100 and 14 runs), with the same faults.
``--long-hunts`` multiplies every budget by ten.
"""

from __future__ import annotations

import pytest

from kafkacheck.hunt import hunt
from kafkacheck.matrix import KIP_848_CELLS, hunt_config

pytestmark = pytest.mark.hunt

AFTER_PROCESSING, AUTO_COMMIT_3_9, AUTO_COMMIT = KIP_848_CELLS
LOSS = frozenset({"processed-zero-times", "lost-write", "unseen", "never-consumed"})
# Not offset-regression: a commit request that outlived its timeout lands after a later
# commit and moves the offset back in Kafka too (tests/test_groups.py,
# test_a_timed_out_commit_sync_landing_after_the_next_commit_moves_the_offset_back).
OWNERSHIP = frozenset({"group-overlap", "unsettled"})
FIND_BUDGET = 1500
NONE_BUDGET = 550


def _hunt(settings: dict[str, str], target: frozenset[str], examples: int, seed: int = 0,
          faults: frozenset[str] | None = None):
    return hunt(hunt_config(settings), examples=examples, steps=100, seed=seed,
                target=target, out_dir=None, shrink=False, faults=faults)


# Every fault family but late requests: a heartbeat that outlived its connection can
# leave a partition without a consumer (test_consumer_group_protocol.py,
# test_a_late_heartbeat_answered_nowhere_leaves_a_partition_unowned; the guarantee
# report's KIP-848 auto-commit row), which is not what KAFKA-18641's fix is about.
NO_LATE_REQUESTS = frozenset({"broker-crash", "network-partition", "client-crash",
                              "client-pause"})


def test_before_kafka_18641_auto_commit_loses_records(hunt_budget: int) -> None:
    """3.9's background thread auto-commits allConsumed() whenever the interval passes
    (CommitRequestManager.poll), records poll() returned and not yet processed
    included; a crash then loses them.  Seed 1: 100 runs."""
    assert AUTO_COMMIT_3_9["kafka.version"] == "3.9"
    result = _hunt(AUTO_COMMIT_3_9, frozenset({"processed-zero-times"}),
                   FIND_BUDGET * hunt_budget, seed=1)
    assert "processed-zero-times" in result.anomalies


def test_since_kafka_18641_auto_commit_loses_nothing_and_keeps_one_owner(
        hunt_budget: int) -> None:
    """4.0+ auto-commits inside poll() only (apache/kafka PR #18737), so with the loop
    processing each poll's records every commit covers processed records; and the
    coordinator gives a partition only once its owner revoked it
    (CurrentAssignmentBuilder), so no two members own one.  Every fault family but late
    requests (NO_LATE_REQUESTS)."""
    budget = NONE_BUDGET * hunt_budget
    result = _hunt(AUTO_COMMIT, LOSS | OWNERSHIP, budget, faults=NO_LATE_REQUESTS)
    assert result.anomalies == {}
    assert result.runs >= budget


def test_consumer_protocol_commit_after_processing_duplicates(hunt_budget: int) -> None:
    """commitSync after processing is at-least-once under KIP-848 too: a member that
    dies between processing and committing leaves its records to the partition's next
    owner.  Seed 0: 8 runs."""
    result = _hunt(AFTER_PROCESSING, frozenset({"processed-more-than-once"}),
                   FIND_BUDGET * hunt_budget)
    assert "processed-more-than-once" in result.anomalies
