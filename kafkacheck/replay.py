"""Replay: re-execute a saved schedule and confirm it reproduces the recorded events.

The comparison is event by event, step by step, so a divergence is reported at the first
step whose events differ (a changed model, or an edited file), not just "something
differs".  Only when the events match is the fresh verdict meaningful.
"""

from __future__ import annotations

import json

import attrs

from invariants.check import Verdict
from invariants.model_state import ModelBugError
from kafkacheck.runner import Run
from kafkacheck.storage import SavedHistory
from model.actions import ActionError
from model.history import Event


@attrs.frozen
class ReplayResult:
    verdict: Verdict | None
    diverged_at: int | None = None
    reason: str = ""

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


def _canonical(event: Event) -> str:
    return json.dumps(event.to_json(), sort_keys=True)


def replay(saved: SavedHistory) -> ReplayResult:
    run = Run(saved.config)
    recorded = saved.events
    seen = 0
    for step, action in enumerate(saved.schedule):
        try:
            run.apply(action)
        except ActionError:
            return ReplayResult(None, step, f"step {step}: {action!r} is not enabled when replayed")
        except ModelBugError as error:
            raise ModelBugError(error.name, {**error.detail, "step": step}) from None
        produced = run.cluster.history[seen:]
        for offset, event in enumerate(produced):
            index = seen + offset
            if index >= len(recorded):
                return ReplayResult(None, step, f"step {step}: produced event {index} "
                                    f"({event.f}) that the file does not have")
            if _canonical(event) != _canonical(recorded[index]):
                return ReplayResult(None, step, f"step {step}: event {index} differs: "
                                    f"replayed {_canonical(event)} but recorded "
                                    f"{_canonical(recorded[index])}")
        seen += len(produced)
    if seen != len(recorded):
        return ReplayResult(None, len(saved.schedule), f"the file has {len(recorded) - seen} "
                            f"events after the last step's (event {seen} onward)")
    return ReplayResult(run.verdict())
