"""A tiny scripting layer for scenario tests: drive a Run by hand, step by step.

Scenario tests replay a known Kafka behaviour (a KIP's example, a documented failure)
as an explicit schedule, so each one pins down one mechanism of the model.
"""

from __future__ import annotations

from typing import Any

from kafkacheck.runner import Run
from model import actions as a
from model.config import Config
from model.partitioner import partition_for_key


class Scenario:
    def __init__(self, **settings: Any) -> None:
        settings = {k.replace("_", "."): str(v) for k, v in settings.items()}
        settings.setdefault("auto.offset.reset", "earliest")
        # One partition keeps each link's FIFO to one conversation, so scripts can say
        # exactly which message arrives next.
        settings.setdefault("kafkacheck.partitions", "1")
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
                if self.cluster.ctx.network.queues.get((src, dst)):
                    self.do(a.Deliver(src, dst))
        return self

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

    def leader(self, partition: int) -> str | None:
        return self.cluster.controller.partitions[partition].leader

    def followers(self, partition: int) -> list[str]:
        meta = self.cluster.controller.partitions[partition]
        return [r for r in meta.replicas if r != meta.leader]

    def replica(self, broker: str, partition: int) -> Any:
        return self.cluster.broker_actors[broker].replicas[partition]

    def values(self, broker: str, partition: int) -> list[int]:
        return [r.value for r in self.replica(broker, partition).log.records]

    def ops(self, f: str, type: str | None = None) -> list[Any]:
        return [e for e in self.cluster.history
                if e.f == f and e.type != "internal" and (type is None or e.type == type)]

    def internal(self, f: str) -> list[Any]:
        return [e for e in self.cluster.history if e.type == "internal" and e.f == f]

    def anomalies(self) -> dict[str, list[dict]]:
        return self.run.verdict().anomalies
