"""Every saved history under histories/ replays to its recorded verdict.

This is what keeps the saved counterexamples honest as the model evolves: a change that
alters what a schedule does shows up here as a divergence, not as a silently stale file.

Histories saved before hunts judged with the complete verdict (``invariants.verdict``:
model-aware and Jepsen's checkers) recorded the model-aware half only; their stats have no
``bad-anomaly-types``.  Until they are regenerated (``make hunt``), such a file must still
match that half exactly, and the complete verdict may only add to it.  Files written since
must match the complete verdict field for field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from invariants.check import check_events
from kafkacheck.replay import replay
from kafkacheck.storage import load_history

HISTORIES = sorted((Path(__file__).resolve().parent.parent / "histories").glob("*.json"))


def test_there_are_saved_histories() -> None:
    assert HISTORIES, "the guarantee report links histories; they must be committed"


def _judged_by_every_checker(verdict: dict) -> bool:
    return "bad-anomaly-types" in verdict.get("stats", {})


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
def test_saved_history_replays_to_its_recorded_verdict(path: Path) -> None:
    saved = load_history(path)
    result = replay(saved)
    assert not result.diverged, result.reason
    assert result.verdict is not None and saved.verdict is not None
    if _judged_by_every_checker(saved.verdict):
        assert result.verdict.to_json() == saved.verdict
        return
    assert check_events(saved.events).anomalies == saved.verdict["anomalies"]
    assert set(saved.verdict["anomalies"]) <= set(result.verdict.anomalies)
