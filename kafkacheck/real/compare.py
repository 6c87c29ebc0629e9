"""The model and the real cluster, side by side, per configuration.

For each configuration ``compare`` hunts the model (``kafkacheck.hunt.hunt``, in rounds
like ``hunt_all`` but without shrinking) and runs
the real cluster (``run_real``) with the same settings, including the real runs' shorter
timeouts (``settings.REAL_BASE``), and tabulates the anomalies each found.  Only the
model-aware anomaly names are compared (loss, duplication, visibility, order, unsettled):
Jepsen's history-only anomalies (``poll-skip`` ...) are consequences of those and the
model's hunt does not compute them.

The two sides do not search equally: the model explores hundreds of shrinkable
schedules, a real run one schedule of real time.  An anomaly only the model found is
therefore first a question of search budget; one only the real cluster showed is a
question about the model.  Each disagreement is looked at and explained by hand in
``docs/real-kafka.md``; ``compare`` rewrites only the generated table there.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import attrs

from invariants.guarantees import DUPLICATION, LOSS, ORDER, guarantee
from kafkacheck.hunt import hunt
from kafkacheck.matrix import hunt_config, matrix_settings
from kafkacheck.real.run import RealOptions, RealResult, run_real
from kafkacheck.real.settings import REAL_BASE
from model.config import ConfigError, setting_names

COMPARED = tuple(sorted(set(LOSS + DUPLICATION + ORDER) |
                        {"uncommitted-read", "inconsistent-offsets", "unsettled"}))
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"

Progress = Callable[[str], None]


@attrs.frozen
class Row:
    settings: dict[str, str]
    model: frozenset[str] | None          # None: the model cannot run these settings
    model_runs: int
    model_note: str
    real: frozenset[str]
    real_result: RealResult

    @property
    def agree(self) -> bool | None:
        return None if self.model is None else self.model == self.real

    def cells(self) -> list[str]:
        label = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        model = "model cannot run" if self.model is None else \
            (", ".join(sorted(self.model)) or "-") + f" ({guarantee(self.model)})"
        real = (", ".join(sorted(self.real)) or "-") + f" ({guarantee(self.real)})"
        if self.agree is None:
            agreement = "n/a"
        elif self.agree:
            agreement = "yes"
        else:
            parts = []
            if self.model - self.real:
                parts.append("model only: " + ", ".join(sorted(self.model - self.real)))
            if self.real - self.model:
                parts.append("real only: " + ", ".join(sorted(self.real - self.model)))
            agreement = "no (" + "; ".join(parts) + ")"
        return [label, model, real, agreement]


HEADERS = ["configuration", "model found (guarantee)", "real cluster showed (guarantee)",
           "agreement"]


def model_settings(settings: dict[str, str]) -> dict[str, str]:
    """The model's part of a real run's settings (REAL_BASE, then the cell's)."""
    known = set(setting_names())
    return {k: v for k, v in {**REAL_BASE, **settings}.items() if k in known}


def _hunt_model(job: tuple[dict[str, str], int, int, int, str], max_rounds: int = 8) -> tuple[
        frozenset[str] | None, int, str]:
    """One configuration's model hunt (in a worker process): anomalies, runs, note."""
    settings, examples, steps, seed, _ = job
    try:
        config = hunt_config(model_settings(settings))
    except ConfigError as error:
        return None, 0, str(error)
    # hunt_all's rounds, without shrinking: the table needs to know *whether* the model
    # shows an anomaly, not its minimal history (``kafkacheck hunt`` gives that), and
    # shrinking is most of a hunt's time.
    found: set[str] = set()
    runs = 0
    for round_number in range(max_rounds):
        result = hunt(config, examples=examples, steps=steps, seed=seed + round_number,
                      ignore=frozenset(found), out_dir=None, shrink=False)
        runs += result.runs
        if not result.found:
            break
        found |= set(result.anomalies)
    return frozenset(found & set(COMPARED)), runs, ""


def compare(configs: list[dict[str, str]], *, examples: int, steps: int, seed: int,
            duration_s: float, rate: float, faults: tuple[str, ...],
            kafka_version: str | None, out_dir: Path, offline: bool = False,
            workers: int | None = None, progress: Progress | None = None) -> list[Row]:
    """Hunt the model for every configuration first (in parallel: it is CPU-bound and
    nothing else runs yet), then run the real cluster for each, one at a time (a cluster
    wants both cores to itself)."""
    say: Progress = progress or (lambda message: None)
    jobs = [(settings, examples, steps, seed, str(out_dir)) for settings in configs]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    say(f"hunting the model for {len(jobs)} configurations ({workers} processes)")
    if workers <= 1:
        models = [_hunt_model(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            models = list(pool.map(_hunt_model, jobs))
    rows = []
    for number, (settings, (model, runs, note)) in enumerate(zip(configs, models), start=1):
        label = ", ".join(f"{k}={v}" for k, v in settings.items())
        say(f"[{number}/{len(configs)}] {label}: model found "
            f"{', '.join(sorted(model)) if model else ('nothing' if model is not None else note)}"
            f" in {runs} runs; running the real cluster")
        result = run_real(RealOptions(settings=settings, kafka_version=kafka_version, seed=seed,
                                      duration_s=duration_s, rate=rate, faults=faults,
                                      out_dir=out_dir / "real", offline=offline), progress=say)
        real = frozenset(result.verdict["anomalies"]) & frozenset(COMPARED)
        row = Row(settings, model, runs, note, real, result)
        say(f"[{number}/{len(configs)}] {label}: real cluster showed "
            f"{', '.join(sorted(real)) or 'nothing'}; agreement {row.cells()[3]}")
        rows.append(row)
    return rows


def default_configs() -> list[dict[str, str]]:
    """The cells of the default guarantee matrix (``kafkacheck guarantees``)."""
    return matrix_settings()


def terminal_table(rows: list[Row]) -> str:
    table = [HEADERS] + [r.cells() for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row], *, command: str, examples: int, steps: int,
                   duration_s: float) -> str:
    version = rows[0].real_result.version if rows else "?"
    out = [BEGIN,
           f"Generated by `{command}` (the table only; the text around it is written by "
           "hand).",
           f"Model: rounds of up to {examples} runs of up to {steps} steps per configuration. "
           f"Real: Kafka {version}, one run of about {duration_s:g}s of faults per "
           "configuration, then recovery. Both with the real runs' timeouts "
           "(`" + ", ".join(f"{k}={v}" for k, v in REAL_BASE.items()) + "`).",
           "",
           "| " + " | ".join(HEADERS) + " | real run |",
           "|" + "---|" * (len(HEADERS) + 1)]
    for row in rows:
        r = row.real_result
        run = (f"{r.sends['ok']} acked sends, {len([f for f in r.fault_log if f['action'] not in ('restart', 'resume', 'heal', 'client-restart')])} "
               f"faults, {r.workload_seconds:.0f}s, {'quiescent' if r.quiescent else 'not quiescent'}")
        out.append("| " + " | ".join(row.cells()) + f" | {run} |")
    out.append(END)
    return "\n".join(out)


def write_doc(doc: Path, table: str) -> None:
    """Replace the generated table in ``doc`` (or create the file with it)."""
    if doc.exists():
        text = doc.read_text()
        if BEGIN in text and END in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: table, text,
                          flags=re.S)
        else:
            text = text.rstrip() + "\n\n## Model and real cluster compared\n\n" + table + "\n"
    else:
        text = "# kafkacheck against real Kafka\n\n## Model and real cluster compared\n\n" \
               + table + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def parse_config(text: str) -> dict[str, Any]:
    """``acks=1,min.insync.replicas=2`` -> dict."""
    out = {}
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE[,NAME=VALUE...], got {text!r}")
        out[name.strip()] = value.strip()
    return out
