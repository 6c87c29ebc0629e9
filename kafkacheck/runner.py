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
from model.metadata import is_user_partition
from model.settle import settle


class Run:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.cluster = Cluster(config)
        unclean = config.topic.unclean_leader_election_enable
        # Internal topics keep the broker default: no unclean elections.
        self.monitor = ModelStateMonitor(
            unclean_allowed=lambda p: unclean and is_user_partition(p))
        self.schedule: list[Any] = []
        self._enabled: dict[str, list[Any]] | None = None
        self._checked_version = -1
        # Where the settle phase began in the schedule (None until finish()).
        self.settle_from: int | None = None
        # Where each driver decision's actions begin (a flush is many deliveries): the
        # minimiser tries removing whole decisions before single actions.
        self.decisions: list[int] = [0]

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
        ctx = self.cluster.ctx
        if ctx.version == self._checked_version:
            return   # nothing the invariants look at has changed
        self._checked_version = ctx.version
        # A broken model invariant raises ModelBugError here (a kafkacheck bug); what it
        # returns are findings about Kafka, recorded so that check and replay see them.
        for finding in self.monitor.check(self.cluster.view()):
            ctx.history.internal("monitor", "invariant", **finding)

    def apply_all(self, actions: Iterable[Any]) -> None:
        for action in actions:
            self.apply(action)

    def finish(self) -> None:
        """Heal, restart and drain (the settle phase), then record the final logs."""
        self.settle_from = len(self.schedule)
        for action in settle(self.cluster):
            self.apply(action)

    def end_decision(self) -> None:
        if self.decisions[-1] != len(self.schedule):
            self.decisions.append(len(self.schedule))

    @property
    def actions(self) -> list[Any]:
        """The schedule before the settle phase: what the driver chose."""
        return self.schedule[:self.settle_from]

    def verdict(self) -> Verdict:
        """The complete verdict (model-aware and Jepsen's checkers), as ``check`` and
        ``replay`` compute it."""
        return judge(self.cluster.history)
