"""Time to first find: how many runs (and seconds) a hunt needs before it finds each
anomaly a Kafka-documented unsafe configuration must show.

The search is only as good as these figures: a hunt budget smaller than the runs a find
takes proves nothing.  Each case is hunted with several seeds, without minimisation.

Usage::

    python benchmarks/search_depth.py                 # every case, 6 seeds, 1000 runs max
    python benchmarks/search_depth.py --cases unclean-lost-write --seeds 10
    python benchmarks/search_depth.py --markdown      # the table in docs/performance.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tables import print_table  # noqa: E402
from kafkacheck.hunt import hunt  # noqa: E402
from kafkacheck.matrix import hunt_config  # noqa: E402

SAFE = {"acks": "all", "min.insync.replicas": "2"}
CASES: dict[str, tuple[dict[str, str], str]] = {
    "acks=1 lost-write": ({"acks": "1"}, "lost-write"),
    "acks=0 lost-write": ({"acks": "0"}, "lost-write"),
    "unclean-lost-write": ({**SAFE, "unclean.leader.election.enable": "true"}, "lost-write"),
    "retries reorder": ({"acks": "all", "enable.idempotence": "false"}, "reorder"),
    "idempotent leader-restart duplicate": ({"acks": "all"}, "duplicate"),
    "commit-before processed-zero-times": (
        {**SAFE, "kafkacheck.commit.strategy": "before-processing"}, "processed-zero-times"),
    "commit-after processed-more-than-once": (SAFE, "processed-more-than-once"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.cases:
        settings, anomaly = CASES[name]
        runs, seconds = [], []
        for seed in range(args.seeds):
            started = time.perf_counter()
            result = hunt(hunt_config(settings), examples=args.budget, steps=100, seed=seed,
                          target=frozenset({anomaly}), out_dir=None, shrink=False)
            if result.found:
                runs.append(result.runs)
                seconds.append(time.perf_counter() - started)
            print(f"{name} seed {seed}: {result.runs if result.found else 'not found'}",
                  file=sys.stderr, flush=True)
        rows.append((name, f"{len(runs)}/{args.seeds}",
                     f"{statistics.median(runs):.0f}" if runs else "-",
                     str(max(runs)) if runs else "-",
                     f"{statistics.median(seconds):.1f}" if seconds else "-"))
    header = ("case", "found", "median runs", "most runs", "median seconds")
    print_table(header, rows, markdown=args.markdown, width=16)

if __name__ == "__main__":
    main()
