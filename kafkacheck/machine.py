"""The Hypothesis state machine: one rule per action kind, choosing among enabled actions.

Hypothesis is only the *driver*: every rule draws one of the model's currently enabled
actions of its kind and hands it to :class:`kafkacheck.runner.Run`.  Model-state
invariants are checked after every step (a violation fails at once, which shrinks best);
delivery, visibility and order are judged in ``teardown`` after the settle phase, because
loss can only be judged once the cluster has had the chance to deliver.

``flush`` delivers every queued message once, oldest link first: a burst of ordinary
Deliver actions (recorded one by one), there so that runs make progress between faults.

Swarm testing (Groce et al., ISSTA 2012): each run first draws which *fault families* it
may use (clock jumps, broker crashes, network partitions, client crashes).  A run with
only client crashes explores consumer interleavings far more densely than one where
every third step is a partition; across runs every combination is tried, and the draw
shrinks like any other choice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from invariants.check import Verdict
from kafkacheck.runner import Run
from model import actions as a
from model.cluster import TICK_CHOICES
from model.config import Config


FAULT_FAMILIES = {
    "clock": ("tick",),
    "broker-crash": ("crash",),
    "network-partition": ("partition",),
    "client-crash": ("client-crash",),
}
# Only the fault itself is gated: a run that used a fault may always repair it.
FAMILY_OF = {kind: family for family, kinds in FAULT_FAMILIES.items() for kind in kinds}


class AnomalyFound(AssertionError):
    """Raised when a run shows an anomaly the hunt is looking for."""


def _pick(kind: str) -> Any:
    """A rule that applies one of the currently enabled actions of ``kind``."""

    @precondition(lambda self: self._has(kind))
    @rule(data=st.data())
    def pick(self: "KafkaMachine", data: st.DataObject) -> None:
        self._apply_one(data, kind)

    pick.__name__ = kind.replace("-", "_")
    return pick


class KafkaMachine(RuleBasedStateMachine):
    """Subclassed per configuration by :func:`machine_for`."""

    config: ClassVar[Config] = Config()
    ignore: ClassVar[frozenset[str]] = frozenset()
    target: ClassVar[frozenset[str] | None] = None
    # The most recent failing run; after shrinking, the minimal one.
    last_failure: ClassVar[tuple[Run, Verdict] | None] = None
    runs: ClassVar[int] = 0
    steps: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.run = Run(self.config)
        self.faults: frozenset[str] = frozenset(FAULT_FAMILIES)
        type(self).runs += 1

    @initialize(faults=st.sets(st.sampled_from(sorted(FAULT_FAMILIES))))
    def choose_faults(self, faults: set[str]) -> None:
        self.faults = frozenset(faults)

    @initialize(data=st.data(), sends=st.integers(0, 4), rounds=st.integers(0, 4))
    def warm_up(self, data: st.DataObject, sends: int, rounds: int) -> None:
        """Start from a cluster that already holds data: a few sends, then a few rounds
        of delivering everything.  Every action is an ordinary, recorded one, and both
        counts shrink to zero, so nothing is hidden from a counterexample."""
        for _ in range(sends):
            self._apply_one(data, "send")
        for _ in range(rounds):
            self.flush()

    # -- helpers -----------------------------------------------------------------------

    def _enabled(self, kind: str) -> list[Any]:
        return self.run.enabled(kind)

    def _apply_one(self, data: st.DataObject, kind: str) -> None:
        choices = self._enabled(kind)
        self.run.apply(data.draw(st.sampled_from(choices), label=kind))

    def _has(self, kind: str) -> bool:
        family = FAMILY_OF.get(kind)
        if family is not None and family not in self.faults:
            return False
        return bool(self._enabled(kind))

    # -- rules -------------------------------------------------------------------------

    deliver = _pick("deliver")

    @precondition(lambda self: self._has("deliver"))
    @rule()
    def flush(self) -> None:
        network = self.run.cluster.ctx.network
        for action in self._enabled("deliver"):
            if network.queues.get((action.src, action.dst)):
                self.run.apply(action)

    @precondition(lambda self: "clock" in self.faults)
    @rule(ms=st.sampled_from(TICK_CHOICES))
    def tick(self, ms: int) -> None:
        self.run.apply(a.Tick(ms))

    crash = _pick("crash")
    restart = _pick("restart")
    partition = _pick("partition")
    send = _pick("send")
    poll = _pick("poll")
    process = _pick("process")
    commit = _pick("commit")
    client_crash = _pick("client-crash")
    client_restart = _pick("client-restart")

    @precondition(lambda self: self._has("heal"))
    @rule()
    def heal(self) -> None:
        self.run.apply(a.Heal())

    # -- checks ------------------------------------------------------------------------

    @invariant()
    def model_state_holds(self) -> None:
        names = self._wanted({e.value["name"] for e in self.run.cluster.history
                              if e.f == "invariant"})
        if names:
            self._fail(f"model-state invariant violated: {', '.join(sorted(names))}")

    def teardown(self) -> None:
        type(self).steps += len(self.run.schedule)
        if self.run.cluster.finished:
            return
        self.run.finish()
        verdict = self.run.verdict()
        found = self._wanted(set(verdict.invalid))
        if found:
            self._fail(f"anomalies found: {', '.join(sorted(found))}", verdict)

    def _wanted(self, names: set[str]) -> set[str]:
        names = names - self.ignore
        return names & self.target if self.target is not None else names

    def _fail(self, message: str, verdict: Verdict | None = None) -> None:
        if verdict is None:
            self.run.finish()
            verdict = self.run.verdict()
        type(self).last_failure = (self.run, verdict)
        raise AnomalyFound(message)


def machine_for(config: Config, ignore: frozenset[str] = frozenset(),
                target: frozenset[str] | None = None) -> type[KafkaMachine]:
    """A fresh machine class bound to one configuration (class state is per hunt)."""
    return type("KafkaMachine", (KafkaMachine,), {
        "config": config, "ignore": ignore, "target": target, "last_failure": None,
        "runs": 0, "steps": 0})
