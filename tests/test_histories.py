"""Every saved history under histories/ replays to its recorded verdict, and is minimal.

This is what keeps the saved counterexamples honest as the model evolves: a change that
alters what a schedule does shows up here as a divergence, not as a silently stale file.
And a counterexample with a needless step makes its reader hunt for that step's purpose,
so none may keep showing its anomaly after losing any single action before the settle
phase (kafkacheck.minimize makes them so; this checks every file, in about seven seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacheck.minimize import reproduce
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
    assert result.verdict.to_json() == saved.verdict


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
def test_saved_history_cannot_lose_an_action(path: Path) -> None:
    """Every history not marked ``"minimal": false`` (one whose minimisation ran out of
    its replay budget, kafkacheck.hunt.MINIMIZE_BUDGET_ACTIONS) is 1-minimal; one per
    file, so that pytest-xdist spreads the long ones."""
    saved = load_history(path)
    assert saved.settle_from is not None and saved.evidence, f"{path.name}: no evidence"
    keep = frozenset(saved.evidence)
    actions = saved.schedule[:saved.settle_from]
    assert reproduce(saved.config, actions, keep) is not None, path.name
    if saved.minimal:
        for i in range(len(actions)):
            shorter = actions[:i] + actions[i + 1:]
            assert reproduce(saved.config, shorter, keep) is None, \
                f"{path.name} still shows {sorted(keep)} without action {i}: {actions[i]!r}"
