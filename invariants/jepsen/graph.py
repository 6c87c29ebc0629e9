"""The transaction dependency graph between completed send/poll/txn ops.

Edges (Jepsen's definitions; rw is our addition):

* ww: T1 sent v1 to k, T2 sent v2, and v1 immediately precedes v2 in k's version order
  (only with ``ww_deps``: Kafka does not isolate writes, so these are inferred, not given);
* wr: T1 sent v to k and T2 polled v (every polled value, Jepsen draws them all);
* rw: T1's highest poll of k was v1 and T2 sent the value right after v1 (anti-dependency),
  unless T2 also sent v1 (then T1 merely read part of T2's sends, which is normal);
* realtime: T1 completed ``:ok`` before T2 was invoked.

Why realtime is kept implicit here: the realtime relation has up to n^2 edges and even
Elle's transitive reduction has about (concurrency x n) of them, which would dominate a
10^6-op history.  For finding strongly connected components we encode it exactly with a
chain of "time" nodes (ok completion -> time node -> later time nodes -> later-invoked
op), which preserves reachability among ops with two edges per op; real edges are
materialised (Elle's reduction) only inside the components that have cycles.
"""

from __future__ import annotations

import bisect
from operator import itemgetter
from typing import Any

from .ops import TXN_FS, History, Op
from .versions import VersionOrders

WW, WR, RW, RT = 1, 2, 4, 8
_second = itemgetter(1)
REL_NAMES = {WW: "ww", WR: "wr", RW: "rw", RT: "realtime"}
JEPSEN_RELS = WW | WR | RT


class DependencyGraph:
    """ww/wr/rw edges as ``succ[from][to] = relation bitmask``, plus the realtime
    encoding.  Node ids are op positions in ``History.ops``."""

    def __init__(self, history: History, orders: VersionOrders,
                 writer: dict[Any, dict[Any, Op]],
                 ww_deps: bool, stats: dict) -> None:
        self.history = history
        self.orders = orders
        self.writer = writer
        n = len(history.ops)
        succ: list[dict[int, int] | None] = [None] * n
        self.succ = succ
        missing = 0
        counts = {WW: 0, WR: 0, RW: 0}
        self.counts = counts

        def link(u: int, v: int, rel: int) -> None:
            d = succ[u]
            if d is None:
                succ[u] = {v: rel}
                counts[rel] += 1
            else:
                m = d.get(v, 0)
                if not m & rel:
                    d[v] = m | rel
                    counts[rel] += 1

        if ww_deps:
            for k, wm in writer.items():
                order = orders.get(k)
                if order is None:
                    continue
                by_value, by_index = order.by_value, order.by_index
                for v2, op2 in wm.items():
                    i2 = by_value.get(v2)
                    if not i2:
                        continue
                    op1 = wm.get(by_index[i2 - 1])
                    if op1 is None:
                        missing += 1
                    elif op1 is not op2:
                        link(op1.pos, op2.pos, WW)
        empty: dict = {}
        for op in history.completions:
            if not op.reads:
                continue
            rp = op.pos
            for k, pairs in op.reads.items():
                # A poll's values mostly come from a few writers: look them all up in C,
                # then link each distinct writer once.
                ws = list(map(writer.get(k, empty).get, map(_second, pairs)))
                for w in dict.fromkeys(ws):
                    if w is None:
                        missing += ws.count(None)
                    elif w is not op:
                        link(w.pos, rp, WR)
        for op in history.completions:
            if op.type != "ok" or not op.reads:
                continue
            for k, pairs in op.reads.items():
                nxt = next_version_after_read(orders, k, pairs)
                if nxt is None:
                    continue
                wm = writer.get(k, {})
                w = wm.get(nxt[1])
                # Reading part of one op's sends (a batch or transaction read across
                # polls) is normal in a log, not an anti-dependency on that op.
                if w is not None and w is not op and w is not wm.get(nxt[0]):
                    link(op.pos, w.pos, RW)
        if missing:
            stats["values-without-writer"] = stats.get("values-without-writer", 0) + missing

    def edges(self):
        """Every ww/wr/rw edge as (from, to, mask)."""
        for u, d in enumerate(self.succ):
            if d:
                for v, m in d.items():
                    yield u, v, m

    def has_jepsen_edges(self) -> bool:
        """Elle calls a graph with no ww/wr/realtime edge an empty transaction graph."""
        if self.counts[WW] or self.counts[WR]:
            return True
        ops = self.history.ops
        seen_ok = False
        for x in self.history.timeline:
            if x >= 0:
                if seen_ok:
                    return True
            elif ops[~x].type == "ok":
                seen_ok = True
        return False

    def cyclic_windows(self, rels: int) -> list[tuple[int, int]]:
        """Stretches of the history (in completion positions) that can hold a cycle.

        Realtime edges and the time chain always point forward in completion order, so
        a cycle needs a dependency edge pointing backward, and it stays inside the
        merged span of the backward edges it uses (it must come back down past every
        point it went up past).  Outside these windows no cycle exists, so the search
        can skip those ops; in healthy histories there are few backward edges.
        """
        ops = self.history.ops
        spans = []
        # Positions follow completion order, so "backward" is simply v < u; the widest
        # backward edge from u covers all its others.
        for u, d in enumerate(self.succ):
            if d and min(d) < u:
                lo = min((v for v, m in d.items() if v < u and m & rels), default=u)
                if lo < u:
                    spans.append((ops[lo].seq, ops[u].seq))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def adjacency(self, rels: int, with_realtime: bool,
                  windows: list[tuple[int, int]] | None = None
                  ) -> tuple[int, list[list[int]]]:
        """Successor lists over op positions for edges having any of ``rels``; with
        ``with_realtime``, plus the time-node chain (ids from len(ops) on).  With
        ``windows``, only ops and times inside one of them (see ``cyclic_windows``)."""
        ops = self.history.ops
        n_ops = len(ops)
        if windows is None:
            adj: list[list[int]] = [
                [v for v, m in d.items() if m & rels] if d else [] for d in self.succ]
            window_of = None
        else:
            starts = [lo for lo, _ in windows]

            def window_of(seq: int) -> int:
                i = bisect.bisect_right(starts, seq) - 1
                return i if i >= 0 and seq <= windows[i][1] else -1

            win = [window_of(op.seq) for op in ops]
            adj = [[v for v, m in d.items() if m & rels and win[v] == win[u]]
                   if d and win[u] >= 0 else [] for u, d in enumerate(self.succ)]
        if not with_realtime:
            return n_ops, adj
        last_t = -1
        last_w = -1
        for x in self.history.timeline:
            if window_of is not None:
                w = window_of(ops[x].invoke_seq if x >= 0 else ops[~x].seq)
                if w < 0:
                    continue
                if w != last_w:
                    last_t, last_w = -1, w
            if x >= 0:
                if last_t >= 0:
                    adj[last_t].append(x)
            elif ops[~x].type == "ok":
                t = len(adj)
                adj.append([])
                adj[~x].append(t)
                if last_t >= 0:
                    adj[last_t].append(t)
                last_t = t
        return n_ops, adj

    def component(self, members: list[int], rels: int,
                  with_realtime: bool) -> dict[int, dict[int, int]]:
        """The subgraph on ``members`` as {from: {to: relation mask}}."""
        member_set = set(members)
        g: dict[int, dict[int, int]] = {u: {} for u in members}
        for u in members:
            d = self.succ[u]
            if d:
                gu = g[u]
                for v, m in d.items():
                    m &= rels
                    if m and v in member_set:
                        gu[v] = m
        if with_realtime:
            ops = self.history.ops
            for u, v in self.realtime_edges_among([ops[i] for i in members]):
                g[u][v] = g[u].get(v, 0) | RT
        return g

    def to_networkx(self):
        """The whole graph as a networkx DiGraph over op indices, for inspection.

        Edge attribute ``rels`` is the set of relation names; realtime edges are Elle's
        transitive reduction.  The checker itself works on compact adjacency lists.
        """
        import networkx as nx

        ops = self.history.ops
        g = nx.DiGraph()
        members = [op for op in ops if op.f in TXN_FS]
        g.add_nodes_from(op.index for op in members)
        masks = {(u, v): m for u, v, m in self.edges()}
        for u, v in self.realtime_edges_among(members):
            masks[(u, v)] = masks.get((u, v), 0) | RT
        for (u, v), m in masks.items():
            g.add_edge(ops[u].index, ops[v].index,
                       rels={REL_NAMES[b] for b in REL_NAMES if m & b})
        return g

    def realtime_edges_among(self, members: list[Op]) -> list[tuple[int, int]]:
        """Elle's transitive reduction of realtime order, restricted to ``members``."""
        events = []
        for op in members:
            events.append((op.invoke_seq, 0, op))
            events.append((op.seq, 1, op))
        events.sort(key=lambda e: (e[0], e[1]))
        frontier: dict[int, Op] = {}
        preds: dict[int, list[int]] = {}
        out: list[tuple[int, int]] = []
        for _, kind, op in events:
            if kind == 0:
                ps = list(frontier)
                preds[op.pos] = ps
                out.extend((p, op.pos) for p in ps)
            elif op.type == "ok":
                for p in preds.get(op.pos, ()):
                    frontier.pop(p, None)
                frontier[op.pos] = op
        return out


def highest_read(orders: VersionOrders, k: Any, pairs: list) -> tuple[int, Any] | None:
    order = orders.get(k)
    if order is None:
        return None
    by_value = order.by_value
    if not pairs:
        return None
    idx = list(map(by_value.get, map(_second, pairs)))
    if None not in idx:
        i = max(idx)
        return i, order.by_index[i]
    best = None
    for (_, v), i in zip(pairs, idx):
        if i is not None and (best is None or i > best[0]):
            best = (i, v)
    return best


def next_version_after_read(orders: VersionOrders, k: Any, pairs: list) -> tuple[Any, Any] | None:
    """(highest value read, the value right after it in k's order), or None."""
    hr = highest_read(orders, k, pairs)
    if hr is None:
        return None
    by_index = orders.get(k).by_index
    if hr[0] + 1 >= len(by_index):
        return None
    return hr[1], by_index[hr[0] + 1]


def strongly_connected(n_ops: int, adj: list[list[int]]) -> list[list[int]]:
    """Components (op ids only, at least two ops) of the graph; iterative Tarjan.

    Written out rather than taken from networkx because on 10^6-op histories the graph
    has millions of edges and networkx's per-edge dictionaries cost gigabytes.
    """
    n = len(adj)
    index = [0] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 1
    for root in range(n):
        if index[root] or not adj[root]:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        work = [(root, iter(adj[root]))]
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if not index[w]:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    succ = adj[w]
                    work.append((w, iter(succ)))
                    advanced = True
                    break
                if on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
            if advanced:
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    if w < n_ops:
                        comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comp.sort()
                    out.append(comp)
    return out
