"""Checkpoints of the main job: each configuration's hunt, kept once it finishes.

The guarantee report takes hours on a laptop.  A run stopped half way (Ctrl-C, a closed
lid, a CI timeout) should not start again from nothing, so every finished configuration
is written here, and the next run reuses it instead of hunting again.

Reuse is exact, not approximate: a hunt is a function of its configuration, budget and
seed (the determinism standard), and of the code that runs it.  The key therefore hashes
the full configuration, the budget, the seed, the histories folder, and a fingerprint of every source file of
the model, the checkers and the harness, plus the Hypothesis and Python versions that
choose the draws.  Any change to any of them is a miss, and the configuration is hunted
again.  A checkpoint whose saved counterexample has since been deleted is a miss too.

Checkpoints are a private cache (pickles written and read by the same code), kept out of
version control.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import platform
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(".kafkacheck") / "guarantees"


@functools.cache
def source_fingerprint() -> str:
    """A hash of the code a hunt's outcome depends on."""
    import hypothesis

    import invariants
    import kafkacheck
    import model

    digest = hashlib.sha256()
    digest.update(f"hypothesis {hypothesis.__version__}".encode())
    digest.update(f"python {platform.python_version()}".encode())
    for package in (model, invariants, kafkacheck):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cell_key(settings: dict[str, str], *, examples: int, steps: int, seed: int,
             out_dir: Path | None) -> str:
    """The checkpoint name of one configuration's hunt (``settings``: everything the
    configuration sets, the hunt's base settings included; ``out_dir``: where its
    counterexamples are saved, which the report links)."""
    digest = hashlib.sha256()
    digest.update(source_fingerprint().encode())
    digest.update(repr((sorted(settings.items()), examples, steps, seed, str(out_dir))).encode())
    return digest.hexdigest()[:32]


class Checkpoints:
    """Finished hunts by key, in one folder.  ``None`` as the folder keeps nothing."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def load(self, key: str) -> Any | None:
        """The stored result, or None when there is none, it cannot be read, or a history
        it links has gone (the report must link files that exist)."""
        if self.folder is None:
            return None
        path = self.folder / f"{key}.pickle"
        try:
            result = pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        linked = [r.path for r in getattr(result, "rounds", []) if r.path is not None]
        if not all(Path(p).exists() for p in linked):
            return None
        return result

    def store(self, key: str, result: Any) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.pickle"
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(result))
        partial.replace(path)
