"""Links between nodes: one FIFO queue per direction, cuts, and connection generations.

Kafka talks over TCP, so messages on one connection arrive in order, while messages on
different connections may interleave arbitrarily: hence one FIFO per ordered pair and a
driver that chooses which non-empty link delivers next.

What each fault loses, as the real event would:

* **Process kill** (:meth:`kill`): bytes the process already handed to its kernel still
  leave the machine, so what it queued to others is still delivered, followed by the end
  of the connection (:class:`model.messages.ConnectionClosed`); what others queued to it
  is lost.  (A restart takes far longer than a kernel takes to flush a socket, so the
  cluster delivers those bytes before a killed node starts again.)
* **Network cut** (:meth:`cut`): everything queued on the cut links is lost in both
  directions and both ends see the connection break (a connection reset).

A client that times a request out closes its connection (:meth:`close`).  What it had
already sent is still on its way: closing a socket does not call back bytes the kernel
has sent, and a broker processes every request it has read, even from a connection that
has since closed (its answer goes nowhere).  Those requests leave the connection's FIFO
for a *late* queue of their own, delivered whenever the driver chooses
(:class:`model.actions.DeliverLate`): before, between or after the requests of the
client's new connection, as two TCP connections may reorder.  This is how a produce or an
EndTxn arrives after its client gave up on it (KIP-890's delayed requests).  What was
queued towards the closing client is dropped, and the generation number stamped on each
message lets a late response on the old connection be discarded instead of delivered.  A node that is up but has not opened its listeners yet (a broker
before the controller unfenced it) refuses new requests (:meth:`accepts`) while answers on
connections it opened itself still reach it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from model.messages import ConnectionClosed

Link = tuple[str, str]


class Network:
    __slots__ = ("queues", "cuts", "down", "generations", "not_listening", "late")

    def __init__(self) -> None:
        self.queues: dict[Link, deque[tuple[int, Any]]] = {}
        # Requests sent on connections their sender has since closed, still travelling.
        self.late: dict[Link, deque[tuple[int, Any]]] = {}
        self.cuts: set[frozenset[str]] = set()
        self.down: set[str] = set()
        self.generations: dict[frozenset[str], int] = {}
        self.not_listening: set[str] = set()

    def connected(self, a: str, b: str) -> bool:
        return a not in self.down and b not in self.down and frozenset((a, b)) not in self.cuts

    def accepts(self, src: str, dst: str) -> bool:
        """Would a new request from ``src`` reach ``dst`` (connection not refused)?"""
        return self.connected(src, dst) and dst not in self.not_listening

    def generation(self, a: str, b: str) -> int:
        return self.generations.get(frozenset((a, b)), 0)

    def send(self, src: str, dst: str, message: Any, generation: int | None = None) -> bool:
        """Queue ``message``; False (and nothing queued) if it cannot get there.

        ``generation`` is given for an answer on the connection a request came in on: it
        is dropped if that connection has closed since.  Without it the message is a new
        request, refused by a node whose listeners are not open."""
        if generation is None:
            if not self.accepts(src, dst):
                return False
        elif not self.connected(src, dst) or generation != self.generation(src, dst):
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
        return sum(len(q) for q in self.queues.values()) + sum(
            len(q) for q in self.late.values())

    def late_links(self) -> list[Link]:
        return sorted(link for link, queue in self.late.items() if queue)

    def pop_late(self, src: str, dst: str) -> tuple[int, Any]:
        queue = self.late.get((src, dst))
        if not queue:
            raise KeyError(f"nothing late on {src}->{dst}")
        return queue.popleft()

    def close(self, closer: str, peer: str) -> None:
        """``closer`` closes its connection to ``peer`` (a request timeout): what it sent
        travels on as late messages; what ``peer`` sent it is dropped."""
        outbound = self.queues.get((closer, peer))
        if outbound:
            self.late.setdefault((closer, peer), deque()).extend(outbound)
        self.reset(closer, peer)

    def _drop_late(self, a: str, b: str) -> None:
        for link in ((a, b), (b, a)):
            if link in self.late:
                self.late[link].clear()

    def reset(self, a: str, b: str) -> None:
        """Close the connection between a and b: drop queued messages, new generation."""
        pair = frozenset((a, b))
        self.generations[pair] = self.generations.get(pair, 0) + 1
        for link in ((a, b), (b, a)):
            if link in self.queues:
                self.queues[link].clear()

    def kill(self, node: str, nodes: list[str]) -> list[str]:
        """A process kill; returns the peers that see the connection close at once (the
        others see it when its last bytes, then a ConnectionClosed, are delivered)."""
        self.down.add(node)
        told_now = []
        for peer in nodes:
            if peer == node:
                continue
            pair = frozenset((node, peer))
            old = self.generations.get(pair, 0)
            self.generations[pair] = old + 1
            inbound = self.queues.get((peer, node))
            if inbound:
                inbound.clear()
            late_inbound = self.late.get((peer, node))
            if late_inbound:
                late_inbound.clear()
            outbound = self.queues.get((node, peer))
            if outbound:
                outbound.append((old, ConnectionClosed()))
            elif frozenset((node, peer)) not in self.cuts:
                told_now.append(peer)
        return told_now

    def set_up(self, node: str) -> None:
        self.down.discard(node)

    def listen(self, node: str, listening: bool) -> None:
        if listening:
            self.not_listening.discard(node)
        else:
            self.not_listening.add(node)

    def cut(self, side: set[str], nodes: list[str]) -> list[tuple[str, str]]:
        """Cut every link between ``side`` and the ``nodes`` outside it; returns the
        pairs cut."""
        pairs = []
        for a in sorted(side):
            for b in nodes:
                if b in side:
                    continue
                pair = frozenset((a, b))
                if pair not in self.cuts:
                    self.cuts.add(pair)
                    self.reset(a, b)
                    self._drop_late(a, b)
                    pairs.append((a, b))
        return pairs

    def heal(self) -> None:
        self.cuts.clear()
