"""Cluster.is_enabled must give exactly the answer of membership in enabled_actions():
apply() relies on the first, drivers choose from the second."""

from __future__ import annotations

import random

import pytest

from model import actions as a
from model.cluster import Cluster
from model.config import Config


def candidates(c: Cluster) -> set:
    return (set(c.enabled_actions())
            | {x(b) for b in c.brokers for x in (a.Crash, a.Restart)}
            | {a.Heal(), a.Crash("b0", "power"), a.Send("p0", "not-a-workload-key")}
            | {a.Send(p, k) for p in c.producer_names for k in c.keys}
            | {x(n) for n in c.clients for x in (a.ClientCrash, a.ClientRestart)}
            | {x(n) for n in c.consumer_names for x in (a.Poll, a.Process, a.Commit)})


@pytest.mark.parametrize("seed", range(20))
def test_is_enabled_agrees_with_enabled_actions(seed: int) -> None:
    rng = random.Random(seed)
    cluster = Cluster(Config.from_settings({"acks": rng.choice(["0", "1", "all"])}))
    for _ in range(80):
        enabled = cluster.enabled_actions()
        for action in candidates(cluster):
            if action.kind not in ("tick", "partition"):
                assert cluster.is_enabled(action) == (action in enabled), action
        cluster.apply(rng.choice(enabled))
