"""What happened to sent values: aborted reads, lost writes, unseen values, own-write reads.

These are the anomalies a Kafka user feels as "my message vanished" (``lost-write``,
``unseen``) or "a consumer saw something that never committed" (``G1a``,
``precommitted-read``).  There is deliberately no intermediate-read (G1b) check: in a log
a consumer reading part of a batch or transaction and the rest later is normal, and
Jepsen's Kafka checker has none either (kafka.clj, note 7 of its docstring).
"""

from __future__ import annotations

from typing import Any

from .ops import History, Op, sorted_values
from .versions import VersionOrders, must_have_committed


def g1a(history: History, writer: dict[Any, dict[Any, Op]]) -> list[dict]:
    """An ``:ok`` poll saw a value whose send definitely failed (aborted read)."""
    failed: dict[Any, set] = {}
    for op in history.completions:
        if op.type == "fail" and op.writes:
            for k, pairs in op.writes.items():
                failed.setdefault(k, set()).update(v for _, v in pairs)
    if not failed:
        return []
    out = []
    for op in history.completions:
        if op.type != "ok" or not op.reads:
            continue
        for k, pairs in op.reads.items():
            bad = failed.get(k)
            if not bad:
                continue
            for _, v in pairs:
                if v in bad:
                    w = writer.get(k, {}).get(v)
                    out.append({"key": k, "value": v,
                                "writer": None if w is None else w.index,
                                "reader": op.index})
    return out


def precommitted_reads(history: History) -> list[dict]:
    """An op polled a value it sent itself: Kafka consumers must never see uncommitted data."""
    out = []
    for op in history.completions:
        if not op.reads or not op.writes:
            continue
        for k, pairs in op.writes.items():
            read = op.reads.get(k)
            if not read:
                continue
            sent = {v for _, v in pairs}
            hit = next((v for _, v in read if v in sent), _NONE)
            if hit is not _NONE:
                out.append({"op": op.index, "key": k, "value": hit})
                break
    return out


_NONE = object()
_UNKNOWN = object()


def lost_writes(history: History, orders: VersionOrders, reads_ok: dict[Any, set],
                writer: dict[Any, dict[Any, Op]],
                stats: dict) -> list[dict]:
    """Committed values below the highest index some ``:ok`` poll reached, never polled.

    The bound uses each read value's *earliest* index and the candidates each value's
    *last* index, so that inconsistent or duplicated offsets cannot hide a loss.
    """
    out = []
    for k in sorted_values(reads_ok):
        seen = reads_ok[k]
        order = orders.get(k)
        if order is None:
            continue
        first = order.first_index
        bound = -1
        for v in seen:
            i = first.get(v)
            if i is not None and i > bound:
                bound = i
        if bound < 0:
            continue
        last = order.last_index
        kw = writer.get(k, {})
        # The reader that proves the bound: a value whose last appearance is at `bound`.
        at_bound = [v for v in order.values_at(bound) if last[v] == bound]
        max_read = _UNKNOWN
        by_index, multi = order.by_index, order.multi
        for i in range(bound + 1):
            vs = multi.get(i) if multi else None
            for v in (by_index[i],) if vs is None else vs:
                if v in seen or last[v] != i:
                    continue
                w = kw.get(v)
                if w is None:
                    stats["values-without-writer"] = stats.get("values-without-writer", 0) + 1
                    continue
                if not must_have_committed(w, reads_ok):
                    continue
                if max_read is _UNKNOWN:
                    max_read = (_first_reader(history, k, sorted_values(at_bound)[0])
                                if at_bound else None)
                out.append({"key": k, "value": v, "index": first[v],
                            "max-read-index": bound, "writer": w.index,
                            "max-read": max_read})
    return out


def _first_reader(history: History, k: Any, v: Any) -> int | None:
    """Index of the first completed op that polled ``v`` from ``k`` (only for reports)."""
    for op in history.completions:
        if op.reads:
            pairs = op.reads.get(k)
            if pairs and any(p[1] == v for p in pairs):
                return op.index
    return None


def unseen(history: History, reads_ok: dict[Any, set]) -> list[dict]:
    """Values acknowledged by ``:ok`` sends that no ``:ok`` poll ever returned.

    Jepsen reports one map ``{:unseen {k count} :messages {k #{v}}}``; we report one entry
    per key with the same facts: ``count`` and the ``values``.  (``reads_ok`` is exactly
    what Jepsen's ``polled`` accumulates: every value an ``:ok`` op polled.)
    """
    missing: dict[Any, dict[Any, None]] = {}
    last_time = 0
    empty: set = set()
    for op in history.completions:
        if op.type != "ok" or op.f not in ("send", "poll", "txn"):
            continue
        last_time = op.time
        if op.writes:
            for k, pairs in op.writes.items():
                seen = reads_ok.get(k, empty)
                for p in pairs:
                    v = p[1]
                    if v not in seen:
                        d = missing.get(k)
                        if d is None:
                            missing[k] = d = {}
                        d[v] = None
    return [{"key": k, "count": len(missing[k]), "values": sorted_values(missing[k]),
             "time": last_time} for k in sorted_values(missing)]
