"""The client history reduced to what Jepsen's Kafka checker reasons about.

Why a separate record: every check below walks the same operations many times, asking
"what did this op send to key k, in which order?" and "what did it poll?".  Extracting
those per-key lists once (instead of re-reading micro-ops in each check) keeps the whole
analysis close to linear, and gives every check the same view of the history, including
Jepsen's quirks (a poll that returned ``{k []}`` still counts as a read of ``k``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from model.history import Event

CLIENT_TYPES = ("invoke", "ok", "fail", "info")
TXN_FS = frozenset({"send", "poll", "txn"})
KAFKACHECK_ONLY_FS = frozenset({"process", "commit"})
KNOWN_FS = frozenset({"send", "poll", "txn", "assign", "subscribe", "crash",
                      "debug-topic-partitions"})


class MalformedOp(ValueError):
    """A client operation whose value does not have Jepsen's shape."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"op {index}: {message}")
        self.index = index
        self.detail = message


def freeze(value: Any) -> Any:
    """A hashable stand-in for a value (lists become tuples), so values can index maps."""
    t = type(value)
    if t is list or t is tuple:
        return tuple(freeze(v) for v in value)
    if t is dict:
        return tuple(sorted(((freeze(k), freeze(v)) for k, v in value.items()), key=repr))
    if t is set or t is frozenset:
        return frozenset(freeze(v) for v in value)
    return value


_UNHASHABLE = (list, dict, set)


class Op:
    """One client operation with its sends and polls grouped by key, in mop order.

    ``reads`` / ``writes`` map key -> list of ``(offset, value)`` (offset may be None).
    They are None for invocations and for ops whose ``f`` carries no micro-ops.
    """

    __slots__ = ("index", "pos", "process", "type", "f", "time", "value", "reads",
                 "writes", "rebalanced", "invoke_index", "invoke_pos", "invoke_time")

    def __init__(self, index: int, pos: int, process: Any, type_: str, f: str, time: int,
                 value: Any) -> None:
        self.index = index
        self.pos = pos
        self.process = process
        self.type = type_
        self.f = f
        self.time = time
        self.value = value
        self.reads: dict[Any, list] | None = None
        self.writes: dict[Any, list] | None = None
        self.rebalanced: frozenset = frozenset()
        self.invoke_index = index
        self.invoke_pos = pos
        self.invoke_time = time

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Op({self.index} {self.process} {self.type} {self.f} {self.value!r})"


def _pair(index: int, raw: Any) -> tuple[Any, Any]:
    """A send's value: ``[offset value]`` or a bare value (offset unknown)."""
    if type(raw) is list or type(raw) is tuple:
        if len(raw) != 2:
            raise MalformedOp(index, f"send value {raw!r} is not [offset value]")
        offset, value = raw
        if offset is not None and type(offset) is not int:
            raise MalformedOp(index, f"send offset {offset!r} is not an integer or nil")
        if type(value) in _UNHASHABLE:
            value = freeze(value)
        return offset, value
    return None, raw


def extract(op: Op, validate_only: bool = False) -> None:
    """Fill ``op.reads`` and ``op.writes`` from its micro-ops; raise MalformedOp on bad shape."""
    index = op.index
    value = op.value
    if type(value) is not list and type(value) is not tuple:
        raise MalformedOp(index, f":{op.f} value must be a vector of micro-ops, got {value!r}")
    reads: dict[Any, list] | None = None
    writes: dict[Any, list] | None = None
    f = op.f
    for mop in value:
        if (type(mop) is not list and type(mop) is not tuple) or not mop:
            raise MalformedOp(index, f"micro-op {mop!r} is not a vector")
        kind = mop[0]
        if kind == "send":
            if f == "poll":
                raise MalformedOp(index, "a :poll op may only contain [:poll] micro-ops")
            if len(mop) != 3:
                raise MalformedOp(index, f"send micro-op {mop!r} is not [:send key value]")
            k = mop[1]
            if type(k) in _UNHASHABLE:
                raise MalformedOp(index, f"send key {k!r} is not a scalar")
            if writes is None:
                writes = {}
            lst = writes.get(k)
            if lst is None:
                writes[k] = lst = []
            lst.append(_pair(index, mop[2]))
        elif kind == "poll":
            if f == "send":
                raise MalformedOp(index, "a :send op may only contain [:send ...] micro-ops")
            if len(mop) == 1:
                continue
            if len(mop) != 2 or not isinstance(mop[1], dict):
                raise MalformedOp(index, f"poll micro-op {mop!r} is not [:poll {{key pairs}}]")
            if reads is None:
                reads = {}
            for k, pairs in mop[1].items():
                if type(k) in _UNHASHABLE:
                    raise MalformedOp(index, f"poll key {k!r} is not a scalar")
                if type(pairs) is not list and type(pairs) is not tuple:
                    raise MalformedOp(index, f"poll of key {k!r} is not a vector of pairs")
                lst = reads.get(k)
                if lst is None:
                    reads[k] = lst = []
                for p in pairs:
                    if (type(p) is not list and type(p) is not tuple) or len(p) != 2:
                        raise MalformedOp(index, f"polled {p!r} of key {k!r} is not [offset value]")
                    o, v = p
                    if o is not None and type(o) is not int:
                        raise MalformedOp(index, f"polled offset {o!r} is not an integer or nil")
                    if type(v) in _UNHASHABLE:
                        v = freeze(v)
                    lst.append((o, v))
        else:
            raise MalformedOp(index, f"unknown micro-op {kind!r}")
    if not validate_only:
        op.reads = reads
        op.writes = writes


def rebalanced_keys(index: int, meta: Any) -> frozenset:
    """Keys named in the op's ``:rebalance-log`` (carried in ``Event.meta``)."""
    if not meta:
        return frozenset()
    log = meta.get("rebalance-log")
    if not log:
        return frozenset()
    keys: set = set()
    if type(log) is not list and type(log) is not tuple:
        raise MalformedOp(index, "rebalance-log must be a vector of {:keys [...]} maps")
    for entry in log:
        if not isinstance(entry, dict):
            raise MalformedOp(index, "rebalance-log entries must be maps")
        ks = entry.get("keys") or ()
        if type(ks) is not list and type(ks) is not tuple:
            raise MalformedOp(index, "rebalance-log :keys must be a vector")
        keys.update(ks)
    return frozenset(keys)


class History:
    """Client ops in history order, completions paired with their invocations."""

    __slots__ = ("ops", "completions", "by_process")

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.completions = [op for op in ops if op.type != "invoke"]
        by_process: dict[Any, list[Op]] = {}
        for op in ops:
            lst = by_process.get(op.process)
            if lst is None:
                by_process[op.process] = lst = []
            lst.append(op)
        self.by_process = by_process


def client_ops(events: Iterable[Event]) -> History:
    """Jepsen's view of a kafkacheck history: client ops minus kafkacheck's own ``f``s."""
    ops: list[Op] = []
    pending: dict[Any, Op] = {}
    for event in events:
        t = event.type
        if t not in CLIENT_TYPES or event.f in KAFKACHECK_ONLY_FS:
            continue
        op = Op(event.index, len(ops), event.process, t, event.f, event.time, event.value)
        if event.f in TXN_FS and t != "invoke":
            extract(op)
        if event.meta:
            op.rebalanced = rebalanced_keys(event.index, event.meta)
        if t == "invoke":
            pending[op.process] = op
        else:
            inv = pending.pop(op.process, None)
            if inv is not None:
                op.invoke_index = inv.index
                op.invoke_pos = inv.pos
                op.invoke_time = inv.time
        ops.append(op)
    return History(ops)


def sort_key(x: Any) -> tuple:
    """A total order over mixed keys/values, for deterministic reports."""
    if type(x) is bool:
        return (1, str(x))
    if isinstance(x, (int, float)):
        return (0, x)
    if isinstance(x, str):
        return (2, x)
    return (3, repr(x))


def sorted_values(xs: Iterable[Any]) -> list:
    return sorted(xs, key=sort_key)


def first_by_order(xs: Sequence[Any]) -> Any:
    return min(xs, key=sort_key)
