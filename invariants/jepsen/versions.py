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

from itertools import chain
from operator import itemgetter
from typing import Any

from .ops import History, Op, sorted_values


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
        # Gather each key's (offset, value) lists first, then build its log with C-level
        # dict/set updates: a per-pair Python loop is what dominated on 10^6-op histories.
        chunks: dict[Any, list] = {}
        for op in history.completions:
            if op.reads:
                for k, pairs in op.reads.items():
                    if pairs:
                        c = chunks.get(k)
                        if c is None:
                            chunks[k] = [pairs]
                        else:
                            c.append(pairs)
            if op.writes and must_have_committed(op, reads_ok):
                for k, pairs in op.writes.items():
                    c = chunks.get(k)
                    if c is None:
                        chunks[k] = [pairs]
                    else:
                        c.append(pairs)
        self.orders: dict[Any, KeyOrder] = {}
        self.multi: dict[Any, dict[int, set]] = {}
        for k, cs in chunks.items():
            # The distinct (offset, value) pairs, in one C-level pass over all of the
            # key's pairs; without conflicts each offset has one value, so the log is
            # just these pairs (where an offset has several, ``multi`` decides below).
            # Backwards, so that of equal values (1, 1.0, True) the last one read is
            # kept, as the dict updates this replaces did.
            distinct: set = set(map(tuple, chain.from_iterable(map(reversed, reversed(cs)))))
            log: dict = dict(distinct)
            if None in log:
                del log[None]
                distinct = {t for t in distinct if t[0] is not None}
            multi: dict[int, set] = {}
            # (Like any dict, this treats 1, 1.0 and True as one value; Jepsen would not.)
            if len(distinct) != len(log):
                by_offset: dict[int, list] = {}
                for o, v in distinct:
                    by_offset.setdefault(o, []).append(v)
                multi = {o: set(vs) for o, vs in by_offset.items() if len(vs) > 1}
                if multi:
                    self.multi[k] = multi
            if log:
                self.orders[k] = KeyOrder(log, multi)

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




_second = itemgetter(1)


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
