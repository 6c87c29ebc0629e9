"""Measure the hunt's speed: model steps per second and checker events per second.

Three figures, each on its own because they answer different questions:

* model: steps per second of the bare model (Run.apply, invariants included) under a
  seeded random driver: the ceiling for any hunt;
* hunt: steps per second inside Hypothesis hunts (generation, settle, checking), the
  figure that decides how many runs a hunt makes in a minute;
* checker: history events per second of ``check_events`` (the model-aware checkers) and
  of ``judge`` (the complete verdict hunts use: those plus Jepsen's analysis) on finished
  runs, and what the verdict costs per run.

Usage: ``python benchmarks/hunt_speed.py [--runs N] [--markdown] [--set NAME=VALUE ...]``
(default: ``acks=all``, ``min.insync.replicas=2``; ``--set`` replaces them, e.g. to
measure a transactional configuration).  Wall-clock timing
lives here, never in tests.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from invariants.check import check_events  # noqa: E402
from invariants.verdict import judge  # noqa: E402
from kafkacheck.hunt import hunt  # noqa: E402
from kafkacheck.matrix import hunt_config  # noqa: E402
from kafkacheck.runner import Run  # noqa: E402

SETTINGS = {"acks": "all", "min.insync.replicas": "2"}


def model_speed(runs: int, steps: int = 100,
                settings: dict[str, str] = SETTINGS) -> tuple[float, list[Run]]:
    config = hunt_config(settings)
    finished = []
    total = 0
    started = time.perf_counter()
    for seed in range(runs):
        rng = random.Random(seed)
        run = Run(config)
        for _ in range(steps):
            run.apply(rng.choice(run.cluster.enabled_actions()))
        run.finish()
        total += len(run.schedule)
        finished.append(run)
    return total / (time.perf_counter() - started), finished


def hunt_speed(examples: int, settings: dict[str, str] = SETTINGS) -> tuple[float, int]:
    result = hunt(hunt_config(settings), examples=examples, steps=100, seed=0,
                  target=frozenset({"lost-write"}), out_dir=None, shrink=False)
    return result.steps_run / result.seconds, result.runs


def checker_speed(runs: list[Run], check: Callable[[list], object] = check_events
                  ) -> tuple[float, float]:
    """(events per second, milliseconds per run) of ``check``, best of three passes."""
    histories = [r.cluster.history for r in runs]
    events = sum(len(h) for h in histories)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for history in histories:
            check(history)
        best = min(best, time.perf_counter() - started)
    return events / best, best / len(histories) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="the configuration measured (default acks=all, "
                             "min.insync.replicas=2)")
    args = parser.parse_args()
    settings = dict(pair.split("=", 1) for pair in args.set) if args.set else SETTINGS
    model, runs = model_speed(args.runs, settings=settings)
    hunting, hunt_runs = hunt_speed(args.runs, settings)
    checking, _ = checker_speed(runs)
    verdict, per_run = checker_speed(runs, judge)
    machine = f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}"
    rows = [("model steps per second (seeded random driver)", f"{model:,.0f}"),
            (f"hunt steps per second (Hypothesis, {hunt_runs} runs)", f"{hunting:,.0f}"),
            ("checker events per second (check_events)", f"{checking:,.0f}"),
            ("verdict events per second (judge: model-aware + Jepsen)", f"{verdict:,.0f}"),
            ("verdict milliseconds per run (judge)", f"{per_run:.2f}")]
    if args.markdown:
        print(f"| measure ({machine}) | value |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
    else:
        for name, value in rows:
            print(f"{name:60} {value:>12}")


if __name__ == "__main__":
    main()
