"""One run: a cluster, the schedule applied so far, and the per-step model invariants.

Hunting, replaying and the benchmark all drive the model through :class:`Run`, so the
model-state invariants are checked after every step in exactly the same way everywhere,
and any violation lands in the history as an ``invariant`` event that replays identically.
"""

from __future__ import annotations

from typing import Any, Iterable

from invariants.check import Verdict
from invariants.verdict import judge
from invariants.model_state import ModelStateMonitor
from model.cluster import Cluster
from model.config import Config
from model.settle import settle


class Run:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.cluster = Cluster(config)
        self.monitor = ModelStateMonitor()
        self.schedule: list[Any] = []
        self._enabled: dict[str, list[Any]] | None = None

    def enabled(self, kind: str) -> list[Any]:
        """Enabled actions of one kind, computed once per step (drivers ask often)."""
        if self._enabled is None:
            grouped: dict[str, list[Any]] = {}
            for action in self.cluster.enabled_actions():
                grouped.setdefault(action.kind, []).append(action)
            self._enabled = grouped
        return self._enabled.get(kind, [])

    def apply(self, action: Any) -> None:
        self._enabled = None
        self.cluster.apply(action)
        self.schedule.append(action)
        for violation in self.monitor.check(self.cluster.partition_views()):
            self.cluster.ctx.history.internal("monitor", "invariant", **violation)

    def apply_all(self, actions: Iterable[Any]) -> None:
        for action in actions:
            self.apply(action)

    def finish(self) -> None:
        """Heal, restart and drain (the settle phase), then record the final logs."""
        for action in settle(self.cluster):
            self.apply(action)

    def verdict(self) -> Verdict:
        """The complete verdict (model-aware and Jepsen's checkers), as ``check`` and
        ``replay`` compute it."""
        return judge(self.cluster.history)
