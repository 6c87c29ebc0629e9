"""Saved histories: kafkacheck's own JSON format, written and validated.

A saved history is self-contained: format version, the full configuration (every setting
by its Kafka name), the seed, the schedule that produced it, the events, and the verdict.
Loading validates every part and fails with one message naming the field and position;
nothing in a file is ever executed, only parsed into actions and events.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable

import attrs

from invariants.check import Verdict
from kafkacheck import __version__
from kafkacheck import validation
from model.actions import action_to_json
from model.config import Config, ConfigError
from model.history import Event

FORMAT = 1


class HistoryFileError(ValueError):
    """An unusable history file; the message names the file's problem."""


@attrs.frozen
class SavedHistory:
    config: Config
    schedule: list[Any]
    events: list[Event]
    verdict: dict[str, Any] | None
    seed: int | None
    path: Path | None = None
    settle_from: int | None = None    # where the settle phase begins in the schedule
    evidence: tuple[str, ...] = ()    # the anomalies this history was saved (and minimised) for
    # False for a schedule the minimiser reduced without reaching 1-minimality (its
    # replay budget ran out); absent from the file means minimal.
    minimal: bool = True
    # Set for a history recorded on a real Kafka cluster (kafkacheck real): the release,
    # the settings passed to Kafka, the fault schedule and the log of faults injected.
    # Such a history has an empty ``schedule`` and cannot be replayed.
    real: dict[str, Any] | None = None


def _verdict_json(verdict: Verdict | dict[str, Any]) -> dict[str, Any]:
    """A model Verdict, or an already merged verdict (``invariants.verdict.judge``)."""
    return verdict.to_json() if isinstance(verdict, Verdict) else verdict


def history_document(config: Config, schedule: list[Any], events: list[Event],
                     verdict: Verdict | dict[str, Any], seed: int | None,
                     real: dict[str, Any] | None = None, settle_from: int | None = None,
                     evidence: Iterable[str] = (), minimal: bool = True) -> dict[str, Any]:
    document = {
        "format": FORMAT,
        "tool": f"kafkacheck {__version__}",
        "config": config.to_settings(),
        "seed": seed,
        "schedule": [action_to_json(x) for x in schedule],
        "events": [e.to_json() for e in events],
        "verdict": _verdict_json(verdict),
    }
    if settle_from is not None:
        document["settle_from"] = settle_from
    if evidence:
        document["evidence"] = sorted(evidence)
        if not minimal:
            document["minimal"] = False
    if real is not None:
        document["real"] = real
    return document


# The settings part of a history's file name, at most: with the anomaly's name, the
# digest and a temporary suffix the whole stays well under the 255-byte limit.
MAX_SLUG = 200


def history_filename(config: Config, verdict: Verdict | dict[str, Any], schedule: list[Any],
                     headline: str | None = None, real: dict[str, Any] | None = None) -> str:
    """Stable, readable names: the settings that differ from defaults, the first anomaly
    and a digest of the schedule, so the same finding is saved once.  A real run's name
    starts with ``real_`` and its digest covers the run's record (it has no schedule)."""
    settings = config.diff()
    slug = "_".join(f"{k}-{v}" for k, v in sorted(settings.items())) or "defaults"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", slug).replace("kafkacheck.", "")
    if len(slug) > MAX_SLUG:
        # File names stop at 255 bytes: a long configuration keeps its start and a
        # digest of the whole, so names stay distinct.
        whole = hashlib.sha256(slug.encode()).hexdigest()[:8]
        slug = f"{slug[:MAX_SLUG - 9].rstrip('-_.')}-{whole}"
    first = headline or next(iter(_verdict_json(verdict)["anomalies"]), "clean")
    digest = hashlib.sha256(json.dumps([action_to_json(x) for x in schedule]).encode())
    if real is not None:
        digest.update(json.dumps(real, sort_keys=True).encode())
        slug = f"real_{slug}"
    return f"{slug}__{first}__{digest.hexdigest()[:10]}.json"


def save_history(directory: Path, config: Config, schedule: list[Any], events: list[Event],
                 verdict: Verdict | dict[str, Any], seed: int | None,
                 headline: str | None = None, real: dict[str, Any] | None = None,
                 settle_from: int | None = None, evidence: Iterable[str] = (),
                 minimal: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / history_filename(config, verdict, schedule, headline, real)
    document = history_document(config, schedule, events, verdict, seed, real, settle_from,
                                evidence, minimal)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def load_history(path: str | Path) -> SavedHistory:
    path = Path(path)
    if not path.exists():
        raise HistoryFileError(f"{path}: no such file")
    if path.is_dir():
        raise HistoryFileError(f"{path}: is a directory, expected a history JSON file")
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise HistoryFileError(f"{path}: empty file")
        raw = json.loads(text)
    except UnicodeDecodeError:
        raise HistoryFileError(f"{path}: not a text file") from None
    except json.JSONDecodeError as error:
        raise HistoryFileError(
            f"{path}: not JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    return parse_document(raw, path)


def parse_document(raw: Any, path: Path | None = None) -> SavedHistory:
    where = f"{path}: " if path else ""
    if not isinstance(raw, dict):
        raise HistoryFileError(f"{where}expected a JSON object at the top level")
    if "format" not in raw:
        raise HistoryFileError(f"{where}missing field 'format' (is this a kafkacheck history?)")
    if not validation.is_int(raw["format"]) or raw["format"] != FORMAT:
        raise HistoryFileError(
            f"{where}format {raw['format']!r} is not supported (this kafkacheck reads {FORMAT})")
    for field, kind in (("config", dict), ("schedule", list), ("events", list)):
        if not isinstance(raw.get(field), kind):
            raise HistoryFileError(f"{where}field '{field}' must be a JSON {kind.__name__}")
    try:
        config = Config.from_settings(raw["config"])
    except ConfigError as error:
        raise HistoryFileError(f"{where}config: {error}") from None
    try:
        schedule = [validation.action(x, i) for i, x in enumerate(raw["schedule"])]
        events = [validation.event(x, i) for i, x in enumerate(raw["events"])]
        seed = raw.get("seed")
        if seed is not None and not validation.is_int(seed):
            raise validation.Invalid("field 'seed' must be an integer or null")
        tool = raw.get("tool")
        if tool is not None and not isinstance(tool, str):
            raise validation.Invalid(f"field 'tool' must be a string, got "
                                     f"{validation.short(tool)}")
        verdict = validation.verdict(raw.get("verdict"))
    except validation.Invalid as error:
        raise HistoryFileError(f"{where}{error}") from None
    settle_from = raw.get("settle_from")
    if settle_from is not None and (not validation.is_int(settle_from)
                                    or not 0 <= settle_from <= len(schedule)):
        raise HistoryFileError(
            f"{where}field 'settle_from' must be a position in the schedule (0 to "
            f"{len(schedule)}), got {validation.short(settle_from)}")
    evidence = raw.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(x, str) for x in evidence):
        raise HistoryFileError(f"{where}field 'evidence' must be a list of anomaly names")
    real = raw.get("real")
    if real is not None and not isinstance(real, dict):
        raise HistoryFileError(f"{where}field 'real' must be an object")
    minimal = raw.get("minimal", True)
    if not isinstance(minimal, bool):
        raise HistoryFileError(f"{where}field 'minimal' must be true or false, got "
                               f"{validation.short(minimal)}")
    return SavedHistory(config, schedule, events, verdict, seed, path, settle_from,
                        tuple(evidence), real=real, minimal=minimal)
