"""Producer order: did a producer's records land in the log in the order it sent them?

Inside one op (``int-send-skip``, ``int-nonmonotonic-send``) and across one process's
successive ops (``nonmonotonic-send``).  Skips inside a transaction are normal in Kafka
(other producers interleave), so ``int-send-skip`` is reported but allowed.
"""

from __future__ import annotations

from typing import Any

from .ops import History, Op
from .versions import VersionOrders


def internal_sends(history: History, orders: VersionOrders) -> tuple[list, list]:
    """Consecutive sends to one key within one completed op, compared in dense indices."""
    skips, nonmono = [], []
    for op in history.completions:
        if not op.writes:
            continue
        for k, pairs in op.writes.items():
            if len(pairs) < 2:
                continue
            order = orders.get(k)
            if order is None:
                continue
            by_value = order.by_value
            prev_v = pairs[0][1]
            prev_i = by_value.get(prev_v)
            for _, v in pairs[1:]:
                i = by_value.get(v)
                if prev_i is not None and i is not None:
                    delta = i - prev_i
                    if delta > 1:
                        skips.append({"key": k, "values": [prev_v, v], "delta": delta,
                                      "skipped": order.by_index[prev_i + 1:i],
                                      "op": op.index})
                    elif delta < 1:
                        nonmono.append({"key": k, "values": [prev_v, v], "delta": delta,
                                        "op": op.index})
                prev_v, prev_i = v, i
    return skips, nonmono


def nonmonotonic_sends(history: History, orders: VersionOrders) -> list[dict]:
    """A process's first send to a key in one op lands at or before its last send in the
    previous ``:ok``/``:info`` op that sent to that key (no reassignment in between)."""
    out = []
    for ops in history.by_process.values():
        last_sends: dict[Any, Op] = {}
        for op in ops:
            if op.type != "ok" and op.type != "info":
                continue
            if op.f == "assign" or op.f == "subscribe":
                keep = op.value if isinstance(op.value, (list, tuple)) else ()
                last_sends = {k: last_sends[k] for k in keep
                              if not isinstance(k, (list, dict, set)) and k in last_sends}
                continue
            writes = op.writes
            if not writes:
                continue
            for k, pairs in writes.items():
                prev = last_sends.get(k)
                if prev is not None:
                    order = orders.get(k)
                    if order is not None:
                        v = prev.writes[k][-1][1]
                        v2 = pairs[0][1]
                        i = order.by_value.get(v)
                        i2 = order.by_value.get(v2)
                        if i is not None and i2 is not None and i2 - i < 1:
                            out.append({"key": k, "values": [v, v2], "delta": i2 - i,
                                        "ops": [prev.index, op.index]})
                last_sends[k] = op
    return out
