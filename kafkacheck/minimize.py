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

import attrs

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


class ReplayBudgetSpent(Exception):
    """The minimiser has replayed as many candidates as it may."""


def _reduce(chunks: list[list[Any]], test: Callable[[list[list[Any]]], Run | None],
            best: Run) -> tuple[list[list[Any]], Run]:
    """Remove runs of chunks, halving the run length down to one chunk, keeping every
    removal ``test`` accepts."""
    size = max(1, len(chunks) // 2)
    while True:
        start = 0
        while start < len(chunks):
            candidate = chunks[:start] + chunks[start + size:]
            try:
                run = test(candidate)
            except ReplayBudgetSpent:
                raise _Interrupted(chunks, best) from None
            if run is not None:
                chunks, best = candidate, run
            else:
                start += size
        if size == 1:
            return chunks, best
        size //= 2


class _Interrupted(Exception):
    def __init__(self, chunks: list[list[Any]], best: Run) -> None:
        super().__init__("replay budget spent")
        self.chunks = chunks
        self.best = best


@attrs.frozen
class Minimized:
    """What the minimiser kept: the actions, their finished run, and whether they are
    1-minimal (False when ``max_replayed`` ran out first: reduced, not minimal)."""

    actions: list[Any]
    run: Run
    minimal: bool


def minimize(config: Config, actions: list[Any], keep: frozenset[str],
             decisions: Sequence[int] = (), progress: Progress | None = None,
             max_replayed: int | None = None) -> Minimized:
    """A 1-minimal sub-sequence of ``actions`` still showing ``keep``, and its run.

    ``actions`` must itself reproduce (it is the schedule before the settle phase of a
    run that showed ``keep``); ``decisions`` are the offsets where the driver's
    decisions begin.  ``max_replayed`` bounds the actions replayed over all candidates,
    a count and not a time, so the result is the same on any machine: a schedule of
    thousands of actions (a rolling restart's rounds) would otherwise take hours, and is
    then kept as far as it was reduced, marked not minimal."""
    best = reproduce(config, actions, keep)
    if best is None:
        raise ValueError("the schedule to minimise does not show the anomaly")
    bounds = sorted({0, *(d for d in decisions if 0 < d < len(actions)), len(actions)})
    chunks = [list(actions[a:b]) for a, b in zip(bounds, bounds[1:])]
    replays = replayed = 0

    def test(candidate: list[list[Any]]) -> Run | None:
        nonlocal replays, replayed
        flat = [x for chunk in candidate for x in chunk]
        if max_replayed is not None and replayed + len(flat) > max_replayed:
            raise ReplayBudgetSpent()
        replays += 1
        replayed += len(flat)
        return reproduce(config, flat, keep)

    minimal = True
    try:
        chunks, best = _reduce(chunks, test, best)
        singles = [[x] for chunk in chunks for x in chunk]
        while True:          # one action at a time, until a pass removes nothing
            before = len(singles)
            singles, best = _reduce(singles, test, best)
            if len(singles) == before:
                break
        chunks = singles
    except _Interrupted as stopped:
        chunks, best, minimal = stopped.chunks, stopped.best, False
    current = [x for chunk in chunks for x in chunk]
    if progress is not None:
        how = "minimised" if minimal else f"reduced (not minimal: {replays} replays)"
        progress(f"  {how} to {len(current)} actions (from {len(actions)})")
    return Minimized(current, best, minimal)
