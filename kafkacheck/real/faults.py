"""Jepsen-style faults from a seeded schedule, and the nemesis that applies them.

The schedule is a pure function of ``--seed``, the chosen fault families and the run's
length (a ``random.Random(seed)``, never global randomness), so the same command asks for
the same faults in the same order.  The cluster itself is nondeterministic: which node
"the leader" is gets resolved when the fault starts, and the fault log records the node
that was actually hit.

Like Jepsen's nemesis, faults come one at a time: a quiet period, the fault, a hold, its
repair.  Every start and repair is an ``internal`` history event (``crash``/``restart``,
``pause``/``resume``, ``partition``/``heal``, ``client-crash``/``client-restart``) and a
fault-log entry.

| kind | what is done | the real event it stands for |
|---|---|---|
| ``kill`` | SIGKILL a node, restart it after the hold | a broker process crash (OOM kill, segfault); the page cache survives |
| ``pause`` | SIGSTOP, SIGCONT after the hold | a long GC pause or a stalled VM: the node wakes up believing it is still leader |
| ``isolate-leader`` | drop all packets between a partition's leader and the other nodes (clients still reach it) | a leader cut off from its followers and the quorum, but not from producers |
| ``isolate-controller`` | the same for the active KRaft controller | the quorum leader in a minority of one |
| ``split-quorum`` | drop packets between the active controller and one other voter only | a non-transitive partition ("bridge"): each side still reaches a majority through the third node |
| ``cut-clients`` | drop packets between a partition's leader and the clients' namespace | clients lose their route to the leader while replication continues |
| ``client-crash`` | kill -9 a producer, or crash the consumer application at a chosen point of its loop; restart after the hold | an application process dying |
"""

from __future__ import annotations

import random
import threading
from typing import Any, Callable

import attrs

FAMILIES: dict[str, tuple[str, ...]] = {
    "crash": ("kill",),
    "pause": ("pause",),
    "partition": ("isolate-leader", "isolate-controller", "split-quorum", "cut-clients"),
    "client-crash": ("client-crash",),
}
DEFAULT_FAULTS = ("crash", "pause", "partition", "client-crash")


@attrs.frozen
class FaultSpec:
    """One scheduled fault, before its target is resolved against the live cluster."""

    kind: str
    target: str          # leader | controller | node | a client name (p0, c0)
    partition: int       # whose leader, when target is leader
    pick: int            # tie-break / fallback index among nodes
    quiet_s: float       # wait before the fault starts
    hold_s: float        # how long it lasts
    point: str | None = None   # where the consumer application crashes

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "FaultSpec":
        return cls(**raw)


def make_schedule(seed: int, families: tuple[str, ...] | frozenset[str], duration_s: float,
                  partitions: int | list[int], clients: list[str],
                  hold: tuple[float, float] = (5.0, 12.0),
                  quiet: tuple[float, float] = (2.0, 6.0)) -> list[FaultSpec]:
    """Faults filling ``duration_s`` seconds, drawn from ``random.Random(seed)``.

    ``partitions`` are the partitions whose leaders may be targeted: the run passes those
    its keys are written to (with the model's default 3 keys and 2 partitions every key
    hashes to partition 1, and a fault on partition 0's leader would test nothing)."""
    targets = list(range(partitions)) if isinstance(partitions, int) else list(partitions)
    from kafkacheck.real.workload import CRASH_POINTS

    rng = random.Random(seed)
    kinds = [k for family in sorted(families) for k in FAMILIES[family]]
    schedule: list[FaultSpec] = []
    elapsed = 0.0
    while kinds and elapsed < duration_s:
        kind = rng.choice(kinds)
        partition = rng.choice(targets)
        pick = rng.randrange(1 << 16)
        quiet_s = round(rng.uniform(*quiet), 1)
        hold_s = round(rng.uniform(*hold), 1)
        point = None
        if kind in ("kill", "pause"):
            target = rng.choice(("leader", "leader", "controller", "node"))
        elif kind in ("isolate-leader", "cut-clients"):
            target = "leader"
        elif kind in ("isolate-controller", "split-quorum"):
            target = "controller"
        else:
            target = rng.choice(clients)
            point = rng.choice(CRASH_POINTS) if target.startswith("c") else None
        schedule.append(FaultSpec(kind, target, partition, pick, quiet_s, hold_s, point))
        elapsed += quiet_s + hold_s
    return schedule


class Nemesis:
    """Applies a schedule to the live cluster; ``actions`` does the work (see run.py)."""

    def __init__(self, schedule: list[FaultSpec], actions: "FaultActions",
                 on_step: Callable[[int], None]) -> None:
        self.schedule = schedule
        self.actions = actions
        self.on_step = on_step
        self.stop = threading.Event()
        self.applied = 0
        self.thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            for index, spec in enumerate(self.schedule):
                if self.stop.wait(spec.quiet_s):
                    return
                self.on_step(index + 1)
                repair = self.actions.begin(spec)
                self.applied += 1
                self.stop.wait(spec.hold_s)
                repair()
                if self.stop.is_set():
                    return
        except BaseException as error:  # reported by the run, never silently lost
            self.error = error

    def finish(self, timeout: float = 120.0) -> None:
        self.stop.set()
        self.thread.join(timeout=timeout)


class FaultActions:
    """The operations a fault needs; implemented by the run against its cluster."""

    def begin(self, spec: FaultSpec) -> Callable[[], None]:  # pragma: no cover - interface
        raise NotImplementedError
