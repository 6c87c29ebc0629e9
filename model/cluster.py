"""The facade: owns every actor, lists the enabled actions, applies one atomically.

``apply`` is the only way the model changes, and it does exactly one thing per action, so
a schedule (a list of actions) plus a configuration determines the whole history.
"""

from __future__ import annotations

from typing import Any, Iterable

from model import actions as a
from model.broker import Broker
from model.config import Config
from model.consumer import Consumer
from model.context import CONTROLLER, Context
from model.controller import Controller
from model.history import Event
from model.messages import FetchRequest, FetchResponse
from model.producer import Producer
from model.views import PartitionView, ReplicaView

# The clock steps a driver may choose: a fetch backoff, a request timeout's third, a
# broker session timeout, and enough to push a follower out of the ISR in a few steps.
TICK_CHOICES = (100, 1000, 10000, 30000)


class Cluster:
    def __init__(self, config: Config) -> None:
        self.config = config
        n = config.broker.brokers
        self.brokers = [f"b{i}" for i in range(n)]
        self.producer_names = [f"p{i}" for i in range(config.workload.producers)]
        self.consumer_names = [f"c{i}" for i in range(config.workload.consumers)]
        self.clients = self.producer_names + self.consumer_names
        self.nodes = self.brokers + [CONTROLLER] + self.clients
        self.keys = [f"k{i}" for i in range(config.workload.keys)]
        self.ctx = Context(config, self.nodes)
        self.ctx.disconnected = lambda x, y: self._disconnect([(x, y)])
        rf = config.topic.replication_factor
        assignment = {p: tuple(self.brokers[(p + i) % n] for i in range(rf))
                      for p in range(config.topic.partitions)}
        self.offset_store: dict[int, int] = {}
        self.controller = Controller(self.ctx, self.brokers, assignment)
        self.broker_actors = {b: Broker(b, self.ctx, self.offset_store) for b in self.brokers}
        for p, replicas in assignment.items():
            for b in replicas:
                self.broker_actors[b].host(p)
        self.producers = {name: Producer(name, self.ctx, self.controller.leader_of)
                          for name in self.producer_names}
        self.consumers: dict[str, Consumer] = {}
        self.actors: dict[str, Any] = {**self.broker_actors, CONTROLLER: self.controller,
                                       **self.producers}
        # The topic exists before any client starts: brokers know the initial leaders.
        # Every later decision reaches them as a message.
        for p in assignment:
            for replica in assignment[p]:
                self.broker_actors[replica].receive(
                    CONTROLLER, 0, self.controller.partitions[p].message(p))
        for name in self.consumer_names:
            self.consumers[name] = Consumer(name, self.ctx, self.controller.leader_of,
                                            self.controller.coordinator)
            self.actors[name] = self.consumers[name]
        self.step = 0
        self.finished = False

    # -- views -------------------------------------------------------------------------

    @property
    def history(self) -> list[Event]:
        return self.ctx.history.events

    @property
    def now(self) -> int:
        return self.ctx.now

    def alive(self, node: str) -> bool:
        actor = self.actors[node]
        return getattr(actor, "alive", True)

    def partitioned(self) -> bool:
        return bool(self.ctx.network.cuts)

    # -- the driver's menu -------------------------------------------------------------

    def enabled_actions(self) -> list[Any]:
        acts: list[Any] = [a.Deliver(s, d) for s, d in self.ctx.network.ready_links()]
        acts.extend(a.Tick(ms) for ms in TICK_CHOICES)
        for b in self.brokers:
            acts.append(a.Crash(b) if self.alive(b) else a.Restart(b))
        if self.partitioned():
            acts.append(a.Heal())
        else:
            acts.extend(a.Partition((n,)) for n in self.brokers + [CONTROLLER])
            # A broker cut off from the controller and the other brokers, still reachable
            # by every client: the way a deposed leader keeps serving (a zombie).
            acts.extend(a.Partition((b, *self.clients)) for b in self.brokers)
        for name in self.producer_names:
            if self.producers[name].alive:
                acts.extend(a.Send(name, k) for k in self.keys)
                acts.append(a.ClientCrash(name))
            else:
                acts.append(a.ClientRestart(name))
        for name, consumer in self.consumers.items():
            if not consumer.alive:
                acts.append(a.ClientRestart(name))
                continue
            if consumer.can_poll():
                acts.append(a.Poll(name))
            if consumer.can_process():
                acts.append(a.Process(name))
            if consumer.can_commit():
                acts.append(a.Commit(name))
            acts.append(a.ClientCrash(name))
        return acts

    def is_enabled(self, action: Any) -> bool:
        """Whether ``action`` may be applied now: the same answer as membership in
        ``enabled_actions()`` (plus explicit partitions and any well-formed partition
        side), decided directly because ``apply`` asks on every step."""
        if self.finished:
            return False
        kind = action.kind
        if kind == "deliver":
            return bool(self.ctx.network.queues.get((action.src, action.dst)))
        if kind == "tick":
            return action.ms > 0
        if kind == "finish":
            return True
        if kind in ("crash", "restart"):
            return (action.node in self.broker_actors
                    and self.alive(action.node) == (kind == "crash")
                    and (kind == "restart" or action.mode == "process"))
        if kind == "partition":
            side = set(action.side)
            return (not self.partitioned() and bool(side) and side < set(self.nodes)
                    and len(side) == len(action.side))
        if kind == "heal":
            return self.partitioned()
        if kind == "send":
            producer = self.producers.get(action.client)
            if producer is None or not producer.alive:
                return False
            if action.partition is not None:
                return action.partition < self.config.topic.partitions
            return action.key in self.keys
        if kind in ("client-crash", "client-restart"):
            return (action.client in self.clients
                    and self.alive(action.client) == (kind == "client-crash"))
        consumer = self.consumers.get(action.client)
        if consumer is None:
            return False
        return {"poll": consumer.can_poll, "process": consumer.can_process,
                "commit": consumer.can_commit}[kind]()

    # -- applying ----------------------------------------------------------------------

    def apply(self, action: Any) -> list[Event]:
        """Perform one action atomically; returns the events it appended."""
        if not self.is_enabled(action):
            raise a.ActionError(f"step {self.step}: {action!r} is not enabled")
        recorder = self.ctx.history
        recorder.step = self.step
        start = len(recorder.events)
        getattr(self, "_do_" + action.kind.replace("-", "_"))(action)
        self.step += 1
        return recorder.events[start:]

    def _do_deliver(self, act: a.Deliver) -> None:
        generation, message = self.ctx.network.pop(act.src, act.dst)
        actor = self.actors[act.dst]
        if self.alive(act.dst):
            actor.receive(act.src, generation, message)

    def _do_tick(self, act: a.Tick) -> None:
        self.ctx.history.time += act.ms
        self.controller.on_tick({b: self.alive(b) for b in self.brokers}, self._known_epochs)
        for broker in self.broker_actors.values():
            if broker.alive:
                broker.on_tick()
        for client in [*self.producers.values(), *self.consumers.values()]:
            if client.alive:
                client.on_tick()

    def _known_epochs(self, broker: str) -> dict[int, tuple[int, int]]:
        """How far a broker has read the metadata log: its (leader, partition) epochs."""
        return {p: (s.leader_epoch, s.partition_epoch)
                for p, s in self.broker_actors[broker].replicas.items()}

    def _disconnect(self, pairs: Iterable[tuple[str, str]]) -> None:
        for x, y in pairs:
            for here, peer in ((x, y), (y, x)):
                actor = self.actors[here]
                if self.alive(here) and hasattr(actor, "on_disconnect"):
                    actor.on_disconnect(peer)

    def _do_crash(self, act: a.Crash) -> None:
        self.broker_actors[act.node].crash()
        peers = self.ctx.network.set_down(act.node, self.nodes)
        self.ctx.event(act.node, "crash", mode=act.mode)
        self._disconnect((act.node, p) for p in peers)

    def _do_restart(self, act: a.Restart) -> None:
        self.ctx.network.set_up(act.node)
        self.broker_actors[act.node].restart()
        self.controller.broker_restarted(act.node)
        self.ctx.event(act.node, "restart")

    def _do_partition(self, act: a.Partition) -> None:
        pairs = self.ctx.network.cut(set(act.side), self.nodes)
        self.ctx.event("net", "partition", side=list(act.side))
        self._disconnect(pairs)

    def _do_heal(self, act: a.Heal) -> None:
        self.ctx.network.heal()
        self.ctx.event("net", "heal")

    def _do_send(self, act: a.Send) -> None:
        self.producers[act.client].send(act.key, act.partition)

    def _do_poll(self, act: a.Poll) -> None:
        self.consumers[act.client].poll()

    def _do_process(self, act: a.Process) -> None:
        self.consumers[act.client].process()

    def _do_commit(self, act: a.Commit) -> None:
        self.consumers[act.client].commit()

    def _do_client_crash(self, act: a.ClientCrash) -> None:
        self.actors[act.client].crash()
        peers = self.ctx.network.set_down(act.client, self.nodes)
        self._disconnect((act.client, p) for p in peers)

    def _do_client_restart(self, act: a.ClientRestart) -> None:
        self.ctx.network.set_up(act.client)
        self.actors[act.client].restart()

    def _do_finish(self, act: a.Finish) -> None:
        """Record each partition's final committed log: what a fair judge compares to."""
        self.ctx.event("net", "finish", quiescent=self.quiescent())
        for p, meta in sorted(self.controller.partitions.items()):
            source = meta.leader
            if source is None:
                source = max(meta.replicas,
                             key=lambda b: self.broker_actors[b].replicas[p].log.hw)
            log = self.broker_actors[source].replicas[p].log
            records = [[r.offset, r.value, r.key, r.producer, r.epoch]
                       for r in log.records[:log.hw]]
            self.ctx.event(source, "final-log", partition=p, leader=meta.leader, hw=log.hw,
                           records=records)
        self.finished = True

    # -- settling ----------------------------------------------------------------------

    def quiescent(self) -> bool:
        """Healthy, every send resolved, every committed record consumed and committed."""
        if self.partitioned() or not all(self.alive(n) for n in self.brokers + self.clients):
            return False
        if self.controller.fenced or self.controller.reregistering:
            return False
        if not self._only_replication_traffic():
            return False
        if not all(p.idle() for p in self.producers.values()):
            return False
        hws = {}
        for p, meta in self.controller.partitions.items():
            if meta.leader is None or set(meta.isr) != set(meta.replicas):
                return False
            state = self.broker_actors[meta.leader].replicas[p]
            if state.leader != meta.leader or state.leader_epoch != meta.leader_epoch:
                return False
            if state.log.hw != state.log.leo or any(
                    self.broker_actors[r].replicas[p].log.leo != state.log.leo
                    for r in meta.replicas):
                return False
            hws[p] = state.log.hw
        return all(c.caught_up(hws) for c in self.consumers.values())

    def _only_replication_traffic(self) -> bool:
        """Fetches go on forever; anything else still queued means work is in flight."""
        for queue in self.ctx.network.queues.values():
            for _, message in queue:
                if not isinstance(message, (FetchRequest, FetchResponse)):
                    return False
        return True

    # -- state views for the model-state invariants ------------------------------------

    def partition_views(self) -> list[PartitionView]:
        views = []
        for p, meta in sorted(self.controller.partitions.items()):
            replicas = {}
            for b in meta.replicas:
                broker = self.broker_actors[b]
                state = broker.replicas[p]
                replicas[b] = ReplicaView(b, broker.alive, state.leader == b,
                                          state.leader_epoch, state.log.hw, state.log.records)
            views.append(PartitionView(p, meta.leader, meta.leader_epoch, meta.isr, replicas))
        return views
