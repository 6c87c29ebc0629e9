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
EndTxn arrives after its client gave up on it (KIP-890's delayed requests).  Not for
ever: Kafka closes sockets without ``SO_LINGER`` (``Selector``), so the kernel keeps
retransmitting an orphaned socket's unacknowledged bytes only ``tcp_orphan_retries``
times, about 102 s after the oldest was first sent with Linux's defaults
(:attr:`model.config.HostConfig.orphan_window_ms`); then it resets the connection and
what is still unacknowledged never arrives (:meth:`advance`).  What was
queued towards the closing client is dropped, and the generation number stamped on each
message lets a late response on the old connection be discarded instead of delivered.  A node that is up but has not opened its listeners yet (a broker
before the controller unfenced it) refuses new requests (:meth:`accepts`) while answers on
connections it opened itself still reach it.

A broker reads one request at a time from a client connection: ``SocketServer``'s
processor mutes a channel once it has read a whole request and unmutes it only when the
answer is sent (or, for an ``acks=0`` produce, when it is handled), so the requests a
producer pipelines (``max.in.flight.requests.per.connection``) wait, unread, behind one
parked in purgatory.  The model mutes the connections of the sources named in
:meth:`read_one_at_a_time` (the producers, whose Sender has exactly one connection per
broker); a muted connection's next message, late or not, cannot be delivered until the
broker answers (:meth:`unmute`, done by any answer :meth:`send` carries on that
connection).  Other links stand for several Kafka connections each (a follower's
fetcher, the transaction marker sender and the verification sender between two brokers;
a consumer's fetch and coordinator connections), which Kafka reads independently, so the
model does not serialise them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from model.messages import ConnectionClosed

Link = tuple[str, str]


class Network:
    __slots__ = ("queues", "cuts", "down", "generations", "not_listening", "late",
                 "sent_at", "late_sent_at", "now", "orphan_window_ms", "one_at_a_time",
                 "muted")

    def __init__(self, orphan_window_ms: int = 102_200) -> None:
        self.queues: dict[Link, deque[tuple[int, Any]]] = {}
        # Requests sent on connections their sender has since closed, still travelling.
        self.late: dict[Link, deque[tuple[int, Any]]] = {}
        # When each queued (or late) message was first sent, in step with its queue:
        # an orphaned connection's bytes stop travelling orphan_window_ms after that.
        self.sent_at: dict[Link, deque[int]] = {}
        self.late_sent_at: dict[Link, deque[int]] = {}
        self.now = 0
        self.orphan_window_ms = orphan_window_ms
        self.cuts: set[frozenset[str]] = set()
        self.down: set[str] = set()
        self.generations: dict[frozenset[str], int] = {}
        self.not_listening: set[str] = set()
        # Sources whose connections the receiving broker reads one request at a time,
        # and the connections (src, dst, generation) with a request being handled.
        self.one_at_a_time: frozenset[str] = frozenset()
        self.muted: set[tuple[str, str, int]] = set()

    def read_one_at_a_time(self, sources: list[str]) -> None:
        """Connections from ``sources`` are muted from each request's delivery until
        its answer (``SocketServer``'s channel muting)."""
        self.one_at_a_time = frozenset(sources)

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
        else:
            # An answer unmutes the connection its request came on, even when it can no
            # longer be carried (the broker finished handling the request either way).
            self.muted.discard((dst, src, generation))
            if not self.connected(src, dst) or generation != self.generation(src, dst):
                return False
        self._append((src, dst), (self.generation(src, dst), message))
        return True

    def _append(self, link: Link, entry: tuple[int, Any]) -> None:
        queue = self.queues.get(link)
        if queue is None:
            queue = self.queues[link] = deque()
            self.sent_at[link] = deque()
        queue.append(entry)
        self.sent_at[link].append(self.now)

    def _clear(self, link: Link) -> None:
        if link in self.queues:
            self.queues[link].clear()
            self.sent_at[link].clear()

    def unmute(self, src: str, dst: str, generation: int) -> None:
        """``dst`` finished a request from ``src`` that gets no answer (``acks=0``)."""
        self.muted.discard((src, dst, generation))

    def _next_readable(self, link: Link, queue: deque[tuple[int, Any]] | None) -> bool:
        """Whether ``queue`` has a next message and its connection is not muted."""
        if not queue:
            return False
        return (link[0], link[1], queue[0][0]) not in self.muted

    def deliverable(self, src: str, dst: str) -> bool:
        """Whether the next message queued on ``src -> dst`` can be delivered now."""
        return self._next_readable((src, dst), self.queues.get((src, dst)))

    def late_deliverable(self, src: str, dst: str) -> bool:
        """Whether the next late message on ``src -> dst`` can be delivered now."""
        return self._next_readable((src, dst), self.late.get((src, dst)))

    def holds(self, src: str, dst: str, kinds: tuple[type, ...]) -> bool:
        """Whether a message of one of ``kinds`` waits on the current connection
        ``src -> dst`` (late requests travel on connections of their own)."""
        queue = self.queues.get((src, dst), ())
        return any(isinstance(message, kinds) for _, message in queue)

    def ready_links(self) -> list[Link]:
        """Links whose next queued message can be delivered now."""
        return sorted(link for link, queue in self.queues.items()
                      if self._next_readable(link, queue))

    def _take(self, link: Link, queue: deque[tuple[int, Any]] | None,
              times: deque[int]) -> tuple[int, Any]:
        if not self._next_readable(link, queue):
            raise KeyError(f"nothing deliverable on {link[0]}->{link[1]}")
        assert queue is not None
        times.popleft()
        generation, message = queue.popleft()
        if (link[0] in self.one_at_a_time and link[1] not in self.down
                and not isinstance(message, ConnectionClosed)):
            self.muted.add((link[0], link[1], generation))
        return generation, message

    def pop(self, src: str, dst: str) -> tuple[int, Any]:
        """The oldest queued message on ``src -> dst`` with its connection generation
        (which, for a request read one at a time, mutes its connection)."""
        return self._take((src, dst), self.queues.get((src, dst)),
                          self.sent_at.get((src, dst), deque()))

    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values()) + sum(
            len(q) for q in self.late.values())

    def late_links(self) -> list[Link]:
        """Links whose next late message can be delivered now."""
        return sorted(link for link, queue in self.late.items()
                      if self._next_readable(link, queue))

    def links_with_late(self) -> list[Link]:
        """Links with late messages, deliverable now or waiting behind a muted request."""
        return sorted(link for link, queue in self.late.items() if queue)

    def pop_late(self, src: str, dst: str) -> tuple[int, Any]:
        return self._take((src, dst), self.late.get((src, dst)),
                          self.late_sent_at.get((src, dst), deque()))

    def orphan(self, src: str, dst: str) -> None:
        """What is still queued on ``src -> dst`` from a connection that has ended travels
        on late, apart from whatever its peer opens next (a restarted process's new
        connection does not wait behind the old one's unread requests)."""
        link = (src, dst)
        if self.queues.get(link):
            self.late.setdefault(link, deque()).extend(self.queues[link])
            self.late_sent_at.setdefault(link, deque()).extend(self.sent_at[link])
            self._clear(link)

    def close(self, closer: str, peer: str) -> None:
        """``closer`` closes its connection to ``peer`` (a request timeout): what it sent
        travels on as late messages, unless the kernel's orphan retries are already
        spent; what ``peer`` sent it is dropped."""
        link = (closer, peer)
        outbound = self.queues.get(link)
        if outbound and not self._orphan_expired(self.sent_at[link][0]):
            self.orphan(closer, peer)
        self.reset(closer, peer)

    def _orphan_expired(self, first_sent: int) -> bool:
        """Whether an orphaned connection whose oldest unacknowledged bytes were sent at
        ``first_sent`` has been reset by now (``tcp_write_timeout`` checks before
        retransmitting, so nothing of it is sent once the window is over)."""
        return self.now - first_sent >= self.orphan_window_ms

    def advance(self, now: int) -> list[tuple[Link, int]]:
        """The clock moved to ``now``: an orphaned connection whose oldest late message
        was first sent a whole orphan window ago is reset by its sender's kernel, and
        everything still late on it is lost.  Returns (link, messages lost) for each
        connection reset."""
        self.now = now
        resets = []
        for link in self.links_with_late():
            queue, times = self.late[link], self.late_sent_at[link]
            while queue and self._orphan_expired(times[0]):
                generation, lost = queue[0][0], 0
                while queue and queue[0][0] == generation:    # the rest of its connection
                    queue.popleft()
                    times.popleft()
                    lost += 1
                resets.append((link, lost))
        return resets

    def _drop_late(self, a: str, b: str) -> None:
        for link in ((a, b), (b, a)):
            self._clear_late(link)

    def _clear_late(self, link: Link) -> None:
        if link in self.late:
            self.late[link].clear()
            self.late_sent_at[link].clear()

    def reset(self, a: str, b: str) -> None:
        """Close the connection between a and b: drop queued messages, new generation."""
        pair = frozenset((a, b))
        self.generations[pair] = self.generations.get(pair, 0) + 1
        for link in ((a, b), (b, a)):
            self._clear(link)

    def kill(self, node: str, nodes: list[str]) -> list[str]:
        """A process kill; returns the peers that see the connection close at once (the
        others see it when its last bytes, then a ConnectionClosed, are delivered)."""
        self.down.add(node)
        # Requests it was handling die with it (what they muted is gone with them).
        self.muted = {key for key in self.muted if key[1] != node}
        told_now = []
        for peer in nodes:
            if peer == node:
                continue
            pair = frozenset((node, peer))
            old = self.generations.get(pair, 0)
            self.generations[pair] = old + 1
            self._clear((peer, node))
            self._clear_late((peer, node))
            if self.queues.get((node, peer)):
                self._append((node, peer), (old, ConnectionClosed()))
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
