"""Cycle anomalies over the dependency graph, found the way Elle finds them.

For every strongly connected component, anomaly types are tried from least to most
severe-to-search; each search is a breadth-first search over (op, relations-seen) states
starting from one edge of the type the anomaly needs, so the cycle found is short and
its steps say which relation links each pair.  Like Elle, one cycle per type per
component is reported, and a type implied by one already found there is not searched
(a G0 cycle is also a G1c cycle).

Jepsen's own types (G0, G1c and their realtime variants) are searched in the components
of the graph *without* rw edges, exactly as Jepsen builds it, so adding rw edges never
changes what Jepsen would report; G-single and G2 (which need rw) use the full graph.

Each component gets ``cycle_search_seconds`` of wall time.  When that runs out the search
of the component stops and a ``cycle-search-timeout`` anomaly says so: the only way the
wall clock can change a result.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import attrs
import networkx as nx

from .graph import (JEPSEN_RELS, REL_NAMES, RT, RW, WR, WW, DependencyGraph, highest_read,
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
ANTI_DEPENDENCY_SPECS = (
    CycleSpec("G-single", WW | WR | RW, RW, rw="one",
              implies=("G2", "G-single-realtime", "G2-realtime")),
    CycleSpec("G2", WW | WR | RW, RW, rw="many", implies=("G2-realtime",)),
    CycleSpec("G-single-realtime", WW | WR | RW | RT, RW, required=(RT,), rw="one",
              implies=("G2-realtime",)),
    CycleSpec("G2-realtime", WW | WR | RW | RT, RW, required=(RT,), rw="many"),
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


def _labels(mask: int):
    return [b for b in (WW, WR, RW, RT) if mask & b]


def find_cycle(g: nx.DiGraph, spec: CycleSpec, clock: _Clock) -> list[tuple[int, int, int]] | None:
    """A cycle matching ``spec`` as [(from, to, relation)], or None."""
    rels = spec.rels
    proj = nx.DiGraph()
    for u, v, m in g.edges(data="rels"):
        if m & rels:
            proj.add_edge(u, v, rels=m & rels)
    if proj.number_of_edges() == 0:
        return None
    comp_of: dict[int, int] = {}
    for i, comp in enumerate(nx.strongly_connected_components(proj)):
        for x in comp:
            comp_of[x] = i
    req_bits = {r: 1 << j for j, r in enumerate(spec.required)}
    all_req = (1 << len(spec.required)) - 1

    def bits_of(label: int) -> int:
        return req_bits.get(label, 0)

    seeds = sorted((u, v) for u, v, m in proj.edges(data="rels")
                   if m & spec.seed and comp_of[u] == comp_of[v])
    for u, v in seeds:
        start = (v, bits_of(spec.seed), 1 if spec.seed == RW else 0)
        parent: dict[tuple, tuple | None] = {start: None}
        queue = deque([start])
        goal = None
        while queue and goal is None:
            clock.tick()
            state = queue.popleft()
            node, bits, rw = state
            for nxt, data in proj[node].items():
                m = data["rels"]
                for label in _labels(m):
                    nrw = rw
                    if label == RW:
                        if spec.rw is None or (spec.rw == "one" and rw >= 1):
                            continue
                        nrw = min(rw + 1, 2)
                    nbits = bits | bits_of(label)
                    ns = (nxt, nbits, nrw)
                    if ns in parent:
                        continue
                    if nxt == u:
                        ok = nbits == all_req and (
                            spec.rw is None or (spec.rw == "one" and nrw == 1)
                            or (spec.rw == "many" and nrw >= 2))
                        if ok:
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


def _component_graph(dg: DependencyGraph, members: list[int]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(members)
    member_set = set(members)
    for (u, v), m in dg.edges.items():
        if u in member_set and v in member_set:
            g.add_edge(u, v, rels=m)
    ops = dg.history.ops
    for u, v in dg.realtime_edges_among([ops[i] for i in members]):
        if g.has_edge(u, v):
            g[u][v]["rels"] |= RT
        else:
            g.add_edge(u, v, rels=RT)
    return g


def _search_component(g: nx.DiGraph, specs: tuple[CycleSpec, ...], explainer: Explainer,
                      clock: _Clock, found: dict[str, list], timeouts: list) -> bool:
    """Search one component; False when its time ran out."""
    skip: set[str] = set()
    searched: list[str] = []
    for spec in specs:
        if spec.name in skip:
            continue
        searched.append(spec.name)
        try:
            steps = find_cycle(g, spec, clock)
        except _TimedOut:
            timeouts.append({"scc-size": g.number_of_nodes(), "anomaly-spec-type": spec.name,
                             "does-not-contain": searched[:-1],
                             "ops": sorted(explainer.ops[x].index for x in g.nodes)[:32]})
            return False
        if steps is not None:
            found.setdefault(spec.name, []).append(explainer.cycle(spec.name, steps))
            skip.update(spec.implies)
    return True


def cycle_anomalies(dg: DependencyGraph, seconds: float, stats: dict) -> dict[str, list]:
    """All cycle anomalies, plus ``cycle-search-timeout`` entries for abandoned searches."""
    n_ops, adj = dg.adjacency()
    comps = strongly_connected(n_ops, adj)
    del adj
    stats["sccs"] = len(comps)
    stats["largest-scc"] = max((len(c) for c in comps), default=0)
    found: dict[str, list] = {}
    timeouts: list[dict] = []
    explainer = Explainer(dg)
    for members in comps:
        clock = _Clock(seconds)
        g = _component_graph(dg, members)
        jepsen = nx.DiGraph()
        jepsen.add_nodes_from(g.nodes)
        jepsen.add_edges_from((u, v, {"rels": m & JEPSEN_RELS})
                              for u, v, m in g.edges(data="rels") if m & JEPSEN_RELS)
        in_time = True
        for sub in sorted((sorted(c) for c in nx.strongly_connected_components(jepsen)
                           if len(c) > 1)):
            in_time = _search_component(jepsen.subgraph(sub).copy(), JEPSEN_SPECS, explainer,
                                        clock, found, timeouts)
            if not in_time:
                break
        if in_time and any(m & RW for _, _, m in g.edges(data="rels")):
            _search_component(g, ANTI_DEPENDENCY_SPECS, explainer, clock, found, timeouts)
    if timeouts:
        found[CYCLE_SEARCH_TIMEOUT] = timeouts
    return found


def rel_name(label: int) -> str:
    return REL_NAMES[label]
