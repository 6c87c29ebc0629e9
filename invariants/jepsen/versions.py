"""Version orders: which value sits at which offset of each key, and dense indices.

Why dense indices: Kafka offsets have gaps (transaction markers take an offset but are
never returned to consumers), so "skipped a record" must be measured in positions among
the offsets we know hold values, not in raw offsets.  Jepsen's rules, reproduced here:

* polls count from every completed op, even ``:fail`` and ``:info`` ones (a consumer must
  never return bad data, whether or not its transaction commits);
* sends count only from ops that must have committed: ``:ok`` ones, or ``:info`` ones one
  of whose values some ``:ok`` poll saw;
* when one offset holds several values (``inconsistent-offsets``) the order keeps one of
  them (we pick the smallest, deterministically); ``by_value`` maps a value to the *last*
  index where it was chosen.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from .ops import History, Op, first_by_order, sorted_values


class KeyOrder:
    """The version order of one key.

    ``by_index[i]`` is the value at the i-th non-empty offset (``offsets[i]``); where that
    offset holds several values, ``multi[i]`` has all of them (sorted) and ``by_index``
    the first.  ``first_index`` / ``last_index`` give each value's earliest / latest index
    over all values seen; without conflicts or duplicates they are ``by_value`` itself.
    """

    __slots__ = ("offsets", "by_index", "multi", "by_value", "first_index", "last_index",
                 "has_duplicates")

    def __init__(self, log: dict[int, Any], multi_at_offset: dict[int, set]) -> None:
        offsets = sorted(log)
        self.offsets: list[int] = offsets
        by_index = [log[o] for o in offsets]
        multi: dict[int, tuple] = {}
        if multi_at_offset:
            for i, o in enumerate(offsets):
                vs = multi_at_offset.get(o)
                if vs is not None:
                    ordered = tuple(sorted_values(vs))
                    multi[i] = ordered
                    by_index[i] = ordered[0]
        self.by_index = by_index
        self.multi = multi
        by_value: dict[Any, int] = {}
        for i, v in enumerate(by_index):
            by_value[v] = i
        self.by_value = by_value
        self.has_duplicates = len(by_value) != len(by_index)
        if not multi and not self.has_duplicates:
            self.first_index = self.last_index = by_value
            return
        first: dict[Any, int] = {}
        last: dict[Any, int] = {}
        for i, v in enumerate(by_index):
            for x in multi.get(i, (v,)):
                if x not in first:
                    first[x] = i
                last[x] = i
        self.first_index = first
        self.last_index = last
        self.has_duplicates = any(first[x] != last[x] for x in first)

    def values_at(self, i: int) -> tuple:
        vs = self.multi.get(i)
        return (self.by_index[i],) if vs is None else vs

    def previous_value(self, v: Any, missing: Any = None) -> Any:
        i = self.by_value.get(v)
        if i is None or i == 0:
            return missing
        return self.by_index[i - 1]


def ok_reads(history: History) -> dict[Any, set]:
    """Key -> every value some ``:ok`` op polled (Jepsen's ``(:ok reads-by-type)``)."""
    out: dict[Any, set] = {}
    for op in history.completions:
        if op.type == "ok" and op.reads:
            for k, pairs in op.reads.items():
                s = out.get(k)
                if s is None:
                    out[k] = s = set()
                s.update(map(_second, pairs))
    return out


def must_have_committed(op: Op, reads_ok: dict[Any, set]) -> bool:
    """``:ok``, or ``:info`` with at least one of its sent values seen by an ``:ok`` poll."""
    if op.type == "ok":
        return True
    if op.type != "info" or not op.writes:
        return False
    for k, pairs in op.writes.items():
        seen = reads_ok.get(k)
        if seen:
            for _, v in pairs:
                if v in seen:
                    return True
    return False


class VersionOrders:
    """All keys' orders plus the ``inconsistent-offsets`` and ``duplicate`` anomalies."""

    def __init__(self, history: History, reads_ok: dict[Any, set]) -> None:
        logs: dict[Any, dict[int, Any]] = {}
        multi: dict[Any, dict[int, set]] = {}

        def place(k: Any, pairs: list) -> None:
            log = logs.get(k)
            if log is None:
                logs[k] = log = {}
            for o, v in pairs:
                if o is None:
                    continue
                cur = log.get(o, _MISSING)
                if cur is _MISSING:
                    log[o] = v
                elif cur != v or type(cur) is not type(v):
                    km = multi.get(k)
                    if km is None:
                        multi[k] = km = {}
                    s = km.get(o)
                    if s is None:
                        km[o] = s = {cur}
                    s.add(v)

        for op in history.completions:
            if op.reads:
                for k, pairs in op.reads.items():
                    place(k, pairs)
            if op.writes and must_have_committed(op, reads_ok):
                for k, pairs in op.writes.items():
                    place(k, pairs)
        self.orders: dict[Any, KeyOrder] = {
            k: KeyOrder(log, multi.get(k, {})) for k, log in logs.items()
        }
        self.multi = multi

    def get(self, k: Any) -> KeyOrder | None:
        return self.orders.get(k)

    def inconsistent_offsets(self) -> list[dict]:
        out = []
        for k in sorted_values(self.multi):
            order = self.orders[k]
            index_of = {o: i for i, o in enumerate(order.offsets)}
            for o in sorted(self.multi[k]):
                out.append({"key": k, "offset": o, "index": index_of[o],
                            "values": sorted_values(self.multi[k][o])})
        return out

    def duplicates(self) -> list[dict]:
        out = []
        for k in sorted_values(self.orders):
            order = self.orders[k]
            if not order.has_duplicates:
                continue
            first, last = order.first_index, order.last_index
            dup_values = [v for v, i in first.items() if last[v] != i]
            offsets_of: dict[Any, list[int]] = {v: [] for v in dup_values}
            for i, o in enumerate(order.offsets):
                for v in order.values_at(i):
                    lst = offsets_of.get(v)
                    if lst is not None:
                        lst.append(o)
            for v in sorted_values(dup_values):
                out.append({"key": k, "value": v, "count": len(offsets_of[v]),
                            "offsets": offsets_of[v]})
        return out


_MISSING = object()
_second = itemgetter(1)


def pick(values: Any) -> Any:
    return first_by_order(list(values))


def writer_of(history: History) -> dict[Any, dict[Any, Op]]:
    """Key -> value -> the completed op that sent it (any completion type; last wins)."""
    out: dict[Any, dict[Any, Op]] = {}
    for op in history.completions:
        if op.writes:
            for k, pairs in op.writes.items():
                m = out.get(k)
                if m is None:
                    out[k] = m = {}
                for _, v in pairs:
                    m[v] = op
    return out


def readers_of(history: History) -> dict[Any, dict[Any, list[Op]]]:
    """Key -> value -> completed ops that polled it, in history order."""
    out: dict[Any, dict[Any, list[Op]]] = {}
    for op in history.completions:
        if op.reads:
            for k, pairs in op.reads.items():
                m = out.get(k)
                if m is None:
                    out[k] = m = {}
                for _, v in pairs:
                    lst = m.get(v)
                    if lst is None:
                        m[v] = [op]
                    elif lst[-1] is not op:
                        lst.append(op)
    return out
