"""``check`` and ``export``: verdicts on histories without re-running the model.

A kafkacheck history gets ``invariants.verdict.judge``, the same verdict hunts and
``replay`` give (the model-aware checkers and Jepsen's, merged).  A Jepsen history has no
model events, so it gets Jepsen's analysis alone.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, TextIO

from invariants.jepsen import analyze
from invariants.verdict import judge
from kafkacheck.errors import UsageError
from kafkacheck.jepsen_io import JepsenFormatError, looks_like_jepsen, read_jepsen, write_jepsen
from kafkacheck.output import write_atomically
from kafkacheck.storage import HistoryFileError, SavedHistory, load_history


def check_file(path: Path, *, fmt: str = "auto", ww_deps: bool = False,
               sub_via: str | None = None) -> dict[str, Any]:
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
        return analyze(events, ww_deps=ww_deps, sub_via=sub_via or "assign").to_json()
    saved = load_kafkacheck_history(path, "`--format jepsen` (or `auto`)")
    return judge(saved.events, ww_deps=ww_deps, sub_via=sub_via).to_json()


def load_kafkacheck_history(path: Path, instead: str | None = None) -> SavedHistory:
    """``load_history``, as a UsageError; a Jepsen history is told where it belongs
    (``instead``, by default ``kafkacheck check``) rather than that it is not JSON."""
    try:
        return load_history(path)
    except HistoryFileError as error:
        if path.is_file() and looks_like_jepsen(path):
            raise UsageError(
                f"{path}: is a Jepsen history, not a kafkacheck one (it has no schedule "
                f"or model events); check it with {instead or f'`kafkacheck check {path}`'}"
            ) from None
        raise UsageError(str(error)) from None


def export_file(path: Path, fmt: str, output: Path | None) -> None:
    """Write a kafkacheck history in Jepsen's format, to ``output`` (all or nothing, see
    ``kafkacheck.output``) or to standard output."""
    if fmt != "jepsen":
        raise UsageError(f"unknown export format {fmt!r}")
    saved = load_kafkacheck_history(path)
    if output is None:
        buffer = io.StringIO()
        _export(saved.events, buffer)
        sys.stdout.write(buffer.getvalue())
        return
    if output.resolve() == path.resolve():
        raise UsageError(f"{output}: would overwrite the history being exported")
    write_atomically(output, lambda out: _export(saved.events, out))


def _export(events: list, out: TextIO) -> None:
    try:
        write_jepsen(events, out)
    except JepsenFormatError as error:
        raise UsageError(f"cannot export: {error}") from None
