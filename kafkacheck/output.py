"""Writing an output file all at once, or not at all.

Why: a command that fails halfway (a full disk, a path that is a directory) must leave
what was there before untouched and no partial file behind, and say what went wrong in one
line.  The text goes to a temporary file next to the target, which then replaces it in one
``os.replace``; missing parent folders are created (as ``hunt --out`` and
``guarantees --doc`` do), and removed again if the write fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kafkacheck.errors import UsageError


def write_atomically(path: Path, write: Callable[[TextIO], None]) -> None:
    """Call ``write`` on a temporary file, then move it to ``path``; UsageError on failure."""
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, expected a file name")
    created = _make_parents(path.parent)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, _mode_for(path))
        with open(fd, "w", encoding="utf-8") as out:
            write(out)
        os.replace(tmp, path)
        tmp = None
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    break


def _mode_for(path: Path) -> int:
    """The replaced file's mode, or a new file's under the current umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; the ones created, outermost first."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    if current.exists() and not current.is_dir():
        raise UsageError(f"{current}: not a directory, cannot write below it")
    created: list[Path] = []
    for each in reversed(missing):
        try:
            each.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            for made in reversed(created):
                made.rmdir()
            raise UsageError(f"{each}: cannot create folder: {error.strerror or error}") from None
        created.append(each)
    return created
