"""The ``kafkacheck`` command line.

Exit codes are part of the interface (scripts and CI depend on them):

* 0: nothing found / the history is valid;
* 1: an anomaly was found (hunt) or reproduced (replay, check);
* 2: unusable input (missing file, not JSON, wrong format version, bad setting), with a
  one-line message and no traceback;
* 3: ``replay`` only: the replayed run diverged from the recorded events;
* 4: the model broke one of its own invariants: a bug in kafkacheck, not a finding
  about Kafka (the schedule is saved under ``model-bugs/``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from kafkacheck.checkpoints import DEFAULT_DIR as DEFAULT_CHECKPOINTS
from kafkacheck.errors import UsageError
from model.config import ConfigError, describe_settings, parse_assignments

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_DIVERGED, EXIT_MODEL_BUG = 0, 1, 2, 3, 4


def _err(message: str) -> None:
    print(f"kafkacheck: error: {message}", file=sys.stderr)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config(pairs: list[str]) -> Any:
    from kafkacheck.matrix import hunt_config

    try:
        return hunt_config(parse_assignments(pairs))
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


_positive = _at_least(1)
_seed = _at_least(0)


# -- commands --------------------------------------------------------------------------


def cmd_hunt(args: argparse.Namespace) -> int:
    from kafkacheck.hunt import hunt, hunt_all

    config = _config(args.set)
    target = _targets(args.target) if args.target else None
    label = ", ".join(f"{k}={v}" for k, v in config.diff().items()) or "kafkacheck defaults"
    _progress(f"hunting {label}: up to {args.examples} runs of up to {args.steps} steps, "
              f"seed {args.seed}")
    out = Path(args.out)
    faults = frozenset(args.faults) if args.faults is not None else None
    if args.all:
        results = hunt_all(config, examples=args.examples, steps=args.steps, seed=args.seed,
                           out_dir=out, progress=_progress, faults=faults)
    else:
        results = [hunt(config, examples=args.examples, steps=args.steps, seed=args.seed,
                        target=target, out_dir=out, progress=_progress, faults=faults)]
    found = [r for r in results if r.found]
    for result in found:
        print(f"found: {', '.join(sorted(result.anomalies))}")
        print(f"saved: {result.path}")
    if not found:
        last = results[-1]
        print(f"nothing found in {last.runs} runs ({last.steps_run} steps, "
              f"{last.seconds:.1f}s)")
    return EXIT_FOUND if found else EXIT_OK


def _targets(names: list[str]) -> frozenset[str]:
    """``--target`` names, refused unless some checker can report them and they can make a
    run invalid (a hunt stops only for those; informational ones never stop it)."""
    from invariants.registry import BY_NAME, target_names

    for name in names:
        if name not in BY_NAME:
            raise UsageError(f"--target: unknown anomaly {name!r}; known anomalies: "
                             f"{', '.join(target_names())}")
        if name not in target_names():
            raise UsageError(f"--target: {name!r} is informational (it never makes a run "
                             f"invalid, so a hunt cannot stop for it); known anomalies: "
                             f"{', '.join(target_names())}")
    return frozenset(names)


def _print_verdict(verdict: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(verdict, indent=2, sort_keys=False))
        return
    anomalies = verdict["anomalies"]
    if not anomalies:
        print("valid: no anomalies")
    for name, details in anomalies.items():
        print(f"{name} ({len(details)}):")
        for detail in details[:10]:
            print(f"  {json.dumps(detail)}")
        if len(details) > 10:
            print(f"  ... {len(details) - 10} more")
    if "guarantee" in verdict:
        print(f"guarantee: {verdict['guarantee']}")


def _print_summary(verdict: dict[str, Any], shown: int = 3, width: int = 240) -> None:
    """A verdict for a long history: each anomaly's count and its first few details,
    cut to one line each (``kafkacheck check --json`` on the saved file has them all)."""
    anomalies = verdict["anomalies"]
    if not anomalies:
        print("valid: no anomalies")
    for name, details in anomalies.items():
        print(f"{name} ({len(details)}):")
        for detail in details[:shown]:
            line = json.dumps(detail)
            print(f"  {line if len(line) <= width else line[:width - 3] + '...'}")
        if len(details) > shown:
            print(f"  ... {len(details) - shown} more")
    print(f"guarantee: {verdict['guarantee']}")


def cmd_replay(args: argparse.Namespace) -> int:
    from kafkacheck.checking import load_kafkacheck_history
    from kafkacheck.replay import replay

    saved = load_kafkacheck_history(Path(args.file))
    if saved.real is not None:
        raise UsageError(
            f"{args.file}: recorded on a real Kafka {saved.real.get('kafka-version', '')} "
            f"cluster, which cannot be re-executed; use `kafkacheck check` to re-judge it")
    result = replay(saved)
    if result.diverged:
        print(f"diverged: {result.reason}")
        return EXIT_DIVERGED
    assert result.verdict is not None
    verdict = result.verdict.to_json()
    _print_verdict(verdict, args.json)
    recorded = sorted((saved.verdict or {}).get("anomalies", {}))
    if not args.json and recorded != sorted(verdict["anomalies"]):
        print(f"note: the file recorded anomalies {recorded}")
    return EXIT_OK if result.verdict.valid else EXIT_FOUND


def cmd_check(args: argparse.Namespace) -> int:
    from kafkacheck.checking import check_file

    verdict = check_file(Path(args.file), fmt=args.format, ww_deps=args.ww_deps,
                         sub_via=args.sub_via)
    _print_verdict(verdict, args.json)
    return EXIT_OK if verdict["valid"] else EXIT_FOUND


def cmd_export(args: argparse.Namespace) -> int:
    from kafkacheck.checking import export_file

    export_file(Path(args.file), args.format, Path(args.output) if args.output else None)
    return EXIT_OK


def cmd_guarantees(args: argparse.Namespace) -> int:
    from kafkacheck.checkpoints import Checkpoints
    from kafkacheck.matrix import hunt_matrix, prune_stale_histories
    from kafkacheck.report import markdown, terminal_table

    _progress(f"hunting the guarantee matrix: rounds of up to {args.examples} runs of up to "
              f"{args.steps} steps, seed {args.seed}")
    if not args.fresh:
        try:
            Path(args.checkpoints).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--checkpoints {args.checkpoints}: cannot keep results there "
                             f"({error.strerror})") from None
    checkpoints = Checkpoints(None if args.fresh else Path(args.checkpoints))
    cells = hunt_matrix(examples=args.examples, steps=args.steps, seed=args.seed,
                        out_dir=Path(args.out), workers=args.workers, progress=_progress,
                        checkpoints=checkpoints)
    stale = prune_stale_histories(Path(args.out), cells)
    if stale:
        _progress(f"removed {len(stale)} histories from earlier runs that this report "
                  f"does not link")
    print(terminal_table(cells))
    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(markdown(cells, examples=args.examples, steps=args.steps, seed=args.seed,
                            doc_path=doc))
    print(f"wrote {doc}")
    return EXIT_OK


def _fault_families(text: str) -> tuple[str, ...]:
    from kafkacheck.machine import FAULT_FAMILIES

    names = tuple(sorted({f.strip() for f in text.split(",") if f.strip()}))
    unknown = [n for n in names if n not in FAULT_FAMILIES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault famil{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(unknown)}; known: {', '.join(sorted(FAULT_FAMILIES))}")
    return names


def _faults(text: str) -> tuple[str, ...]:
    names = tuple(sorted({f.strip() for f in text.split(",") if f.strip()}))
    if not names:
        raise argparse.ArgumentTypeError("expected fault kinds, e.g. crash,pause")
    return names


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def cmd_real(args: argparse.Namespace) -> int:
    from kafkacheck.real.environment import ALL_FAULTS
    from kafkacheck.real.run import RealOptions, RealRunError, run_real
    from model.config import ConfigError as _ConfigError

    unknown = sorted(set(args.faults) - ALL_FAULTS)
    if unknown:
        raise UsageError(f"unknown fault kind(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted(ALL_FAULTS))}")
    try:
        settings = parse_assignments(args.set)
    except _ConfigError as error:
        raise UsageError(str(error)) from None
    options = RealOptions(settings=settings, kafka_version=args.kafka_version, seed=args.seed,
                          duration_s=args.duration, rate=args.rate, faults=args.faults,
                          out_dir=Path(args.out), offline=args.offline, keep=args.keep,
                          netns=False if args.no_netns else None)
    label = ", ".join(f"{k}={v}" for k, v in settings.items()) or "kafkacheck defaults"
    _progress(f"real cluster run: {label}; faults {','.join(args.faults)} for about "
              f"{args.duration:g}s, seed {args.seed}")
    try:
        result = run_real(options, progress=_progress)
    except RealRunError as error:
        raise UsageError(str(error)) from None
    if args.json:
        _print_verdict(result.verdict, True)
    else:
        if result.found:
            print(f"found: {', '.join(sorted(result.verdict['anomalies']))}")
        _print_summary(result.verdict)
        sends = result.sends
        print(f"real run on Kafka {result.version}: {sends['invoked']} sends ({sends['ok']} ok, "
              f"{sends['info']} info, {sends['fail']} fail), {len(result.fault_log)} fault "
              f"events in {result.workload_seconds:.0f}s of workload, "
              f"{'quiescent' if result.quiescent else 'NOT quiescent'} after recovery, "
              f"{result.seconds:.0f}s in all")
        if result.path is not None:
            print(f"saved: {result.path}")
    return EXIT_FOUND if result.found else EXIT_OK


def _compare_command(args: argparse.Namespace) -> str:
    """The command that reproduces a compare table (output paths left out: the doc must
    not name this machine's directories)."""
    parts = ["kafkacheck compare"]
    parts += [f"--config {c}" for c in args.config or []]
    parts += [f"--set {s}" for s in args.set]
    parts += [f"--examples {args.examples}", f"--steps {args.steps}", f"--seed {args.seed}",
              f"--duration {args.duration:g}", f"--rate {args.rate:g}",
              f"--faults {','.join(args.faults)}"]
    if args.kafka_version:
        parts.append(f"--kafka-version {args.kafka_version}")
    return " ".join(parts)


def cmd_compare(args: argparse.Namespace) -> int:
    from kafkacheck.real import compare as cmp
    from kafkacheck.real.environment import ALL_FAULTS
    from kafkacheck.real.run import RealRunError

    unknown = sorted(set(args.faults) - ALL_FAULTS)
    if unknown:
        raise UsageError(f"unknown fault kind(s) {', '.join(unknown)}")
    try:
        base = parse_assignments(args.set)
        configs = [cmp.parse_config(text) for text in args.config] if args.config \
            else cmp.default_configs()
    except (ConfigError, ValueError) as error:
        raise UsageError(str(error)) from None
    configs = [{**base, **c} for c in configs]
    _progress(f"comparing {len(configs)} configurations: model hunts of {args.examples} runs "
              f"a round, real runs of about {args.duration:g}s of faults each")
    try:
        rows = cmp.compare(configs, examples=args.examples, steps=args.steps, seed=args.seed,
                           duration_s=args.duration, rate=args.rate, faults=args.faults,
                           kafka_version=args.kafka_version, out_dir=Path(args.out),
                           offline=args.offline, progress=_progress)
    except RealRunError as error:
        raise UsageError(str(error)) from None
    print(cmp.terminal_table(rows))
    command = _compare_command(args)
    doc = Path(args.doc)
    cmp.write_doc(doc, cmp.markdown_table(rows, command=command.strip(),
                                          examples=args.examples, steps=args.steps,
                                          duration_s=args.duration))
    print(f"wrote {doc}")
    return EXIT_OK if all(r.agree is not False for r in rows) else EXIT_FOUND


def cmd_settings(args: argparse.Namespace) -> int:
    rows = describe_settings()
    width = max(len(r[0]) for r in rows)
    for name, default, accepted, meaning in rows:
        shown = (str(default).lower() if isinstance(default, bool)
                 else "null" if default is None else default)
        print(f"{name.ljust(width)}  default {shown}  ({accepted})\n{' ' * width}  {meaning}")
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafkacheck",
        description="Property-based checker of Apache Kafka's delivery guarantees: hunts a "
                    "deterministic model of a Kafka cluster for lost, duplicated, reordered "
                    "and uncommitted records, and checks recorded histories.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    hunt = sub.add_parser("hunt", help="hunt one configuration for anomalies",
                          description="Hunt one configuration. Exit 0 if nothing was found, "
                                      "1 if an anomaly was found and saved.")
    hunt.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                      help="a Kafka setting, e.g. --set acks=1 (see `kafkacheck settings`)")
    hunt.add_argument("--examples", type=_positive, default=500,
                      help="Hypothesis runs per hunt (default 500)")
    hunt.add_argument("--steps", type=_positive, default=100,
                      help="maximum steps per run before the settle phase (default 100)")
    hunt.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    hunt.add_argument("--out", default="histories",
                      help="directory for saved counterexamples (default histories/)")
    hunt.add_argument("--target", action="append", metavar="ANOMALY",
                      help="only stop for this anomaly (repeatable; see docs/anomalies.md)")
    hunt.add_argument("--all", action="store_true",
                      help="keep hunting for further anomaly kinds after the first")
    hunt.add_argument("--faults", type=_fault_families, default=None, metavar="FAMILIES",
                      help="only these fault families, comma-separated: broker-crash, "
                           "client-crash, client-pause, late-request, network-partition "
                           "(default: all)")
    hunt.set_defaults(func=cmd_hunt)

    replay = sub.add_parser("replay", help="re-execute a saved history and re-check it",
                            description="Exit 0 if clean, 1 if the anomalies reproduce, "
                                        "2 for an unusable file, 3 if the replay diverges.")
    replay.add_argument("file", help="a history JSON file (e.g. under histories/)")
    replay.add_argument("--json", action="store_true", help="print the verdict as JSON")
    replay.set_defaults(func=cmd_replay)

    check = sub.add_parser("check", help="check a history's events without re-running it",
                           description="Check a kafkacheck or Jepsen history. Exit 0 if valid, "
                                       "1 if not, 2 for unusable input.")
    check.add_argument("file")
    check.add_argument("--json", action="store_true",
                       help='print {"valid": bool, "anomalies": {...}, "stats": {...}}')
    check.add_argument("--format", choices=("auto", "kafkacheck", "jepsen"), default="auto",
                       help="input format (default: detect)")
    check.add_argument("--ww-deps", action="store_true",
                       help="infer ww edges from the version order (Jepsen's :ww-deps)")
    check.add_argument("--sub-via", choices=("assign", "subscribe"), default=None,
                       help="how consumers got partitions; subscribe allows rebalance skips "
                            "(default: what a kafkacheck history shows; assign for Jepsen's)")
    check.set_defaults(func=cmd_check)

    export = sub.add_parser("export", help="write a kafkacheck history in Jepsen's format")
    export.add_argument("file")
    export.add_argument("--format", choices=("jepsen",), default="jepsen")
    export.add_argument("-o", "--output", help="output file (default: standard output)")
    export.set_defaults(func=cmd_export)

    guarantees = sub.add_parser(
        "guarantees", help="hunt the default configuration matrix and write the report",
        description="Hunts every configuration of the guarantee report (acks x "
                    "min.insync.replicas x commit strategy, then the producer, transaction "
                    "and consumer-group rows), prints the guarantee table and writes "
                    "docs/guarantees.md.  Each finished configuration is kept, so running "
                    "it again after an interruption goes on where it stopped.")
    guarantees.add_argument("--examples", type=_positive, default=800,
                            help="Hypothesis runs per hunting round (default 800)")
    guarantees.add_argument("--steps", type=_positive, default=100,
                            help="maximum steps per run (default 100)")
    guarantees.add_argument("--seed", type=_seed, default=0)
    guarantees.add_argument("--out", default="histories")
    guarantees.add_argument("--doc", default="docs/guarantees.md")
    guarantees.add_argument("--workers", type=_positive, default=None,
                            help="parallel processes (default: one per core)")
    guarantees.add_argument("--checkpoints", default=str(DEFAULT_CHECKPOINTS), metavar="DIR",
                            help="where each finished configuration is kept, so that a run "
                                 "stopped half way goes on where it stopped; reused only by "
                                 "the same code, settings, budget and seed (default "
                                 f"{DEFAULT_CHECKPOINTS})")
    guarantees.add_argument("--fresh", action="store_true",
                            help="hunt every configuration again, ignoring and not writing "
                                 "checkpoints")
    guarantees.set_defaults(func=cmd_guarantees)

    real = sub.add_parser(
        "real", help="run the workload on a real Kafka cluster under faults and check it",
        description="Start a 3-node KRaft cluster of a real Kafka release (jars from Maven, "
                    "each node in its own network namespace), drive it with Kafka's Java "
                    "client while injecting a seeded schedule of faults, then recover, read "
                    "the final logs and judge the history with the same checkers as hunt. "
                    "Needs Java 17, Maven (first run per release) and root for network "
                    "namespaces. Exit 0 if nothing was found, 1 if an anomaly was found, 2 "
                    "for unusable settings or environment.")
    real.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                      help="a Kafka setting: the model's (see `kafkacheck settings`) or any "
                           "producer, consumer or topic config, passed to Kafka unchanged")
    real.add_argument("--kafka-version", default=None, metavar="VERSION",
                      help="Kafka release (default: the newest 4.x that resolves; 3.9.1 "
                           "works too)")
    real.add_argument("--seed", type=_seed, default=0,
                      help="seed of the fault schedule and the key choice (default 0)")
    real.add_argument("--duration", type=_seconds, default=60.0, metavar="SECONDS",
                      help="length of the faulted workload (default 60)")
    real.add_argument("--rate", type=_seconds, default=50.0,
                      help="sends per second per producer (default 50)")
    real.add_argument("--faults", type=_faults, default=("client-crash", "crash", "partition",
                                                           "pause"),
                      help="fault families: crash, pause, partition, client-crash (default "
                           "all); crash,pause,client-crash need no network namespaces")
    real.add_argument("--out", default="histories/real",
                      help="directory for the saved history (default histories/real/)")
    real.add_argument("--offline", action="store_true",
                      help="never contact Maven Central (the jars must be cached)")
    real.add_argument("--keep", action="store_true",
                      help="keep the run directory (broker logs) under ~/.cache/kafkacheck/runs")
    real.add_argument("--no-netns", action="store_true",
                      help="run the nodes on loopback without namespaces (process faults only)")
    real.add_argument("--json", action="store_true", help="print the verdict as JSON")
    real.set_defaults(func=cmd_real)

    compare = sub.add_parser(
        "compare", help="hunt the model and run the real cluster per configuration, and "
                        "tabulate where they agree",
        description="For each configuration (default: the cells of the guarantee matrix), "
                    "hunt the model and run a real Kafka cluster with the same settings, "
                    "print a table of the anomalies each found and write it into "
                    "docs/real-kafka.md. Exit 0 if every configuration agrees, 1 if some "
                    "disagree, 2 for unusable settings or environment.")
    compare.add_argument("--config", action="append", metavar="NAME=VALUE[,NAME=VALUE]",
                         help="one configuration (repeatable; default: the guarantee matrix)")
    compare.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                         help="a setting added to every configuration")
    compare.add_argument("--examples", type=_positive, default=200,
                         help="model runs per hunting round (default 200)")
    compare.add_argument("--steps", type=_positive, default=100,
                         help="maximum model steps per run (default 100)")
    compare.add_argument("--seed", type=_seed, default=0)
    compare.add_argument("--duration", type=_seconds, default=60.0, metavar="SECONDS",
                         help="faulted workload per real run (default 60)")
    compare.add_argument("--rate", type=_seconds, default=50.0,
                         help="sends per second per producer (default 50)")
    compare.add_argument("--faults", type=_faults, default=("client-crash", "crash",
                                                              "partition", "pause"))
    compare.add_argument("--kafka-version", default=None, metavar="VERSION")
    compare.add_argument("--offline", action="store_true")
    compare.add_argument("--out", default="histories/compare",
                         help="where both sides' histories are saved (default "
                              "histories/compare/)")
    compare.add_argument("--doc", default="docs/real-kafka.md")
    compare.set_defaults(func=cmd_compare)

    settings = sub.add_parser("settings", help="list every setting with its default")
    settings.set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from invariants.model_state import ModelBugError
    from kafkacheck.hunt import ModelBugFound

    try:
        return args.func(args)
    except UsageError as error:
        _err(str(error))
        return EXIT_USAGE
    except (ModelBugFound, ModelBugError) as error:
        _err(f"model bug: {error}")
        return EXIT_MODEL_BUG
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
