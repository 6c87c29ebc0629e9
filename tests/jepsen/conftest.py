"""Helpers to write small histories the way Jepsen's own tests do."""

from __future__ import annotations

from typing import Any

import pytest

from model.history import Event


def o(index: int, process: Any, type_: str, f: str, value: Any = None,
      meta: dict | None = None, time: int | None = None) -> Event:
    """Jepsen's ``(o index process type f value)`` shorthand, as an Event."""
    return Event(index=index, step=index, time=index if time is None else time,
                 process=str(process), type=type_, f=f, value=value, meta=meta)


def hist(*ops: tuple) -> list[Event]:
    """Events from (process, type, f, value[, meta]) tuples, indexed by position."""
    out = []
    for i, op in enumerate(ops):
        process, type_, f, value, *rest = op
        out.append(o(i, process, type_, f, value, rest[0] if rest else None))
    return out


@pytest.fixture
def make_history():
    return hist
