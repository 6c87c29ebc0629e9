"""Jepsen's Kafka checker (``jepsen.tests.kafka``), reimplemented over kafkacheck events.

``analyze`` finds every anomaly Jepsen's checker names, with Jepsen's definitions and
field names, plus kafkacheck's additions (rw edges, G-single, G2, per-key realtime
lag), and applies Jepsen's allowed-anomaly rules to decide validity.  It reads only the
client operations of the history, so it works the same on a model run and on a
``history.edn`` recorded against a real cluster (see ``kafkacheck.jepsen_io``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from model.history import Event

from . import cycles, polls, sends, writes
from .graph import WR, WW, RW, DependencyGraph
from .ops import History, client_ops, sort_key
from .parallel import FORK_THRESHOLD_OPS, Deferred, fork_allowed
from .rules import allowed_anomalies, bad_anomaly_types, parse_sub_via
from .versions import VersionOrders, ok_reads, writer_of

__all__ = ["Analysis", "analyze", "ANOMALY_NAMES", "jsonable"]

ANOMALY_NAMES = (
    "inconsistent-offsets", "duplicate", "lost-write", "G1a", "precommitted-read",
    "poll-skip", "nonmonotonic-poll", "nonmonotonic-send", "int-poll-skip",
    "int-nonmonotonic-poll", "int-send-skip", "int-nonmonotonic-send", "unseen",
    "empty-transaction-graph", *cycles.CYCLE_TYPES, cycles.CYCLE_SEARCH_TIMEOUT,
)


@attrs.frozen
class Analysis:
    """The verdict: every anomaly found (allowed ones included) and whether it is valid."""

    anomalies: dict[str, list[dict]]
    valid: bool
    stats: dict[str, Any]

    def to_json(self) -> dict:
        return {"valid": self.valid,
                "anomalies": {k: [jsonable(e) for e in v] for k, v in self.anomalies.items()},
                "stats": jsonable(self.stats)}


def jsonable(x: Any) -> Any:
    """``x`` as JSON would give it back: tuples and sets as lists, map keys as strings."""
    if isinstance(x, dict):
        return {str(k) if not isinstance(k, str) else k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return [jsonable(v) for v in sorted(x, key=sort_key)]
    return x


def analyze(events: Sequence[Event] | Iterable[Event], *, ww_deps: bool = False,
            sub_via: str = "assign", cycle_search_seconds: float = 10.0,
            _fork_threshold: int = FORK_THRESHOLD_OPS) -> Analysis:
    """Check a history the way Jepsen's Kafka checker does.

    ``ww_deps``: infer write-write dependencies from offsets (Jepsen's ``:ww-deps``).
    ``sub_via``: how consumers got their partitions, ``"assign"`` or ``"subscribe"``
    (Jepsen's ``:sub-via``); with subscribe, rebalances excuse poll skips.
    ``cycle_search_seconds``: wall-time budget per strongly connected component.
    """
    sub = parse_sub_via(sub_via)
    # The analysis allocates millions of small containers and frees almost none; the
    # cyclic collector would rescan them all again and again (it doubled run time).
    with _no_gc():
        return _analyze(events, ww_deps, sub, cycle_search_seconds, _fork_threshold)


@contextlib.contextmanager
def _no_gc():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _analyze(events: Iterable[Event], ww_deps: bool, sub: frozenset[str],
             cycle_search_seconds: float, fork_threshold: int) -> Analysis:
    history = client_ops(events)
    stats: dict[str, Any] = {}
    found: dict[str, list[dict]] = {}

    def put(name: str, cases: list[dict]) -> None:
        if cases:
            found[name] = cases

    reads_ok = ok_reads(history)
    orders = VersionOrders(history, reads_ok)
    writer = writer_of(history)
    # The dependency graph, its cycles (and the realtime lag) need only what is built
    # above: on big histories they run in a forked helper while this process does the rest.
    graph_part = Deferred(
        lambda: _cycle_part(history, orders, writer, ww_deps, cycle_search_seconds),
        fork=fork_allowed(len(history.ops), fork_threshold))

    try:
        _other_checks(history, orders, reads_ok, writer, put, stats)
        # Not a check of its own, but here it balances the two processes' work (the
        # helper's graph and cycle search take longer than the checks above).
        lag = _lag_stats(polls.realtime_lag(history))
    except BaseException:
        graph_part.cancel()
        raise

    cycle_found, cycle_stats = graph_part.result()
    found.update(cycle_found)
    missing = stats.get("values-without-writer", 0) + cycle_stats.pop("values-without-writer", 0)
    edges = cycle_stats.pop("edges")
    stats.update(cycle_stats)
    stats.update(lag)
    stats["edges"] = edges
    if missing:
        stats["values-without-writer"] = missing

    allowed = allowed_anomalies(ww_deps=ww_deps, sub_via=sub)
    bad = bad_anomaly_types(found, allowed)
    stats["bad-anomaly-types"] = bad
    stats["anomaly-types"] = sorted(found)
    anomalies = {name: found[name] for name in sorted(found)}
    return Analysis(anomalies=anomalies, valid=not bad, stats=stats)


def _other_checks(history: History, orders: VersionOrders, reads_ok: dict, writer: dict,
                  put: Callable[[str, list[dict]], None], stats: dict) -> None:
    """Every check except the dependency graph's, in Jepsen's order."""
    put("inconsistent-offsets", orders.inconsistent_offsets())
    put("duplicate", orders.duplicates())
    put("G1a", writes.g1a(history, writer))
    put("precommitted-read", writes.precommitted_reads(history))
    put("lost-write", writes.lost_writes(history, orders, reads_ok, writer, stats))
    skips, nonmono = polls.internal_polls(history, orders)
    put("int-poll-skip", skips)
    put("int-nonmonotonic-poll", nonmono)
    skips, nonmono = polls.external_polls(history, orders)
    put("poll-skip", skips)
    put("nonmonotonic-poll", nonmono)
    skips, nonmono = sends.internal_sends(history, orders)
    put("int-send-skip", skips)
    put("int-nonmonotonic-send", nonmono)
    put("nonmonotonic-send", sends.nonmonotonic_sends(history, orders))
    put("unseen", writes.unseen(history, reads_ok))
    _describe(history, orders, stats)


def _cycle_part(history: History, orders: VersionOrders, writer: dict,
                ww_deps: bool, seconds: float) -> tuple[dict[str, list], dict[str, Any]]:
    stats: dict[str, Any] = {}
    found: dict[str, list] = {}
    graph = DependencyGraph(history, orders, writer, ww_deps, stats)
    if not graph.has_jepsen_edges():
        found["empty-transaction-graph"] = [{}]
    found.update(cycles.cycle_anomalies(graph, seconds, stats))
    stats["edges"] = {"ww": graph.counts[WW], "wr": graph.counts[WR], "rw": graph.counts[RW]}
    return found, stats


def _describe(history: History, orders: VersionOrders, stats: dict) -> None:
    stats["ops"] = history.client_ops
    stats["ops-by-type"] = {t: n for t, n in sorted(history.by_type.items()) if n}
    stats["keys"] = len(orders.orders)
    stats["values-in-version-orders"] = sum(len(o.by_index) for o in orders.orders.values())


def _lag_stats(lags: Iterable[tuple[int, Any, Any, int]]) -> dict[str, Any]:
    """Jepsen's worst realtime lag, and the worst lag per key (kafkacheck's addition)."""
    worst: tuple | None = None
    per_key: dict[Any, tuple] = {}
    for entry in lags:
        lag = entry[3]
        if worst is None or lag > worst[3]:
            worst = entry
        cur = per_key.get(entry[2])
        if cur is None or lag > cur[3]:
            per_key[entry[2]] = entry

    def as_map(e: tuple) -> dict:
        return {"time": e[0], "process": e[1], "key": e[2], "lag": e[3]}

    return {
        "worst-realtime-lag": as_map(worst) if worst else {"time": 0, "lag": 0},
        "realtime-lag-by-key": [as_map(per_key[k]) for k in sorted(per_key, key=sort_key)],
    }
