"""Counterexamples with nothing to spare: 1-minimal schedules.

Hypothesis shrinks the *choices* that generated a run, which removes most of what is
irrelevant but can leave actions behind (a delivery inside a flush that did not matter, a
tick whose timer nothing waited for).  A reader who finds one needless step wonders what
it is for, so after shrinking the schedule before the settle phase is reduced further:
first in chunks, then one action at a time, keeping every removal after which the run
(replayed, then settled afresh) still shows the same anomalies, until no single action
can go.  An action that is no longer enabled where it now falls makes that candidate
invalid, never an error.

Everything here is deterministic: a candidate is judged by replaying it, never by time.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from kafkacheck.runner import Run
from model.config import Config

Progress = Callable[[str], None]


def reproduce(config: Config, actions: Iterable[Any], keep: frozenset[str]) -> Run | None:
    """The finished run of ``actions`` + the settle phase, if it shows all of ``keep``."""
    run = Run(config)
    for action in actions:
        if not run.cluster.is_enabled(action):
            return None
        run.apply(action)
    run.finish()
    return run if keep <= set(run.verdict().anomalies) else None


def minimize(config: Config, actions: list[Any], keep: frozenset[str],
             progress: Progress | None = None) -> tuple[list[Any], Run]:
    """A 1-minimal sub-sequence of ``actions`` still showing ``keep``, and its run.

    ``actions`` must itself reproduce (it is the schedule before the settle phase of a
    run that showed ``keep``)."""
    best = reproduce(config, actions, keep)
    if best is None:
        raise ValueError("the schedule to minimise does not show the anomaly")
    current = list(actions)
    size = len(current) // 2
    while size >= 1:
        start = 0
        while start < len(current):
            candidate = current[:start] + current[start + size:]
            run = reproduce(config, candidate, keep)
            if run is not None:
                current, best = candidate, run
            else:
                start += size
        size //= 2
    changed = True
    while changed:          # the chunk pass ends with size 1; repeat until a fixpoint
        changed = False
        i = 0
        while i < len(current):
            candidate = current[:i] + current[i + 1:]
            run = reproduce(config, candidate, keep)
            if run is not None:
                current, best, changed = candidate, run, True
            else:
                i += 1
    if progress is not None:
        progress(f"  minimised to {len(current)} actions (from {len(actions)})")
    return current, best
