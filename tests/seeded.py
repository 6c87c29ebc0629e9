"""The realistic bugs of ``benchmarks/seeded_bugs.py``, for tests that plant them (the
benchmarks folder is not a package, so it is loaded from its path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "seeded_bugs.py"


def seeded_bugs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafkacheck_seeded_bugs", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
