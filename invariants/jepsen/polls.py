"""Consumer progress: skips and backward jumps in polls, inside one op and between ops.

A consumer that keeps its assignment should see each key's log in order, one record after
another.  Skips lose records for that consumer; backward jumps re-deliver them.  Jepsen's
exemptions are reproduced: keys in the op's ``:rebalance-log`` (inside one op), and keys
dropped by an ``:assign``/``:subscribe`` (between ops).  Deltas are in dense indices.
"""

from __future__ import annotations

import bisect
from operator import itemgetter
from collections.abc import Iterator
from typing import Any

from .ops import History, Op
from .versions import VersionOrders


def _delta(by_value: dict, v1: Any, v2: Any) -> tuple[int, int | None, int | None]:
    i1 = by_value.get(v1)
    i2 = by_value.get(v2)
    if i1 is None or i2 is None:
        return 1, i1, i2
    return i2 - i1, i1, i2


def internal_polls(history: History, orders: VersionOrders) -> tuple[list, list]:
    """``int-poll-skip`` and ``int-nonmonotonic-poll``: consecutive reads of a key in one op."""
    skips, nonmono = [], []
    for op in history.completions:
        if not op.reads:
            continue
        for k, pairs in op.reads.items():
            if len(pairs) < 2 or k in op.rebalanced:
                continue
            order = orders.get(k)
            if order is None:
                continue
            by_value = order.by_value
            by_index = order.by_index
            idx = list(map(by_value.get, map(_second, pairs)))
            if None not in idx and idx == list(range(idx[0], idx[0] + len(idx))):
                continue  # read the log in order, one record after another: the usual case
            i1 = None
            v1 = None
            for _, v2 in pairs:
                i2 = by_value.get(v2)
                if i1 is not None and i2 is not None:
                    delta = i2 - i1
                    if delta > 1:
                        skips.append({"key": k, "values": [v1, v2], "delta": delta,
                                      "skipped": by_index[i1 + 1:i2], "op": op.index})
                    elif delta < 1:
                        nonmono.append({"key": k, "values": [v1, v2], "delta": delta,
                                        "op": op.index})
                i1, v1 = i2, v2
    return skips, nonmono


def external_polls(history: History, orders: VersionOrders) -> tuple[list, list]:
    """``poll-skip`` and ``nonmonotonic-poll``: one process's successive reads of a key.

    Compares an op's first read of a key with the last read of that key by the process's
    most recent ``:ok`` op that read it.  ``:fail``/``:info`` polls are compared too (an
    aborted transaction must rewind, not skip) but do not move the consumer forward.
    """
    skips, nonmono = [], []
    empty: dict = {}
    for process in history.by_process:
        last_reads: dict[Any, Op] = {}
        for op in history.by_process[process]:
            f = op.f
            if f == "assign" or f == "subscribe":
                if op.type == "ok" or op.type == "info":
                    keep = op.value if isinstance(op.value, (list, tuple)) else ()
                    last_reads = {k: last_reads[k] for k in keep
                                  if _hashable(k) and k in last_reads}
                continue
            reads = op.reads
            if not reads:
                continue
            for k, pairs in reads.items():
                prev = last_reads.get(k)
                if prev is None:
                    continue
                prev_pairs = prev.reads[k]
                if not prev_pairs or not pairs:
                    continue
                order = orders.get(k)
                by_value = order.by_value if order is not None else empty
                v = prev_pairs[-1][1]
                v2 = pairs[0][1]
                delta, i, i2 = _delta(by_value, v, v2)
                if delta > 1:
                    skips.append({"key": k, "delta": delta,
                                  "skipped": order.by_index[i + 1:i2],
                                  "ops": [prev.index, op.index]})
                elif delta < 1:
                    nonmono.append({"key": k, "values": [v, v2], "delta": delta,
                                    "ops": [prev.index, op.index]})
            if op.type == "ok":
                for k in reads:
                    last_reads[k] = op
    return skips, nonmono


def _hashable(k: Any) -> bool:
    return not isinstance(k, (list, dict, set))


def _max_offsets(op: Op) -> dict[Any, int]:
    """Jepsen's ``op->max-offsets`` for ``:ok``/``:info`` ops (including its quirks)."""
    if op.type != "ok" and op.type != "info":
        return {}
    out: dict[Any, int] = {}
    if op.reads:
        for k, pairs in op.reads.items():
            offs = list(map(_first, pairs))
            if None in offs:
                offs = [o for o in offs if o is not None]
            out[k] = max(offs) if offs else -1
    if op.writes:
        sends: dict[Any, int] = {}
        for mop in op.value:
            if mop[0] != "send":
                continue
            raw = mop[2]
            if isinstance(raw, (list, tuple)) and len(raw) == 2 and raw[0] is not None:
                k = mop[1]
                sends[k] = max(sends.get(k, 0), raw[0])
            else:
                sends = {}  # Jepsen's reduce returns nil here, forgetting earlier sends
        for k, m in sends.items():
            if k not in out or out[k] < m:
                out[k] = m
    return out


_NO_OFFSETS: dict = {}
_first = itemgetter(0)
_second = itemgetter(1)


class _Expiry:
    """For one key: when each offset was first known to exist (piecewise constant)."""

    __slots__ = ("bounds", "times")

    def __init__(self) -> None:
        self.bounds: list[int] = []  # highest offset of each segment, increasing
        self.times: list[int] = []

    def learn(self, offset: int, time: int) -> None:
        if not self.bounds or offset > self.bounds[-1]:
            self.bounds.append(offset)
            self.times.append(time)

    def known_at(self, offset: int) -> int | None:
        i = bisect.bisect_left(self.bounds, offset)
        if i == len(self.bounds):
            return None
        return self.times[i]


def realtime_lag(history: History) -> Iterator[tuple[int, Any, Any, int]]:
    """Jepsen's conservative realtime lag of each ``:ok`` poll, per key it is assigned.

    Yields ``(time, process, key, lag)`` per ``:ok`` poll and assigned key (Jepsen's lag
    maps, as tuples).  Lag = invocation time of the poll minus the time at which the offset after the
    highest one the process had read was known to exist (0 if never known).  Times are
    in the history's units (milliseconds for kafkacheck histories).
    """
    expiry: dict[Any, _Expiry] = {}
    max_offsets: dict[int, dict] = {}
    for op in history.completions:
        if (op.type == "ok" or op.type == "info") and (op.reads or op.writes):
            mo = max_offsets[op.pos] = _max_offsets(op)
            for k, o in mo.items():
                e = expiry.get(k)
                if e is None:
                    expiry[k] = e = _Expiry()
                e.learn(o, op.time)
    process_offsets: dict[Any, dict[Any, int]] = {}
    for op in history.completions:
        if op.type != "ok":
            continue
        f = op.f
        if f == "assign":
            offsets = process_offsets.get(op.process, {})
            keys = op.value if isinstance(op.value, (list, tuple)) else ()
            process_offsets[op.process] = {k: offsets.get(k, -1) for k in keys if _hashable(k)}
        elif f == "subscribe":
            process_offsets[op.process] = {}
        elif f == "poll" or f == "txn":
            offsets = process_offsets.get(op.process)
            if offsets is None:
                process_offsets[op.process] = offsets = {}
            for k, o in max_offsets.get(op.pos, _NO_OFFSETS).items():
                if offsets.get(k, -2) < o:
                    offsets[k] = o
            t = op.invoke_time
            for k, o in offsets.items():
                e = expiry.get(k)
                at = e.known_at(o + 1) if e is not None else None
                yield t, op.process, k, (0 if at is None or at >= t else t - at)
