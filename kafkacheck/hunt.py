"""Hunting: let Hypothesis drive the model under one configuration, save what it finds.

A hunt stops at the first run showing an anomaly it is looking for, shrinks it to a
minimal schedule, and saves that run under the output directory.  ``hunt_all`` repeats,
ignoring what earlier rounds found, until a round finds nothing new: that is how the
guarantee report lists every kind of anomaly a configuration shows, each with its own
minimal history.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import attrs
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import run_state_machine_as_test

from kafkacheck.machine import AnomalyFound, machine_for
from kafkacheck.storage import save_history
from model.config import Config

Progress = Callable[[str], None]


@attrs.frozen
class HuntResult:
    config: Config
    examples: int
    steps: int
    seed: int
    anomalies: dict[str, list[dict]]
    path: Path | None
    runs: int
    steps_run: int
    seconds: float

    @property
    def found(self) -> bool:
        return bool(self.anomalies)


def hunt(config: Config, *, examples: int = 100, steps: int = 60, seed: int = 0,
         ignore: frozenset[str] = frozenset(), target: frozenset[str] | None = None,
         out_dir: Path | None = Path("histories"), shrink: bool = True,
         progress: Progress | None = None) -> HuntResult:
    """One hunt; returns what it found (and where it saved it).

    ``shrink=False`` skips minimising the counterexample: faster, for tests that only
    need to know whether an anomaly is found."""
    machine = machine_for(config, ignore, target)
    if progress is not None:
        original_init = machine.__init__

        def init_with_progress(self: object) -> None:
            original_init(self)  # type: ignore[misc]
            if machine.runs % 200 == 0:
                progress(f"  {machine.runs} runs, {machine.steps} steps")

        machine.__init__ = init_with_progress  # type: ignore[method-assign]
    hypothesis_settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        derandomize=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
        report_multiple_bugs=False,
        phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    started = time.perf_counter()
    anomalies: dict[str, list[dict]] = {}
    path = None
    try:
        run_state_machine_as_test(hypothesis_seed(seed)(machine), settings=hypothesis_settings)
    except AnomalyFound:
        assert machine.last_failure is not None
        run, verdict = machine.last_failure
        anomalies = {k: v for k, v in verdict.anomalies.items() if k in verdict.invalid
                     and k not in ignore and (target is None or k in target)}
        if out_dir is not None:
            path = save_history(Path(out_dir), config, run.schedule, run.cluster.history,
                                verdict, seed, headline=min(anomalies) if anomalies else None)
    return HuntResult(config, examples, steps, seed, anomalies, path, machine.runs,
                      machine.steps, time.perf_counter() - started)


def hunt_all(config: Config, *, examples: int = 100, steps: int = 60, seed: int = 0,
             out_dir: Path | None = Path("histories"), max_rounds: int = 6,
             progress: Progress | None = None) -> list[HuntResult]:
    """Hunt until a round finds nothing new; every round's finding is saved."""
    results: list[HuntResult] = []
    ignore: frozenset[str] = frozenset()
    for round_number in range(max_rounds):
        result = hunt(config, examples=examples, steps=steps, seed=seed + round_number,
                      ignore=ignore, out_dir=out_dir, progress=progress)
        results.append(result)
        if not result.found:
            break
        if progress is not None:
            progress(f"  found {', '.join(sorted(result.anomalies))} -> {result.path}")
        ignore = ignore | frozenset(result.anomalies)
    return results
