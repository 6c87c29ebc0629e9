"""Cycle anomalies over the dependency graph, found the way Elle finds them.

For every strongly connected component, anomaly types are tried in Elle's order; each
search is a breadth-first search over (op, relations-seen) states starting from one edge
of a relation the anomaly needs, so the cycle found is short and its steps say which
relation links each pair.  Like Elle, one cycle per type per
component is reported, and a type implied by one already found there is not searched
(a G0 cycle is also a G1c cycle).

Jepsen's own types (G0, G1c and their realtime variants) are searched in the components
of the graph *without* rw edges, exactly as Jepsen builds it, so adding rw edges never
changes what Jepsen would report; G-single and G2 (which need rw) use the graph with rw
edges and without realtime ones.

Each component gets ``cycle_search_seconds`` of wall time.  When that runs out the search
of the component stops and a ``cycle-search-timeout`` anomaly says so: the only way the
wall clock can change a result.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import attrs

from .graph import (RT, RW, WR, WW, DependencyGraph, highest_read,
                    strongly_connected)
from .ops import Op

CYCLE_SEARCH_TIMEOUT = "cycle-search-timeout"


@attrs.frozen
class CycleSpec:
    """What a cycle of one anomaly type may and must contain."""

    name: str
    rels: int                 # relations usable as edges
    seed: int                 # relation of the first edge tried (one the cycle needs)
    required: tuple[int, ...] = ()  # each must appear at least once
    rw: str | None = None     # None, "one" (exactly one rw) or "many" (at least two)
    implies: tuple[str, ...] = ()


JEPSEN_SPECS = (
    CycleSpec("G0", WW, WW, implies=("G1c", "G0-realtime", "G1c-realtime")),
    CycleSpec("G1c", WW | WR, WR, required=(WR,), implies=("G1c-realtime",)),
    CycleSpec("G0-realtime", WW | RT, RT, required=(RT,), implies=("G1c-realtime",)),
    CycleSpec("G1c-realtime", WW | WR | RT, WR, required=(WR, RT)),
)
# No realtime variants: a consumer lagging behind acknowledged sends makes rw edges that
# run against realtime order, which is normal in Kafka, so those cycles would be noise.
ANTI_DEPENDENCY_SPECS = (
    CycleSpec("G-single", WW | WR | RW, RW, rw="one", implies=("G2",)),
    CycleSpec("G2", WW | WR | RW, RW, rw="many"),
)
CYCLE_TYPES = tuple(s.name for s in JEPSEN_SPECS + ANTI_DEPENDENCY_SPECS)


class _TimedOut(Exception):
    pass


class _Clock:
    """A deadline checked every few hundred search steps."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks & 255 == 0 and time.monotonic() > self.deadline:
            raise _TimedOut


Adjacency = dict[int, dict[int, int]]


def components_of(g: Adjacency) -> dict[int, int]:
    """Node -> component number, for nodes in components of two or more nodes."""
    nodes = list(g)
    number = {x: i for i, x in enumerate(nodes)}
    adj = [[number[v] for v in g[x] if v in number] for x in nodes]
    out: dict[int, int] = {}
    for c, comp in enumerate(strongly_connected(len(nodes), adj)):
        for i in comp:
            out[nodes[i]] = c
    return out


def find_cycle(g: Adjacency, spec: CycleSpec, clock: _Clock) -> list[tuple[int, int, int]] | None:
    """A cycle matching ``spec`` as [(from, to, relation)], or None."""
    rels = spec.rels
    if all(not (m & ~rels) for succ in g.values() for m in succ.values()):
        # Every edge is usable: the projection is the component itself, still one
        # strongly connected piece (no copy: components can have 10^5 ops).
        proj = g
        comp_of = dict.fromkeys(g, 0)
    else:
        proj = {}
        for u, succ in g.items():
            ps = {v: m & rels for v, m in succ.items() if m & rels}
            if ps:
                proj[u] = ps
        comp_of = components_of(proj)
    if not proj:
        return None
    req_bits = {r: 1 << j for j, r in enumerate(spec.required)}
    all_req = (1 << len(spec.required)) - 1
    seeds = []
    for u, ps in proj.items():
        cu = comp_of.get(u)
        if cu is None:
            continue
        for v, m in ps.items():
            if m & spec.seed and comp_of.get(v) == cu:
                # A seed whose far end leads straight back closes a short cycle for sure
                # (for G-single: rw one way, ww/wr the other): try those first.
                back = proj.get(v, _EMPTY).get(u, 0)
                sure = bool(back & ~RW) if spec.rw == "one" else bool(back)
                seeds.append((not sure, u, v))
    seeds.sort()
    for _, u, v in seeds:
        start = (v, req_bits.get(spec.seed, 0), 1 if spec.seed == RW else 0)
        parent: dict[tuple, tuple | None] = {start: None}
        queue = deque([start])
        goal = None
        while queue and goal is None:
            clock.tick()
            state = queue.popleft()
            node, bits, rw = state
            for nxt, m in proj.get(node, {}).items():
                for label in _LABELS[m]:
                    nrw = rw
                    if label == RW:
                        if spec.rw is None or (spec.rw == "one" and rw >= 1):
                            continue
                        nrw = 2 if rw >= 1 else 1
                    nbits = bits | req_bits.get(label, 0)
                    ns = (nxt, nbits, nrw)
                    if ns in parent:
                        continue
                    if nxt == u:
                        if nbits == all_req and (
                                spec.rw is None or (spec.rw == "one" and nrw == 1)
                                or (spec.rw == "many" and nrw >= 2)):
                            parent[ns] = (state, label)
                            goal = ns
                            break
                        continue
                    parent[ns] = (state, label)
                    queue.append(ns)
                if goal is not None:
                    break
        if goal is None:
            continue
        steps: list[tuple[int, int, int]] = []
        s = goal
        while parent[s] is not None:
            prev, label = parent[s]
            steps.append((prev[0], s[0], label))
            s = prev
        steps.append((u, v, spec.seed))
        steps.reverse()
        return steps
    return None


_EMPTY: dict = {}
_LABELS = [[b for b in (WW, WR, RW, RT) if m & b] for m in range(16)]


class Explainer:
    """Turns graph edges back into Jepsen-style step maps (key, values, mop indices)."""

    def __init__(self, dg: DependencyGraph) -> None:
        self.dg = dg
        self.ops = dg.history.ops

    def step(self, a: Op, b: Op, label: int) -> dict:
        orders, writer = self.dg.orders, self.dg.writer
        if label == WW:
            for k, pairs in (b.writes or {}).items():
                order = orders.get(k)
                if order is None:
                    continue
                for _, v2 in pairs:
                    v1 = order.previous_value(v2, _NONE)
                    if v1 is not _NONE and writer.get(k, {}).get(v1) is a:
                        return {"type": "ww", "key": k, "value": v1, "value'": v2,
                                "a-mop-index": mop_index(a, "send", k, v1),
                                "b-mop-index": mop_index(b, "send", k, v2)}
        elif label == WR:
            for k, pairs in (b.reads or {}).items():
                for _, v in pairs:
                    if writer.get(k, {}).get(v) is a:
                        return {"type": "wr", "key": k, "value": v,
                                "a-mop-index": mop_index(a, "send", k, v),
                                "b-mop-index": mop_index(b, "poll", k, v)}
        elif label == RW:
            for k, pairs in (a.reads or {}).items():
                hr = highest_read(orders, k, pairs)
                if hr is None:
                    continue
                by_index = orders.get(k).by_index
                if hr[0] + 1 < len(by_index):
                    v2 = by_index[hr[0] + 1]
                    if writer.get(k, {}).get(v2) is b:
                        return {"type": "rw", "key": k, "value": hr[1], "value'": v2,
                                "a-mop-index": mop_index(a, "poll", k, hr[1]),
                                "b-mop-index": mop_index(b, "send", k, v2)}
        return {"type": "realtime", "a'": a.index, "b": b.invoke_index}

    def cycle(self, name: str, steps: list[tuple[int, int, int]]) -> dict:
        ops = self.ops
        cycle = [ops[steps[0][0]].index] + [ops[v].index for _, v, _ in steps]
        return {"type": name, "cycle": cycle,
                "steps": [self.step(ops[u], ops[v], label) for u, v, label in steps]}


_NONE = object()


def mop_index(op: Op, f: str, k: Any, v: Any) -> int | None:
    """Position of the micro-op of ``op`` that sent/polled ``v`` to/from ``k``."""
    for i, mop in enumerate(op.value or ()):
        if not mop or mop[0] != f:
            continue
        if f == "send" and len(mop) == 3 and mop[1] == k:
            raw = mop[2]
            got = raw[1] if isinstance(raw, (list, tuple)) and len(raw) == 2 else raw
            if got == v or (isinstance(got, list) and tuple(got) == v):
                return i
        elif f == "poll" and len(mop) == 2 and isinstance(mop[1], dict):
            for _, pv in mop[1].get(k, ()):
                if pv == v:
                    return i
    return None


def _search_component(g: Adjacency, specs: tuple[CycleSpec, ...], explainer: Explainer,
                      clock: _Clock, found: dict[str, list], timeouts: list) -> bool:
    """Search one component; False when its time ran out."""
    skip: set[str] = set()
    searched: list[str] = []
    for n, spec in enumerate(specs):
        if spec.name in skip:
            continue
        searched.append(spec.name)
        try:
            steps = find_cycle(g, spec, clock)
        except _TimedOut:
            ops = explainer.ops
            timeouts.append({
                "scc-size": len(g), "anomaly-spec-type": spec.name,
                "does-not-contain": [t for t in searched[:-1] if t not in found],
                "not-searched": [s.name for s in specs[n + 1:] if s.name not in skip],
                "ops": sorted(ops[x].index for x in g)[:32]})
            return False
        if steps is not None:
            found.setdefault(spec.name, []).append(explainer.cycle(spec.name, steps))
            skip.update(spec.implies)
    return True


def _search_graph(dg: DependencyGraph, rels: int, with_realtime: bool,
                  specs: tuple[CycleSpec, ...], seconds: float, explainer: Explainer,
                  found: dict[str, list], timeouts: list, need: int = 0) -> int:
    windows = None
    if with_realtime:
        windows = dg.cyclic_windows(rels)
        if not windows:
            return 0
    n_ops, adj = dg.adjacency(rels, with_realtime, windows)
    comps = strongly_connected(n_ops, adj)
    del adj
    for members in comps:
        g = dg.component(members, rels, with_realtime)
        if need and not any(m & need for succ in g.values() for m in succ.values()):
            continue
        _search_component(g, specs, explainer, _Clock(seconds), found, timeouts)
    return len(comps)


def cycle_anomalies(dg: DependencyGraph, seconds: float, stats: dict) -> dict[str, list]:
    """All cycle anomalies, plus ``cycle-search-timeout`` entries for abandoned searches.

    Jepsen's types are searched in the components of Jepsen's graph (ww, wr, realtime);
    G-single and G2 in those of the graph with rw edges and without realtime ones.
    """
    found: dict[str, list] = {}
    timeouts: list[dict] = []
    explainer = Explainer(dg)
    stats["sccs"] = _search_graph(dg, WW | WR, True, JEPSEN_SPECS, seconds, explainer,
                                  found, timeouts)
    if dg.counts[RW]:
        stats["sccs-with-rw"] = _search_graph(dg, WW | WR | RW, False,
                                              ANTI_DEPENDENCY_SPECS, seconds, explainer,
                                              found, timeouts, need=RW)
    if timeouts:
        found[CYCLE_SEARCH_TIMEOUT] = timeouts
    return found
