"""Per-key order: records one producer sent with one key must be stored in send order.

Kafka promises this per partition only when a retried batch cannot overtake a later one:
``max.in.flight.requests.per.connection=1`` or the idempotent producer.  The check builds,
for every (producer, record key), a networkx digraph over the values with an edge for
"sent before" and an edge for "stored before"; any cycle is a pair stored out of order.
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from invariants.anomaly import Anomalies, add
from invariants.observations import Observations


def order_graph(obs: Observations) -> dict[tuple[str, str | None], nx.DiGraph]:
    """One graph per (producer client, record key): send-order and log-order edges.

    Grouping is by client, not Jepsen process: a producer's lanes are one application
    whose sends Kafka orders per partition."""
    stored = obs.final_offsets_by_value()
    chains: dict[tuple[str, str | None], list] = defaultdict(list)
    for send in sorted(obs.sends.values(), key=lambda s: s.index):
        places = [o for p, o in stored.get(send.value, ()) if p == send.partition]
        if places:
            chains[(send.client, send.record_key)].append((send, min(places)))
    graphs = {}
    for group, chain in chains.items():
        graph = nx.DiGraph()
        for (a, _), (b, _) in zip(chain, chain[1:]):
            graph.add_edge(a.value, b.value, kind="sent-before")
        by_offset = sorted(chain, key=lambda c: c[1])
        for (a, oa), (b, ob) in zip(by_offset, by_offset[1:]):
            graph.add_edge(a.value, b.value, kind="stored-before")
        graphs[group] = graph
    return graphs


def check_ordering(obs: Observations, anomalies: Anomalies) -> None:
    """A cycle is a reorder when it holds a pair whose *earlier* send was acknowledged:
    Kafka's order promise covers what it acknowledged; a send that failed or timed out
    (``info``) and landed later (a request that outlived its timeout) is a late write,
    not a broken promise."""
    if obs.final_logs is None:
        return
    stored = obs.final_offsets_by_value()
    for (process, record_key), graph in sorted(order_graph(obs).items(),
                                               key=lambda kv: (kv[0][0], str(kv[0][1]))):
        for component in nx.strongly_connected_components(graph):
            if len(component) < 2 or not _breaks_acknowledged_order(obs, component, stored):
                continue
            sends = sorted((obs.sends[v] for v in component), key=lambda s: s.index)
            add(anomalies, "reorder", key=sends[0].partition, client=process,
                values=[s.value for s in sends],
                offsets=[min(o for _, o in stored[s.value]) for s in sends],
                ops=[s.index for s in sends], **{"record-key": record_key})


def _breaks_acknowledged_order(obs: Observations, component: set[int],
                               stored: dict[int, list[tuple[int, int]]]) -> bool:
    sends = sorted((obs.sends[v] for v in component), key=lambda s: s.index)
    for i, earlier in enumerate(sends):
        if earlier.outcome != "ok":
            continue
        first = min(o for _, o in stored[earlier.value])
        if any(min(o for _, o in stored[later.value]) < first for later in sends[i + 1:]):
            return True
    return False
