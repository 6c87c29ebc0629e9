"""Hunting: let Hypothesis drive the model under one configuration, save what it finds.

A hunt stops at the first run showing an anomaly it is looking for, reduces its schedule
to a 1-minimal one (:mod:`kafkacheck.minimize`; one too long to finish within
``MINIMIZE_BUDGET_ACTIONS`` replayed actions is saved reduced and marked not minimal) and
saves that run under the output directory.  ``hunt_all`` repeats, ignoring what earlier rounds found, until a round
finds nothing new: that is how the guarantee report lists every kind of anomaly a
configuration shows, each with its own minimal history.

Reproducibility: the same seed and settings give the same findings however a hunt is
started.  Nothing outside the seed may steer it:

* Hypothesis only generates: its shrinker stops on a wall-clock limit, so it would save
  different histories on a busy machine and a quiet one; the reduction that follows
  replays candidates deterministically.
* Hypothesis mixes into its integer draws "local constants" scraped from the source of
  every non-library module loaded so far, so the same hunt drew differently once
  ``kafkacheck.cli`` (which holds the literal 130) had been imported, and would again
  under pytest with test modules loaded.  A hunt runs with that pool empty.

A run that breaks a model-state invariant is a bug in kafkacheck, not a finding: the hunt
stops with :class:`ModelBugFound`, after saving the shrunk schedule under ``model-bugs/``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Iterator

import attrs
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.internal.conjecture import providers as hypothesis_providers
from hypothesis.stateful import run_state_machine_as_test

from invariants.model_state import ModelBugError
from kafkacheck.machine import AnomalyFound, machine_for
from kafkacheck.minimize import ModelBugInCandidate, minimize
from kafkacheck.storage import save_history
from model.config import Config

Progress = Callable[[str], None]

MODEL_BUGS = Path("model-bugs")


class ModelBugFound(Exception):
    """A hunt broke a model-state invariant: kafkacheck's model is wrong somewhere."""

    def __init__(self, error: ModelBugError, path: Path | None, runs: int = 0) -> None:
        self.error = error
        self.path = path
        self.runs = runs
        where = f"; the schedule is saved in {path}" if path else ""
        super().__init__(f"{error}{where}")

    def __reduce__(self) -> tuple[object, ...]:
        return (ModelBugFound, (self.error, self.path, self.runs))


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
    actions: int = 0           # the saved counterexample's actions before settling
    settle_actions: int = 0    # ... and in its settle phase
    faults: frozenset[str] | None = None   # the fault families allowed (None: all)
    minimal: bool = True       # the saved counterexample is 1-minimal (not just reduced)

    @property
    def found(self) -> bool:
        return bool(self.anomalies)


@contextlib.contextmanager
def _without_local_constants() -> Iterator[None]:
    """Generation that depends only on the seed, not on which modules are loaded."""
    original = getattr(hypothesis_providers, "_get_local_constants", None)
    cache = getattr(hypothesis_providers, "CONSTANTS_CACHE", None)
    if original is None:
        yield
        return
    empty = hypothesis_providers.Constants()
    hypothesis_providers._get_local_constants = lambda: empty
    if cache is not None:
        cache.cache.clear()
    try:
        yield
    finally:
        hypothesis_providers._get_local_constants = original
        if cache is not None:
            cache.cache.clear()


# Actions the minimiser may replay for one counterexample (about five minutes on this
# project's two-core machine): every saved history of the matrix's other rows is
# minimised well within it; a cooperative group's rolling restart is thousands of
# actions, whose full minimisation would take hours, and is saved reduced.
MINIMIZE_BUDGET_ACTIONS = 2_000_000


def hunt(config: Config, *, examples: int = 100, steps: int = 60, seed: int = 0,
         ignore: frozenset[str] = frozenset(), target: frozenset[str] | None = None,
         out_dir: Path | None = Path("histories"), shrink: bool = True,
         progress: Progress | None = None,
         faults: frozenset[str] | None = None) -> HuntResult:
    """One hunt; returns what it found (and where it saved it).

    ``shrink=False`` skips minimising the counterexample: faster, for tests and
    benchmarks that only need to know whether an anomaly is found.  ``faults`` limits
    the fault families (``kafkacheck.machine.FAULT_FAMILIES``) the hunt may use."""
    machine = machine_for(config, ignore, target, faults)
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
        # Hypothesis only generates; kafkacheck.minimize reduces what it finds.
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    started = time.perf_counter()
    anomalies: dict[str, list[dict]] = {}
    path = None
    counts = (0, 0)
    minimal = True
    try:
        with _without_local_constants():
            run_state_machine_as_test(hypothesis_seed(seed)(machine),
                                      settings=hypothesis_settings)
    except AnomalyFound:
        assert machine.last_failure is not None
        run, verdict = machine.last_failure
        wanted = frozenset(k for k in verdict.anomalies if k in verdict.invalid
                           and k not in ignore and (target is None or k in target))
        minimal = False
        if shrink:
            try:
                reduced = minimize(config, run.actions, wanted, run.decisions, progress,
                                   max_replayed=MINIMIZE_BUDGET_ACTIONS)
                run, minimal = reduced.run, reduced.minimal
            except ModelBugInCandidate as found:
                raise ModelBugFound(found.error, _save_model_bug(config, found.run, seed)
                                    if out_dir is not None else None, machine.runs) from found
            verdict = run.verdict()
        anomalies = {k: v for k, v in verdict.anomalies.items() if k in wanted}
        counts = (len(run.actions), len(run.schedule) - len(run.actions))
        if out_dir is not None:
            path = save_history(Path(out_dir), config, run.schedule, run.cluster.history,
                                verdict, seed, headline=min(anomalies) if anomalies else None,
                                settle_from=run.settle_from, evidence=anomalies,
                                minimal=minimal)
    except ModelBugError as error:
        raise ModelBugFound(error, _save_model_bug(config, machine.last_bug, seed)
                            if out_dir is not None else None, machine.runs) from error
    return HuntResult(config, examples, steps, seed, anomalies, path, machine.runs,
                      machine.steps, time.perf_counter() - started, *counts, faults=faults,
                      minimal=minimal)


def _save_model_bug(config: Config, run: object, seed: int) -> Path | None:
    """Keep the shrunk schedule that broke the model, for whoever fixes it."""
    from kafkacheck.runner import Run

    if not isinstance(run, Run):
        return None
    return save_history(MODEL_BUGS, config, run.schedule, run.cluster.history,
                        run.verdict(), seed, headline="model-bug")


def hunt_all(config: Config, *, examples: int = 100, steps: int = 60, seed: int = 0,
             out_dir: Path | None = Path("histories"), max_rounds: int = 6,
             progress: Progress | None = None,
             faults: frozenset[str] | None = None,
             ignore: frozenset[str] = frozenset()) -> list[HuntResult]:
    """Hunt until a round finds nothing new (beyond ``ignore``, found before); every
    round's finding is saved."""
    results: list[HuntResult] = []
    for round_number in range(max_rounds):
        result = hunt(config, examples=examples, steps=steps, seed=seed + round_number,
                      ignore=ignore, out_dir=out_dir, progress=progress, faults=faults)
        results.append(result)
        if not result.found:
            break
        if progress is not None:
            progress(f"  found {', '.join(sorted(result.anomalies))} -> {result.path}")
        ignore = ignore | frozenset(result.anomalies)
    return results
