"""Links between nodes: one FIFO queue per direction, cuts, and connection generations.

Kafka talks over TCP, so messages on one connection arrive in order, while messages on
different connections may interleave arbitrarily: hence one FIFO per ordered pair and a
driver that chooses which non-empty link delivers next.  A crash or a cut drops what is
queued (the connection dies).  A client that times a request out closes its connection;
the generation number stamped on each message lets a late response on the old connection
be discarded instead of delivered.
"""

from __future__ import annotations

from collections import deque
from typing import Any

Link = tuple[str, str]


class Network:
    __slots__ = ("queues", "cuts", "down", "generations")

    def __init__(self) -> None:
        self.queues: dict[Link, deque[tuple[int, Any]]] = {}
        self.cuts: set[frozenset[str]] = set()
        self.down: set[str] = set()
        self.generations: dict[frozenset[str], int] = {}

    def connected(self, a: str, b: str) -> bool:
        return a not in self.down and b not in self.down and frozenset((a, b)) not in self.cuts

    def generation(self, a: str, b: str) -> int:
        return self.generations.get(frozenset((a, b)), 0)

    def send(self, src: str, dst: str, message: Any, generation: int | None = None) -> bool:
        """Queue ``message``; False (and nothing queued) if it cannot get there."""
        if not self.connected(src, dst):
            return False
        if generation is not None and generation != self.generation(src, dst):
            return False
        queue = self.queues.get((src, dst))
        if queue is None:
            queue = self.queues[(src, dst)] = deque()
        queue.append((self.generation(src, dst), message))
        return True

    def ready_links(self) -> list[Link]:
        return sorted(link for link, queue in self.queues.items() if queue)

    def pop(self, src: str, dst: str) -> tuple[int, Any]:
        """The oldest queued message on ``src -> dst`` with its connection generation."""
        queue = self.queues.get((src, dst))
        if not queue:
            raise KeyError(f"nothing queued on {src}->{dst}")
        return queue.popleft()

    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def reset(self, a: str, b: str) -> None:
        """Close the connection between a and b: drop queued messages, new generation."""
        pair = frozenset((a, b))
        self.generations[pair] = self.generations.get(pair, 0) + 1
        for link in ((a, b), (b, a)):
            if link in self.queues:
                self.queues[link].clear()

    def set_down(self, node: str, nodes: list[str]) -> list[str]:
        """Mark ``node`` down and close every connection it had; returns its peers."""
        self.down.add(node)
        peers = [n for n in nodes if n != node]
        for peer in peers:
            self.reset(node, peer)
        return peers

    def set_up(self, node: str) -> None:
        self.down.discard(node)

    def cut(self, side: set[str], nodes: list[str]) -> list[tuple[str, str]]:
        """Cut every link between ``side`` and the other nodes; returns the pairs cut."""
        pairs = []
        for a in sorted(side):
            for b in nodes:
                if b in side:
                    continue
                pair = frozenset((a, b))
                if pair not in self.cuts:
                    self.cuts.add(pair)
                    self.reset(a, b)
                    pairs.append((a, b))
        return pairs

    def heal(self) -> None:
        self.cuts.clear()
