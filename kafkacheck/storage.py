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
from typing import Any

import attrs

from invariants.check import Verdict
from kafkacheck import __version__
from model.actions import ActionError, action_from_json, action_to_json
from model.config import Config, ConfigError
from model.history import CLIENT_TYPES, INTERNAL, Event

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
    # Set for a history recorded on a real Kafka cluster (kafkacheck real): the release,
    # the settings passed to Kafka, the fault schedule and the log of faults injected.
    # Such a history has an empty ``schedule`` and cannot be replayed.
    real: dict[str, Any] | None = None


def _verdict_json(verdict: Verdict | dict[str, Any]) -> dict[str, Any]:
    """A model Verdict, or an already merged verdict (``checking.check_all``)."""
    return verdict.to_json() if isinstance(verdict, Verdict) else verdict


def history_document(config: Config, schedule: list[Any], events: list[Event],
                     verdict: Verdict | dict[str, Any], seed: int | None,
                     real: dict[str, Any] | None = None) -> dict[str, Any]:
    document = {
        "format": FORMAT,
        "tool": f"kafkacheck {__version__}",
        "config": config.to_settings(),
        "seed": seed,
        "schedule": [action_to_json(x) for x in schedule],
        "events": [e.to_json() for e in events],
        "verdict": _verdict_json(verdict),
    }
    if real is not None:
        document["real"] = real
    return document


def history_filename(config: Config, verdict: Verdict | dict[str, Any], schedule: list[Any],
                     headline: str | None = None, real: dict[str, Any] | None = None) -> str:
    """Stable, readable names: the settings that differ from defaults, the first anomaly
    and a digest of the schedule, so the same finding is saved once.  A real run's name
    starts with ``real_`` and its digest covers the run's record (it has no schedule)."""
    settings = config.diff()
    slug = "_".join(f"{k}-{v}" for k, v in sorted(settings.items())) or "defaults"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", slug).replace("kafkacheck.", "")
    first = headline or next(iter(_verdict_json(verdict)["anomalies"]), "clean")
    digest = hashlib.sha256(json.dumps([action_to_json(x) for x in schedule]).encode())
    if real is not None:
        digest.update(json.dumps(real, sort_keys=True).encode())
        slug = f"real_{slug}"
    return f"{slug}__{first}__{digest.hexdigest()[:10]}.json"


def save_history(directory: Path, config: Config, schedule: list[Any], events: list[Event],
                 verdict: Verdict | dict[str, Any], seed: int | None,
                 headline: str | None = None, real: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / history_filename(config, verdict, schedule, headline, real)
    document = history_document(config, schedule, events, verdict, seed, real)
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
        raw = json.loads(path.read_text())
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
    if raw["format"] != FORMAT:
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
        schedule = [action_from_json(x, i) for i, x in enumerate(raw["schedule"])]
    except ActionError as error:
        raise HistoryFileError(f"{where}{error}") from None
    events = [_event(x, i, where) for i, x in enumerate(raw["events"])]
    seed = raw.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise HistoryFileError(f"{where}field 'seed' must be an integer or null")
    verdict = raw.get("verdict")
    if verdict is not None and not isinstance(verdict, dict):
        raise HistoryFileError(f"{where}field 'verdict' must be an object")
    real = raw.get("real")
    if real is not None and not isinstance(real, dict):
        raise HistoryFileError(f"{where}field 'real' must be an object")
    return SavedHistory(config, schedule, events, verdict, seed, path, real)


_EVENT_FIELDS = {"index": int, "step": int, "time": int, "process": str, "type": str, "f": str}


def _event(raw: Any, position: int, where: str) -> Event:
    if not isinstance(raw, dict):
        raise HistoryFileError(f"{where}events[{position}]: expected an object")
    for name, kind in _EVENT_FIELDS.items():
        value = raw.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise HistoryFileError(
                f"{where}events[{position}].{name}: expected {kind.__name__}, got {value!r}")
    if raw["type"] not in CLIENT_TYPES and raw["type"] != INTERNAL:
        raise HistoryFileError(f"{where}events[{position}].type: unknown type {raw['type']!r}")
    if raw["index"] != position:
        raise HistoryFileError(
            f"{where}events[{position}].index: expected {position}, got {raw['index']}")
    try:
        event = Event.from_json(raw)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise HistoryFileError(f"{where}events[{position}].value: malformed ({error})") from None
    problem = shape_problem(event)
    if problem:
        raise HistoryFileError(f"{where}events[{position}].value: {problem}")
    return event


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def shape_problem(event: Event) -> str | None:
    """Why an event's value does not have the shape its ``f`` needs, or None."""
    value, f = event.value, event.f
    if event.type == INTERNAL:
        return None if isinstance(value, dict) else "internal events carry an object"
    if f == "send":
        if not isinstance(value, list) or not value:
            return "send expects a list of [\"send\", partition, value] micro-ops"
        for mop in value:
            if not (isinstance(mop, list) and len(mop) == 3 and mop[0] == "send"
                    and _is_int(mop[1])):
                return f"bad send micro-op {mop!r}"
            v = mop[2]
            if isinstance(v, list):
                if len(v) != 2 or not (v[0] is None or _is_int(v[0])) or not _is_int(v[1]):
                    return f"bad send micro-op {mop!r}: expected [offset, value]"
            elif not _is_int(v):
                return f"bad send micro-op {mop!r}: value must be an integer"
    elif f == "poll":
        if not isinstance(value, list) or not value:
            return "poll expects a list of poll micro-ops"
        for mop in value:
            if not (isinstance(mop, list) and mop and mop[0] == "poll"):
                return f"bad poll micro-op {mop!r}"
            if len(mop) == 2:
                if not isinstance(mop[1], dict):
                    return f"bad poll micro-op {mop!r}: expected a map of partitions"
                for partition, pairs in mop[1].items():
                    if not _is_int(partition) or not isinstance(pairs, list) or not all(
                            isinstance(pair, list) and len(pair) == 2
                            and all(_is_int(x) for x in pair) for pair in pairs):
                        return f"bad poll micro-op {mop!r}: expected {{partition: [[offset, value]]}}"
    elif f == "process":
        if not (isinstance(value, list) and len(value) == 3 and all(_is_int(x) for x in value)):
            return "process expects [partition, offset, value]"
    elif f == "commit":
        if not (isinstance(value, dict) and all(_is_int(k) and _is_int(v)
                                                for k, v in value.items())):
            return "commit expects {partition: offset}"
    elif f == "assign":
        if not (isinstance(value, list) and all(_is_int(x) for x in value)):
            return "assign expects a list of partitions"
    elif f != "crash":
        return f"unknown operation f={f!r}"
    return None
