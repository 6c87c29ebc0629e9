"""What every actor shares: configuration, clock, network, history and id counters.

Actors talk only through :meth:`Context.send`; they never call each other, so every
interaction is a message the driver controls.
"""

from __future__ import annotations

from typing import Any, Callable

from model.config import Config
from model.history import HistoryRecorder
from model.network import Network

CONTROLLER = "ctl"
# The process name of events about the network itself (cuts, heals, delays).
NETWORK = "net"


class Context:
    __slots__ = ("config", "network", "history", "nodes", "_corr", "_value", "disconnected",
                 "version")

    def __init__(self, config: Config, nodes: list[str]) -> None:
        self.config = config
        self.network = Network(config.host.orphan_window_ms)
        self.history = HistoryRecorder()
        self.nodes = nodes
        self._corr = 0
        self._value = 0
        # Set by the cluster: tells both ends of a connection that it closed.
        self.disconnected: Callable[[str, str], None] | None = None
        # Bumped whenever state the model-state invariants look at may have changed
        # (logs, high watermarks, roles, ISRs, metadata), so they run only then.
        self.version = 0

    @property
    def now(self) -> int:
        return self.history.time

    def next_corr(self) -> int:
        self._corr += 1
        return self._corr

    def next_value(self) -> int:
        """Unique record values, so every checker can tell records apart (as Jepsen does)."""
        self._value += 1
        return self._value

    def send(self, src: str, dst: str, message: Any, generation: int | None = None) -> bool:
        return self.network.send(src, dst, message, generation)

    def close(self, a: str, b: str) -> None:
        """``a`` closes its connection to ``b`` (a client's request timeout): what ``a``
        sent still arrives, late (:meth:`model.network.Network.close`), what ``b`` sent
        is dropped, and both ends are told."""
        self.network.close(a, b)
        if self.disconnected is not None:
            self.disconnected(a, b)

    def touch(self) -> None:
        self.version += 1

    def event(self, node: str, f: str, **value: Any) -> None:
        self.version += 1
        self.history.internal(node, f, **value)
