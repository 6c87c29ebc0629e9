"""``check`` and ``export``: verdicts on histories without re-running the model.

A kafkacheck history gets both analyses: the model-aware one (it knows the final committed
log, so it can judge loss of unread records and the consumer pipeline) and Jepsen's
history-only one.  A Jepsen history gets Jepsen's analysis alone.  Where both report the
same anomaly for the same record, it is listed once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from invariants.check import check_events
from kafkacheck.errors import UsageError
from invariants.jepsen import analyze
from kafkacheck.jepsen_io import JepsenFormatError, looks_like_jepsen, read_jepsen, write_jepsen
from kafkacheck.storage import HistoryFileError, load_history
from model.history import Event

# How to tell that two details of one anomaly name describe the same thing.
_IDENTITY = {
    "lost-write": ("key", "value"),
    "duplicate": ("key", "value"),
    "inconsistent-offsets": ("key", "offset"),
}


def check_file(path: Path, *, fmt: str = "auto", ww_deps: bool = False,
               sub_via: str = "assign") -> dict[str, Any]:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory")
    if fmt == "auto":
        fmt = "jepsen" if looks_like_jepsen(path) else "kafkacheck"
    if fmt == "jepsen":
        try:
            events = read_jepsen(path)
        except JepsenFormatError as error:
            raise UsageError(str(error)) from None
        return analyze(events, ww_deps=ww_deps, sub_via=sub_via).to_json()
    try:
        saved = load_history(path)
    except HistoryFileError as error:
        raise UsageError(str(error)) from None
    return check_all(saved.events, ww_deps=ww_deps, sub_via=sub_via)


def check_all(events: list[Event], *, ww_deps: bool = False,
              sub_via: str = "assign") -> dict[str, Any]:
    """Model-aware and Jepsen analyses of a kafkacheck history, merged."""
    ours = check_events(events)
    theirs = analyze(events, ww_deps=ww_deps, sub_via=sub_via).to_json()
    anomalies: dict[str, list[dict[str, Any]]] = {
        name: list(details) for name, details in theirs["anomalies"].items()}
    for name, details in ours.anomalies.items():
        merged = anomalies.setdefault(name, [])
        fields = _IDENTITY.get(name)
        known = {tuple(d.get(f) for f in fields) for d in merged} if fields else set()
        for detail in details:
            if fields and tuple(detail.get(f) for f in fields) in known:
                continue
            merged.append(detail)
    return {
        "valid": theirs["valid"] and ours.valid,
        "guarantee": ours.guarantee,
        "anomalies": {name: anomalies[name] for name in sorted(anomalies)},
        "stats": {**theirs["stats"], **ours.stats},
    }


def export_file(path: Path, fmt: str, output: Path | None) -> None:
    if fmt != "jepsen":
        raise UsageError(f"unknown export format {fmt!r}")
    try:
        saved = load_history(path)
    except HistoryFileError as error:
        raise UsageError(str(error)) from None
    if output is None:
        write_jepsen(saved.events, sys.stdout)
        return
    with output.open("w", encoding="utf-8") as out:
        write_jepsen(saved.events, out)
