"""Counterexamples with nothing to spare: 1-minimal schedules, found deterministically.

A hunt's failing run is reduced by replaying candidates, never by time: first whole
driver decisions are removed (a ``flush`` is many deliveries, a ``nemesis`` a fault plus
the clock steps after it), in halves, quarters, ... down to single decisions; then single
actions, until no single action before the settle phase can go without losing the
anomaly (1-minimal).  Every candidate is replayed and settled afresh; an action that is
no longer enabled where it now falls makes that candidate invalid, never an error.

Why not Hypothesis's shrinker: it replays whole generated runs, thousands of them for one
long stateful run, and only a wall-clock limit stops it, so the same hunt would save
different histories on a busy machine and a quiet one.  Removing what the driver decided
reaches the same kind of minimum with a cost bounded by the schedule's length.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from invariants.model_state import ModelBugError
from kafkacheck.runner import Run
from model.config import Config

Progress = Callable[[str], None]


class ModelBugInCandidate(Exception):
    """A candidate schedule broke a model invariant: every candidate is a run the model
    allows, so this is a model bug found while minimising; ``run`` shows it."""

    def __init__(self, error: Exception, run: Run) -> None:
        super().__init__(str(error))
        self.error = error
        self.run = run


def reproduce(config: Config, actions: Iterable[Any], keep: frozenset[str]) -> Run | None:
    """The finished run of ``actions`` + the settle phase, if it shows all of ``keep``."""
    run = Run(config)
    try:
        for action in actions:
            if not run.cluster.is_enabled(action):
                return None
            run.apply(action)
        run.finish()
    except ModelBugError as error:
        raise ModelBugInCandidate(error, run) from error
    return run if keep <= set(run.verdict().anomalies) else None


def _reduce(chunks: list[list[Any]], test: Callable[[list[list[Any]]], Run | None],
            best: Run) -> tuple[list[list[Any]], Run]:
    """Remove runs of chunks, halving the run length down to one chunk, keeping every
    removal ``test`` accepts."""
    size = max(1, len(chunks) // 2)
    while True:
        start = 0
        while start < len(chunks):
            candidate = chunks[:start] + chunks[start + size:]
            run = test(candidate)
            if run is not None:
                chunks, best = candidate, run
            else:
                start += size
        if size == 1:
            return chunks, best
        size //= 2


def minimize(config: Config, actions: list[Any], keep: frozenset[str],
             decisions: Sequence[int] = (), progress: Progress | None = None
             ) -> tuple[list[Any], Run]:
    """A 1-minimal sub-sequence of ``actions`` still showing ``keep``, and its run.

    ``actions`` must itself reproduce (it is the schedule before the settle phase of a
    run that showed ``keep``); ``decisions`` are the offsets where the driver's
    decisions begin."""
    best = reproduce(config, actions, keep)
    if best is None:
        raise ValueError("the schedule to minimise does not show the anomaly")
    bounds = sorted({0, *(d for d in decisions if 0 < d < len(actions)), len(actions)})
    chunks = [list(actions[a:b]) for a, b in zip(bounds, bounds[1:])]

    def test(candidate: list[list[Any]]) -> Run | None:
        return reproduce(config, [x for chunk in candidate for x in chunk], keep)

    chunks, best = _reduce(chunks, test, best)
    singles = [[x] for chunk in chunks for x in chunk]
    while True:          # one action at a time, until a pass removes nothing
        before = len(singles)
        singles, best = _reduce(singles, test, best)
        if len(singles) == before:
            break
    current = [x for (x,) in singles]
    if progress is not None:
        progress(f"  minimised to {len(current)} actions (from {len(actions)})")
    return current, best
