"""Every saved history under histories/ replays to its recorded verdict.

This is what keeps the saved counterexamples honest as the model evolves: a change that
alters what a schedule does shows up here as a divergence, not as a silently stale file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacheck.replay import replay
from kafkacheck.storage import load_history

HISTORIES = sorted((Path(__file__).resolve().parent.parent / "histories").glob("*.json"))


def test_there_are_saved_histories() -> None:
    assert HISTORIES, "the guarantee report links histories; they must be committed"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
def test_saved_history_replays_to_its_recorded_verdict(path: Path) -> None:
    saved = load_history(path)
    result = replay(saved)
    assert not result.diverged, result.reason
    assert result.verdict is not None and saved.verdict is not None
    assert sorted(result.verdict.anomalies) == sorted(saved.verdict["anomalies"])
    assert result.verdict.anomalies == saved.verdict["anomalies"]
