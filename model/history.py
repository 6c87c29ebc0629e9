"""The history: one stream of events appended by every step of the model.

Why one record type for everything: the portable checkers (and Jepsen's own tools) only
understand client operations shaped like Jepsen's ``{:index :time :process :type :f
:value}`` maps, while the model-state checkers and diagrams need internal events
(append, truncate, election, ...).  Keeping both in a single flat record with the Jepsen
field names means the client layer *is* a Jepsen history once internal events are filtered
out, and one JSON codec serves both layers.

Client operations (``type`` in ``invoke/ok/fail/info``) carry Jepsen-shaped values:

* send invoke   ``[["send", partition, value]]``
* send complete ``[["send", partition, [offset, value]]]`` (``offset`` is ``None`` when the
  client never learned it, e.g. ``acks=0``)
* poll invoke   ``[["poll"]]``
* poll complete ``[["poll", {partition: [[offset, value], ...]}]]``
* assign        ``value = [partition, ...]``
* crash         ``value = None`` (type ``info``)

kafkacheck's own client operations, which Jepsen has no name for and which exporters drop:

* ``f = "process"``: the application processed one record (``value = [partition, offset,
  value]``), the side effect the delivery verdict counts.
* ``f = "commit"``: an offset commit, ``value = {partition: next_offset}``.

Internal events have ``type = "internal"``, ``process`` naming the node, and a dict value.

``meta`` holds facts outside Jepsen's shape (the record key of a send, the error code of a
failure); exporters to Jepsen drop it.
"""

from __future__ import annotations

from typing import Any

import attrs

CLIENT_TYPES = frozenset({"invoke", "ok", "fail", "info"})
INTERNAL = "internal"


@attrs.frozen(slots=True)
class Event:
    """One entry of the history.

    ``index`` is the position in the history, ``step`` the index of the schedule action
    that produced it, ``time`` the virtual clock in milliseconds.
    """

    index: int
    step: int
    time: int
    process: str
    type: str
    f: str
    value: Any = None
    meta: dict[str, Any] | None = None

    @property
    def is_client(self) -> bool:
        return self.type in CLIENT_TYPES

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; partition keys of poll maps become strings, as JSON needs."""
        out: dict[str, Any] = {
            "index": self.index,
            "step": self.step,
            "time": self.time,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": _encode_value(self.f, self.value),
        }
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Event":
        return cls(
            index=raw["index"],
            step=raw["step"],
            time=raw["time"],
            process=raw["process"],
            type=raw["type"],
            f=raw["f"],
            value=_decode_value(raw["f"], raw.get("value")),
            meta=raw.get("meta"),
        )


def _encode_value(f: str, value: Any) -> Any:
    if f == "commit" and isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if f in ("poll", "txn") and isinstance(value, list):
        return [_encode_mop(m) for m in value]
    return value


def _decode_value(f: str, value: Any) -> Any:
    if f == "commit" and isinstance(value, dict):
        return {int(k): v for k, v in value.items()}
    if f in ("poll", "txn") and isinstance(value, list):
        return [_decode_mop(m) for m in value]
    return value


def _encode_mop(mop: Any) -> Any:
    if isinstance(mop, list) and len(mop) == 2 and mop[0] == "poll" and isinstance(mop[1], dict):
        return ["poll", {str(k): v for k, v in mop[1].items()}]
    return mop


def _decode_mop(mop: Any) -> Any:
    if isinstance(mop, list) and len(mop) == 2 and mop[0] == "poll" and isinstance(mop[1], dict):
        return ["poll", {int(k): [list(p) for p in v] for k, v in mop[1].items()}]
    return mop


class HistoryRecorder:
    """Appends events with consecutive indices, stamped with the current step and time."""

    __slots__ = ("events", "step", "time")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.step = 0
        self.time = 0

    def add(
        self,
        process: str,
        type: str,
        f: str,
        value: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> Event:
        event = Event(len(self.events), self.step, self.time, process, type, f, value, meta)
        self.events.append(event)
        return event

    def internal(self, node: str, f: str, **value: Any) -> Event:
        return self.add(node, INTERNAL, f, value)
