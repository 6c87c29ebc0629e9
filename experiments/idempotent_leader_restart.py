"""Replays, on a real KRaft cluster, the model's finding that Kafka's default idempotent
producer can write a duplicate when its leader is killed and elected again (the steps are
in kafkacheck/real/experiments.py).

Usage (root, Java 17, Maven; as ``kafkacheck real``)::

    .venv/bin/python experiments/idempotent_leader_restart.py [--kafka-version 3.9.1]

Prints the partition's values in offset order; exits 1 if a value is stored twice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafkacheck.real.experiments import idempotent_leader_restart  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka-version", default=None,
                        help="the Kafka release to run (default: kafkacheck real's)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the brokers' data and logs (under kafkacheck's cache)")
    args = parser.parse_args()
    values = idempotent_leader_restart(args.kafka_version, args.keep,
                                       lambda m: print(m, file=sys.stderr, flush=True))
    print(f"partition 0, in offset order: {values}")
    duplicated = sorted({v for v in values if values.count(v) > 1})
    print(f"stored more than once: {duplicated or 'none'}")
    return 1 if duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
