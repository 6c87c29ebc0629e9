"""A tiny scripting layer for scenario tests: drive a Run by hand, step by step.

Scenario tests replay a known Kafka behaviour (a KIP's example, a documented failure)
as an explicit schedule, so each one pins down one mechanism of the model.
"""

from __future__ import annotations

from typing import Any

from kafkacheck.runner import Run
from model import actions as a
from model.clients.partitioner import partition_for_key
from model.config import Config
from model.context import CONTROLLER


class Scenario:
    def __init__(self, **settings: Any) -> None:
        settings = {k.replace("_", "."): str(v) for k, v in settings.items()}
        settings.setdefault("auto.offset.reset", "earliest")
        # One partition keeps each link's FIFO to one conversation, so scripts can say
        # exactly which message arrives next.
        settings.setdefault("kafkacheck.partitions", "1")
        # Scripts of the non-idempotent producer count every message on a link; those of
        # the idempotent one (InitProducerId first) say enable.idempotence=true.
        settings.setdefault("enable.idempotence", "false")
        self.run = Run(Config.from_settings(settings))
        self.cluster = self.run.cluster

    # -- driving -----------------------------------------------------------------------

    def do(self, action: Any) -> "Scenario":
        self.run.apply(action)
        return self

    def deliver(self, src: str, dst: str, times: int = 1) -> "Scenario":
        for _ in range(times):
            self.do(a.Deliver(src, dst))
        return self

    def flush(self, rounds: int = 1) -> "Scenario":
        """Deliver every queued message once per round, links in sorted order."""
        for _ in range(rounds):
            for src, dst in self.cluster.ctx.network.ready_links():
                if self.cluster.ctx.network.deliverable(src, dst):
                    self.do(a.Deliver(src, dst))
        return self

    def fetch_round(self, follower: str, partition: Any) -> "Scenario":
        """One replica fetch of ``partition`` by ``follower``: deliver its fetch to the
        leader and the answer back (and whatever is queued ahead of them on the links)."""
        replica = self.replica(follower, partition)
        corr, leader = replica.fetch_corr, replica.leader
        assert corr is not None, f"{follower} has no fetch of {partition} in flight"
        network = self.cluster.ctx.network

        def queued(src: str, dst: str) -> bool:
            return any(getattr(msg, "corr", None) == corr
                       for _, msg in network.queues.get((src, dst), ()))

        while queued(follower, leader):
            self.deliver(follower, leader)
        while queued(leader, follower):
            self.deliver(leader, follower)
        return self

    def sync_metadata(self) -> "Scenario":
        """Deliver the metadata log to every broker that can fetch it (and anything the
        controller answers on the same links) until nothing is left in flight."""
        network = self.cluster.ctx.network
        for _ in range(50):
            links = [(s, d) for s, d in network.ready_links() if CONTROLLER in (s, d)]
            if not links:
                return self
            for link in links:
                if network.queues.get(link):
                    self.do(a.Deliver(*link))
        raise AssertionError("metadata traffic did not settle")

    def restart(self, broker: str, max_ticks: int = 40) -> "Scenario":
        """Restart a killed broker and let it register, catch up and be unfenced (its
        old session must run out first), delivering only controller traffic."""
        self.do(a.Restart(broker))
        for _ in range(max_ticks):
            if self.cluster.broker_actors[broker].serving:
                return self.sync_metadata()
            self.sync_metadata().tick(1000)
        raise AssertionError(f"{broker} was not unfenced after {max_ticks} ticks")

    def poll_records(self, client: str = "c0", max_rounds: int = 12) -> "Scenario":
        """Poll (delivering the fetches in between) until a poll returns records."""
        consumer = self.cluster.consumers[client]
        for _ in range(max_rounds):
            self.do(a.Poll(client))
            if consumer.pending:
                return self
            self.flush()
        raise AssertionError(f"{client} polled nothing in {max_rounds} rounds")

    def send(self, key: str = "k0", producer: str = "p0") -> "Scenario":
        return self.do(a.Send(producer, key))

    def tick(self, ms: int) -> "Scenario":
        return self.do(a.Tick(ms))

    def finish(self) -> "Scenario":
        self.run.finish()
        return self

    # -- looking -----------------------------------------------------------------------

    def partition(self, key: str = "k0") -> int:
        return partition_for_key(key, self.cluster.config.topic.partitions)

    def leader(self, partition: Any) -> str | None:
        return self.cluster.controller.partitions[partition].leader

    def isr(self, partition: Any) -> tuple[str, ...]:
        return self.cluster.controller.partitions[partition].isr

    def followers(self, partition: Any) -> list[str]:
        state = self.cluster.controller.partitions[partition]
        return [r for r in state.replicas if r != state.leader]

    def replica(self, broker: str, partition: Any) -> Any:
        """The broker's in-memory replica (None before it has published metadata)."""
        return self.cluster.broker_actors[broker].partitions.get(partition)

    def log(self, broker: str, partition: Any) -> Any:
        return self.cluster.broker_actors[broker].logs[partition]

    def values(self, broker: str, partition: Any) -> list[int]:
        return [r.value for r in self.log(broker, partition).records]

    def ops(self, f: str, type: str | None = None) -> list[Any]:
        return [e for e in self.cluster.history
                if e.f == f and e.type != "internal" and (type is None or e.type == type)]

    def internal(self, f: str) -> list[Any]:
        return [e for e in self.cluster.history if e.type == "internal" and e.f == f]

    def anomalies(self) -> dict[str, list[dict]]:
        return self.run.verdict().anomalies
