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
    """One completed client operation with its sends and polls grouped by key, in mop order.

    ``pos`` is its position among completions (the node id in the dependency graph),
    ``seq`` / ``invoke_seq`` its completion's / invocation's position in the client history.
    ``reads`` / ``writes`` map key -> list of ``(offset, value)`` (offset may be None); they
    are None for ops whose ``f`` carries no micro-ops.
    """

    __slots__ = ("index", "pos", "seq", "process", "type", "f", "time", "value", "reads",
                 "writes", "rebalanced", "invoke_index", "invoke_seq", "invoke_time")

    def __init__(self, index: int, pos: int, process: Any, type_: str, f: str, time: int,
                 value: Any) -> None:
        self.index = index
        self.pos = pos
        self.seq = pos
        self.process = process
        self.type = type_
        self.f = f
        self.time = time
        self.value = value
        self.reads: dict[Any, list] | None = None
        self.writes: dict[Any, list] | None = None
        self.rebalanced: frozenset = frozenset()
        self.invoke_index = index
        self.invoke_seq = pos
        self.invoke_time = time

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Op({self.index} {self.process} {self.type} {self.f} {self.value!r})"


def _pair(index: int, raw: Any) -> Any:
    """A send's value as ``(offset, value)``: ``[offset value]`` (shared) or a bare value."""
    if type(raw) is list or type(raw) is tuple:
        if len(raw) != 2:
            raise MalformedOp(index, f"send value {raw!r} is not [offset value]")
        offset, value = raw
        if offset is not None and type(offset) is not int:
            raise MalformedOp(index, f"send offset {offset!r} is not an integer or nil")
        if type(value) in _UNHASHABLE:
            return offset, freeze(value)
        return raw
    if type(raw) in _UNHASHABLE:
        return None, freeze(raw)
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
                frozen = False
                for p in pairs:
                    if (type(p) is not list and type(p) is not tuple) or len(p) != 2:
                        raise MalformedOp(index, f"polled {p!r} of key {k!r} is not [offset value]")
                    o = p[0]
                    if o is not None and type(o) is not int:
                        raise MalformedOp(index, f"polled offset {o!r} is not an integer or nil")
                    if type(p[1]) in _UNHASHABLE:
                        frozen = True
                if frozen:
                    pairs = [(p[0], freeze(p[1])) for p in pairs]
                # The event's own pair lists are shared, never copied (10^6-op histories
                # hold millions of pairs); they are never mutated here.
                prev = reads.get(k)
                reads[k] = pairs if prev is None else [*prev, *pairs]
        else:
            raise MalformedOp(index, f"unknown micro-op {kind!r}")
    if not validate_only:
        op.reads = reads
        op.writes = writes


def check_mops(index: int, f: str, value: Any) -> None:
    """Raise MalformedOp unless ``value`` is a well-shaped :send/:poll/:txn value.

    The same rules as ``extract``, without building anything (used when reading files).
    """
    if type(value) is not list and type(value) is not tuple:
        raise MalformedOp(index, f":{f} value must be a vector of micro-ops, got {value!r}")
    for mop in value:
        n = len(mop) if type(mop) is list or type(mop) is tuple else 0
        kind = mop[0] if n else None
        if kind == "poll" and f != "send":
            if n == 1:
                continue
            m = mop[1] if n == 2 else None
            if not isinstance(m, dict):
                break
            for k, pairs in m.items():
                if type(k) in _UNHASHABLE or (type(pairs) is not list
                                             and type(pairs) is not tuple):
                    break
                for p in pairs:
                    if ((type(p) is not list and type(p) is not tuple) or len(p) != 2
                            or (p[0] is not None and type(p[0]) is not int)):
                        break
                else:
                    continue
                break
            else:
                continue
            break
        elif kind == "send" and f != "poll" and n == 3:
            k, raw = mop[1], mop[2]
            if type(k) in _UNHASHABLE:
                break
            if type(raw) is list or type(raw) is tuple:
                if len(raw) != 2 or (raw[0] is not None and type(raw[0]) is not int):
                    break
        else:
            break
    else:
        return
    # Something is wrong: let extract() find it and say what.
    extract(Op(index, 0, None, "ok", f, 0, value), validate_only=True)
    raise MalformedOp(index, f"malformed :{f} value {value!r}")


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
    """Completed client ops in history order, each knowing its invocation.

    Invocations themselves carry nothing the checks need beyond their position and time,
    so they are not kept as ops (halving the work on large histories).  ``timeline``
    records, for send/poll/txn ops, the order of invocations (``pos``) and completions
    (``~pos``): Elle's realtime order is read from it.
    """

    __slots__ = ("ops", "completions", "by_process", "timeline", "client_ops", "by_type")

    def __init__(self, ops: list[Op], timeline: list[int], client_ops: int,
                 by_type: dict[str, int]) -> None:
        self.ops = ops
        self.completions = ops
        self.timeline = timeline
        self.client_ops = client_ops
        self.by_type = by_type
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
    timeline: list[int | None] = []
    pending: dict[Any, tuple[int, int, int, int]] = {}  # process -> invocation facts
    by_type = {t: 0 for t in CLIENT_TYPES}
    seq = 0
    for event in events:
        t = event.type
        if t not in by_type or event.f in KAFKACHECK_ONLY_FS:
            continue
        by_type[t] += 1
        seq += 1
        txn = event.f in TXN_FS
        if t == "invoke":
            slot = -1
            if txn:
                slot = len(timeline)
                timeline.append(None)  # filled in when the op completes
            pending[event.process] = (event.index, seq, event.time, slot)
            continue
        pos = len(ops)
        op = Op(event.index, pos, event.process, t, event.f, event.time, event.value)
        op.seq = seq
        if txn:
            extract(op)
        if event.meta:
            op.rebalanced = rebalanced_keys(event.index, event.meta)
        inv = pending.pop(op.process, None)
        if inv is not None:
            op.invoke_index, op.invoke_seq, op.invoke_time, slot = inv
            if txn:
                if slot >= 0:
                    timeline[slot] = pos
                else:
                    timeline.append(pos)
        elif txn:
            timeline.append(pos)  # a completion without invocation: invoked right here
        if txn:
            timeline.append(~pos)
        ops.append(op)
    return History(ops, [x for x in timeline if x is not None], seq, by_type)


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
