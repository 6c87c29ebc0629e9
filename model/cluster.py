"""The facade: owns every actor, lists the enabled actions, applies one atomically.

``apply`` is the only way the model changes, and it does exactly one thing per action, so
a schedule (a list of actions) plus a configuration determines the whole history.
"""

from __future__ import annotations

from typing import Any, Iterable

from model import actions as a
from model import messages as m
from model.broker.broker import Broker
from model.broker.group_coordinator import coordinator_partition
from model.broker.partition import TopicSettings
from model.broker.producer_state import ProducerStates
from model.broker.transaction_coordinator import transaction_partition
from model.clients.consumer import Consumer
from model.clients.membership import GroupMembership
from model.clients.partitioner import spread_keys
from model.clients.producer import Producer
from model.clients.transform import (output_partitions, output_producer_name,
                                     transform_transactional_id)
from model.config import Config
from model.context import CONTROLLER, NETWORK, Context
from model.controller import Controller
from model.history import Event
from model.metadata import PartitionId, is_user_partition
from model.views import BrokerView, ClusterView, PartitionView, ReplicaView

# The clock steps a driver may choose: a fetch backoff, a request timeout's third, a
# broker session timeout, and enough to push a follower out of the ISR in a few steps.
TICK_CHOICES = (100, 1000, 10000, 30000)

# Messages that flow for ever in a healthy cluster (replica fetches, the metadata long
# poll); anything else still queued means work is in flight.
_BACKGROUND = (m.FetchRequest, m.FetchResponse, m.MetadataFetch)


def transactional_final_log(records: list[Any]) -> list[list[Any]]:
    """The committed log's data records, each transactional one with its transaction's
    outcome as of the high watermark: ``committed``, ``aborted`` or ``open`` (no marker
    below the HW).  Control records are left out; their offsets stay unused."""
    states = ProducerStates.rebuild(records)
    rows = []
    for r in records:
        if not r.is_data:
            continue
        row: list[Any] = [r.offset, r.value, r.key, r.producer, r.epoch]
        if r.transactional:
            txn = next((t for t in states.completed if t.producer_id == r.producer_id
                        and t.first_offset <= r.offset < t.last_offset), None)
            status = "open" if txn is None else ("aborted" if txn.aborted else "committed")
            row.append(status)
        rows.append(row)
    return rows


def _placement(index: int, brokers: list[str], replication_factor: int) -> tuple[str, ...]:
    """Partition ``index`` lives on brokers ``index, index+1, ...``; the first leads."""
    n = len(brokers)
    return tuple(brokers[(index + i) % n] for i in range(replication_factor))


class Cluster:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.brokers = [f"b{i}" for i in range(config.broker.brokers)]
        self.producer_names = [f"p{i}" for i in range(config.workload.producers)]
        self.consumer_names = [f"c{i}" for i in range(config.workload.consumers)]
        self.clients = self.producer_names + self.consumer_names
        # Nodes that are part of a client's process (a transform's output producer): they
        # pause, crash and restart with it, and sit on its host.
        self.process_of: dict[str, str] = {}
        if config.consumer.processing == "transform":
            self.process_of = {output_producer_name(c): c for c in self.consumer_names}
        self.client_nodes = self.clients + sorted(self.process_of)
        self.output_partitions: tuple[str, ...] = (
            output_partitions(config.topic.partitions) if self.process_of else ())
        self.nodes = self.brokers + [CONTROLLER] + self.client_nodes
        self.keys = spread_keys(config.workload.keys, config.topic.partitions)
        self.ctx = Context(config, self.nodes)
        self.ctx.disconnected = lambda x, y: self._disconnect([(x, y)])
        # A producer's Sender holds one connection per broker, read a request at a time.
        self.ctx.network.read_one_at_a_time(self.producer_names + sorted(self.process_of))

        self.transactional_ids = self._transactional_ids()
        assignment, settings = self._topics()
        self.controller = Controller(self.ctx, self.brokers, assignment,
                                     lambda p: settings[p].unclean_leader_election_enable)
        self.broker_actors = {
            b: Broker(b, self.ctx, {p: settings[p] for p, rs in assignment.items() if b in rs})
            for b in self.brokers}
        # The cluster was up before the first action: every broker registered, caught up
        # with the metadata log and serving.  Every later decision reaches brokers only by
        # their fetching the metadata log.
        for broker in self.broker_actors.values():
            registration = self.controller.image.brokers[broker.name]
            broker.bootstrap(list(self.controller.log), registration.broker_epoch,
                             self.controller.allocate_producer_ids(broker.name))
        for broker in self.broker_actors.values():
            broker.take_roles()
        self.producers = {name: Producer(name, self.ctx, self.controller.leader_of,
                                         self.brokers, self.transactional_ids.get(name))
                          for name in self.producer_names}
        # The producers were up before the first action too: an idempotent one has its
        # producer id already (a restarted one asks for a new id first); a
        # transactional one has finished initTransactions.
        for producer in self.producers.values():
            if producer.idempotence is not None and producer.txn is None:
                producer.idempotence.set_producer_id(
                    self.broker_actors[self.brokers[0]].allocate_producer_id(), 0)
        # A consume-transform-produce process's own transactional producer.
        self.output_producers = {
            node: Producer(node, self.ctx, self.controller.leader_of, self.brokers,
                           transform_transactional_id(consumer),
                           partitions=output_partitions(config.topic.partitions),
                           records_ops=False)
            for node, consumer in self.process_of.items()}
        outputs = {c: node for node, c in self.process_of.items()}
        self.consumers = {name: Consumer(name, self.ctx, self.controller.leader_of,
                                         self.brokers,
                                         self.output_producers.get(outputs.get(name, "")))
                          for name in self.consumer_names}
        self.actors: dict[str, Any] = {**self.broker_actors, CONTROLLER: self.controller,
                                       **self.producers, **self.consumers,
                                       **self.output_producers}
        self.step = 0
        self.finished = False
        self.settled_at_finish = False
        self.paused: set[str] = set()
        self._initialize_transactions()

    def _transactional_ids(self) -> dict[str, str]:
        """Each producer's ``transactional.id``: the configured one with a producer
        (or with ``kafkacheck.transactional.id.shared``), else ``<id>-<n>`` for pn."""
        base = self.config.producer.transactional_id
        if base is None:
            return {}
        if len(self.producer_names) == 1 or self.config.producer.transactional_id_shared:
            return {name: base for name in self.producer_names}
        return {name: f"{base}-{i}" for i, name in enumerate(self.producer_names)}

    def _initialize_transactions(self) -> None:
        """``initTransactions`` of every transactional producer before the first action:
        the network runs until each has its producer id (or gives up)."""
        network = self.ctx.network
        for producer in self.every_producer:
            if producer.txn is None:
                continue
            for _ in range(200):
                producer.drain()
                if producer.txn.ready:
                    break
                for src, dst in network.ready_links():
                    for _ in range(len(network.queues[(src, dst)])):
                        if network.deliverable(src, dst):
                            self._deliver(src, dst)
            else:
                raise RuntimeError(f"{producer.name} could not initialize its transactions")

    def _topics(self) -> tuple[dict[PartitionId, tuple[str, ...]], dict[PartitionId, TopicSettings]]:
        """The user topic's partitions and the group's ``__consumer_offsets`` partition,
        with the topic configs each obeys.  ``__consumer_offsets`` uses the broker
        defaults (``min.insync.replicas=1``, no unclean election): the settings of that
        name that kafkacheck takes are the user topic's."""
        config = self.config
        assignment: dict[PartitionId, tuple[str, ...]] = {}
        settings: dict[PartitionId, TopicSettings] = {}
        user = TopicSettings(config.topic.min_insync_replicas,
                             config.topic.unclean_leader_election_enable)
        for p in range(config.topic.partitions):
            assignment[p] = _placement(p, self.brokers, config.topic.replication_factor)
            settings[p] = user
        offsets = coordinator_partition(config.consumer.group_id,
                                        config.broker.offsets_topic_num_partitions)
        index = int(offsets.rsplit("-", 1)[1])
        assignment[offsets] = _placement(index, self.brokers,
                                         config.broker.offsets_topic_replication_factor)
        settings[offsets] = TopicSettings(1, False)
        for index, p in enumerate(output_partitions(config.topic.partitions)
                                  if self.process_of else ()):
            assignment[p] = _placement(index, self.brokers, config.topic.replication_factor)
            settings[p] = user
        broker = config.broker
        transform_ids = [transform_transactional_id(c) for c in self.process_of.values()]
        for transactional_id in sorted(set(self.transactional_ids.values()) | set(transform_ids)):
            state = transaction_partition(transactional_id,
                                          broker.transaction_state_log_num_partitions)
            index = int(state.rsplit("-", 1)[1])
            assignment[state] = _placement(index, self.brokers,
                                           broker.transaction_state_log_replication_factor)
            settings[state] = TopicSettings(broker.transaction_state_log_min_isr, False)
        return assignment, settings

    # -- views -------------------------------------------------------------------------

    @property
    def history(self) -> list[Event]:
        return self.ctx.history.events

    @property
    def now(self) -> int:
        return self.ctx.now

    @property
    def every_producer(self) -> list[Producer]:
        """The workload's producers and every transform's output producer."""
        return [*self.producers.values(), *self.output_producers.values()]

    def alive(self, node: str) -> bool:
        actor = self.actors[node]
        return getattr(actor, "alive", True)

    def partitioned(self) -> bool:
        return bool(self.ctx.network.cuts)

    # -- the driver's menu -------------------------------------------------------------

    def enabled_actions(self) -> list[Any]:
        network = self.ctx.network
        acts: list[Any] = [a.Deliver(s, d) for s, d in network.ready_links()
                           if not self.is_paused(d)]
        acts.extend(a.DeliverLate(s, d) for s, d in network.late_links())
        acts.extend(a.Tick(ms) for ms in TICK_CHOICES)
        for b in self.brokers:
            acts.append(a.Crash(b) if self.alive(b) else a.Restart(b))
        if self.partitioned():
            acts.append(a.Heal())
        else:
            acts.extend(a.Partition((n,)) for n in self.brokers + [CONTROLLER])
            # A broker cut off from the controller and the other brokers, still reachable
            # by every client: the way a deposed leader keeps serving (a zombie).
            acts.extend(a.Partition((b, *self.client_nodes)) for b in self.brokers)
        for name in self.clients:
            if name in self.paused:
                acts.append(a.Resume(name))
            elif self.alive(name):
                acts.append(a.Pause(name))
        for name in self.producer_names:
            producer = self.producers[name]
            if name in self.paused:
                acts.append(a.ClientCrash(name))
            elif producer.alive:
                if producer.can_send():
                    acts.extend(a.Send(name, k) for k in self.keys)
                    if producer.can_resend():
                        acts.append(a.Resend(name))
                if producer.txn is not None:
                    if producer.txn.can_commit():
                        acts.append(a.CommitTransaction(name))
                    if producer.txn.can_abort():
                        acts.append(a.AbortTransaction(name))
                    if producer.txn.state == "FATAL_ERROR":
                        acts.append(a.ClientRestart(name))
                acts.append(a.ClientCrash(name))
            else:
                acts.append(a.ClientRestart(name))
        for name, consumer in self.consumers.items():
            if not consumer.alive:
                acts.append(a.ClientRestart(name))
                continue
            if name in self.paused:
                acts.append(a.ClientCrash(name))
                continue
            if consumer.can_poll():
                acts.append(a.Poll(name))
            if consumer.can_process():
                acts.append(a.Process(name))
            if consumer.can_commit():
                acts.append(a.Commit(name))
            if consumer.can_close():
                acts.append(a.Close(name))
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
            return (not self.is_paused(action.dst)
                    and self.ctx.network.deliverable(action.src, action.dst))
        if kind == "pause":
            return (action.client in self.clients and self.alive(action.client)
                    and action.client not in self.paused)
        if kind == "resume":
            return action.client in self.paused
        if kind == "client-crash":
            return action.client in self.clients and self.alive(action.client)
        if getattr(action, "client", None) in self.paused:
            return False
        if kind == "deliver-late":
            return (not self.is_paused(action.dst)
                    and self.ctx.network.late_deliverable(action.src, action.dst))
        if kind == "tick":
            return action.ms > 0
        if kind == "finish":
            return True
        if kind == "crash":
            return (action.node in self.broker_actors and self.alive(action.node)
                    and action.mode == "process")
        if kind == "restart":
            return action.node in self.broker_actors and not self.alive(action.node)
        if kind == "partition":
            side = set(action.side)
            against = set(self.nodes) - side if action.against is None else set(action.against)
            return (not self.partitioned() and bool(side) and side < set(self.nodes)
                    and len(side) == len(action.side) and bool(against)
                    and against <= set(self.nodes) - side
                    and (action.against is None or len(against) == len(action.against)))
        if kind == "heal":
            return self.partitioned()
        if kind == "send":
            producer = self.producers.get(action.client)
            if producer is None or not producer.can_send():
                return False
            if action.partition is not None:
                return action.partition < self.config.topic.partitions
            return action.key in self.keys
        if kind == "resend":
            producer = self.producers.get(action.client)
            return producer is not None and producer.can_send() and producer.can_resend()
        if kind in ("commit-transaction", "abort-transaction"):
            producer = self.producers.get(action.client)
            if producer is None or not producer.alive or producer.txn is None:
                return False
            return (producer.txn.can_commit() if kind == "commit-transaction"
                    else producer.txn.can_abort())
        if kind == "client-crash":
            return action.client in self.clients and self.alive(action.client)
        if kind == "client-restart":
            return action.client in self.clients and (
                not self.alive(action.client) or self._fenced(action.client))
        consumer = self.consumers.get(action.client)
        if consumer is None:
            return False
        return {"poll": consumer.can_poll, "process": consumer.can_process,
                "commit": consumer.can_commit, "close": consumer.can_close}[kind]()

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
        self._deliver(act.src, act.dst)

    def _do_deliver_late(self, act: a.DeliverLate) -> None:
        self._deliver(act.src, act.dst, late=True)

    def _deliver(self, src: str, dst: str, late: bool = False) -> None:
        network = self.ctx.network
        generation, message = (network.pop_late(src, dst) if late
                               else network.pop(src, dst))
        if not self.alive(dst):
            return
        actor = self.actors[dst]
        if isinstance(message, m.ConnectionClosed):
            actor.on_disconnect(src)
        else:
            actor.receive(src, generation, message)

    def _do_tick(self, act: a.Tick) -> None:
        self._record_network_delay(act.ms)
        self.ctx.history.time += act.ms
        for (src, dst), lost in self.ctx.network.advance(self.ctx.now):
            # The sender's kernel gave up retransmitting a closed connection's bytes.
            self.ctx.event(src, "orphan-reset", peer=dst, lost=lost)
        self._exchange_heartbeats()
        self._exchange_group_heartbeats()
        for broker in self.broker_actors.values():
            if broker.alive:
                broker.on_tick()
        for client in [*self.producers.values(), *self.consumers.values(),
                       *self.output_producers.values()]:
            if client.alive and not self.is_paused(client.name):
                client.on_tick()

    def _record_network_delay(self, ms: int) -> None:
        """Name the network delay a tick stands for, if it stands for one.

        The model's network is asynchronous: a message may wait on its link for as long
        as the schedule lets time pass, as on a congested or lossy path where TCP backs
        off.  Real Kafka meets such delays, but a counterexample must say when it needs
        one, so a tick that passes over a message its link could deliver (no cut
        between the ends, the receiver up and not paused, its connection not muted by a
        request in purgatory) records ``network-delay``: each such link, the messages
        waiting on it, when the oldest was sent and what it is.  Late requests
        (``deliver-late``), cuts, crashes and pauses are faults of their own and are not
        counted here."""
        network = self.ctx.network
        held = [[src, dst, len(network.queues[(src, dst)]), network.sent_at[(src, dst)][0],
                 type(network.queues[(src, dst)][0][1]).__name__]
                for src, dst in network.ready_links()
                if network.connected(src, dst) and self.alive(dst)
                and not self.is_paused(dst)]
        if held:
            self.ctx.event(NETWORK, "network-delay", ms=ms, links=held)

    def _exchange_heartbeats(self) -> None:
        """Brokers and the controller talk during the tick when they can reach each
        other.  Order, as the controller sees the interval: heartbeats of registered
        incarnations; then sessions that ran out (``maybeFenceStaleBroker``), so that a
        restarted broker's old session is fenced before its new incarnation registers;
        then registrations."""
        reachable = [b for b in self.brokers if self.alive(b)
                     and self.ctx.network.connected(b, CONTROLLER)]
        for name in reachable:
            broker = self.broker_actors[name]
            if broker.broker_epoch is not None:
                self._heartbeat(broker)
                if broker.needs_producer_ids:
                    broker.producer_ids = self.controller.allocate_producer_ids(name)
        self.controller.expire_sessions()
        for name in reachable:
            broker = self.broker_actors[name]
            if broker.broker_epoch is None:
                request = broker.heartbeat_request()
                assert isinstance(request, m.BrokerRegistrationRequest)
                broker.on_registration_response(self.controller.register(request))
                if broker.broker_epoch is not None:
                    self._heartbeat(broker)

    def _exchange_group_heartbeats(self) -> None:
        """Group members and their coordinator talk during the tick when they can reach
        each other: a heartbeat thread beats every ``heartbeat.interval.ms`` (3 s),
        shorter than most ticks, so what matters is whether the two could talk during
        the interval, as for brokers and the controller.  This comes before the
        coordinator's own tick, which expires the sessions it did not hear from.  A
        paused (or dead) client beats nothing; one cut off from its coordinator marks it
        unknown, as a failed Heartbeat does.

        The heartbeat shares the coordinator connection with the member's commits, joins
        and syncs, and a connection is a queue (TCP; ``SocketServer`` reads one request of
        it at a time): while a request of that connection is held in the network through
        the interval, the heartbeat behind it reaches nobody; while an answer is held on
        the way back, the coordinator hears the heartbeat but its answer waits too."""
        network = self.ctx.network
        shared = m.CLASSIC_COORDINATOR_CONNECTION
        for name, consumer in self.consumers.items():
            membership = consumer.membership
            if (not isinstance(membership, GroupMembership) or not consumer.alive
                    or name in self.paused
                    or not membership.heartbeat_due()):
                continue
            target = consumer.coordinator.coordinator
            broker = self.broker_actors.get(target) if target is not None else None
            if broker is None or not broker.alive or not network.accepts(name, target):
                consumer.coordinator.mark_unknown()
                continue
            if network.holds(name, target, shared):
                continue
            error = broker.coordinator.heartbeat(membership.group, membership.member_id,
                                                 membership.generation,
                                                 membership.instance_id)
            if not network.holds(target, name, shared):
                membership.on_heartbeat(error)

    def _heartbeat(self, broker: Broker) -> None:
        # A broker that just became ready to be unfenced heartbeats again at once.
        for _ in range(2):
            request = broker.heartbeat_request()
            assert isinstance(request, m.BrokerHeartbeatRequest)
            if not broker.on_heartbeat_response(self.controller.heartbeat(request)):
                break

    def _disconnect(self, pairs: Iterable[tuple[str, str]]) -> None:
        for x, y in pairs:
            for here, peer in ((x, y), (y, x)):
                if self.alive(here):
                    self.actors[here].on_disconnect(peer)

    def is_paused(self, node: str) -> bool:
        """Whether ``node``'s process is paused (a GC pause stops all its threads)."""
        return self.process_of.get(node, node) in self.paused

    def _process_nodes(self, client: str) -> list[str]:
        """The client's own node and those of the rest of its process."""
        return [client, *(n for n, c in sorted(self.process_of.items()) if c == client)]

    def _kill(self, node: str) -> None:
        for member in self._process_nodes(node):
            for peer in self.ctx.network.kill(member, self.nodes):
                if self.alive(peer):
                    self.actors[peer].on_disconnect(member)

    def _do_crash(self, act: a.Crash) -> None:
        self.broker_actors[act.node].crash()
        self._kill(act.node)
        self.ctx.event(act.node, "crash", mode=act.mode)

    def _flush_old_connections(self, node: str) -> None:
        """What a killed process sent before dying has left its machine long before a new
        process starts: it is delivered (in link order) as the restart begins, up to a
        request its broker has not read yet (its connection muted behind one being
        handled), which travels on late, apart from the new process's connections."""
        network = self.ctx.network
        for src, dst in sorted(network.queues):
            if src == node:
                while network.deliverable(src, dst):
                    self._deliver(src, dst)
                network.orphan(src, dst)

    def _do_restart(self, act: a.Restart) -> None:
        self._flush_old_connections(act.node)
        self.ctx.network.set_up(act.node)
        self.broker_actors[act.node].restart()
        self.ctx.event(act.node, "restart")

    def _do_partition(self, act: a.Partition) -> None:
        against = self.nodes if act.against is None else list(act.against)
        pairs = self.ctx.network.cut(set(act.side), against)
        if act.against is None:
            self.ctx.event(NETWORK, "partition", side=list(act.side))
        else:
            self.ctx.event(NETWORK, "partition", side=list(act.side), against=list(act.against))
        self._disconnect(pairs)

    def _do_heal(self, act: a.Heal) -> None:
        self.ctx.network.heal()
        self.ctx.event(NETWORK, "heal")

    def _do_send(self, act: a.Send) -> None:
        self.producers[act.client].send(act.key, act.partition)

    def _do_resend(self, act: a.Resend) -> None:
        self.producers[act.client].resend()

    def _do_poll(self, act: a.Poll) -> None:
        self.consumers[act.client].poll()

    def _do_process(self, act: a.Process) -> None:
        self.consumers[act.client].process()

    def _do_commit(self, act: a.Commit) -> None:
        self.consumers[act.client].commit()

    def _do_close(self, act: a.Close) -> None:
        self.consumers[act.client].close()
        self._kill(act.client)

    def _fenced(self, client: str) -> bool:
        producer = self.producers.get(client)
        return (producer is not None and producer.txn is not None
                and producer.txn.state == "FATAL_ERROR")

    def _do_commit_transaction(self, act: a.CommitTransaction) -> None:
        self.producers[act.client].commit_transaction()

    def _do_abort_transaction(self, act: a.AbortTransaction) -> None:
        self.producers[act.client].abort_transaction()

    def _do_pause(self, act: a.Pause) -> None:
        self.paused.add(act.client)
        self.ctx.event(act.client, "pause")

    def _do_resume(self, act: a.Resume) -> None:
        self.paused.discard(act.client)
        self.ctx.event(act.client, "resume")

    def _do_client_crash(self, act: a.ClientCrash) -> None:
        self.paused.discard(act.client)
        self.actors[act.client].crash()
        self._kill(act.client)

    def _do_client_restart(self, act: a.ClientRestart) -> None:
        if self.alive(act.client):
            # A fenced producer: the application closes it and creates a new one.
            self.actors[act.client].crash()
            self._kill(act.client)
        for node in self._process_nodes(act.client):
            self._flush_old_connections(node)
            self.ctx.network.set_up(node)
        self.actors[act.client].restart()

    def _do_finish(self, act: a.Finish) -> None:
        """Record each partition's final committed log: what a fair judge compares to."""
        reason = self.unsettled_reason()
        if reason is None:
            self.settled_at_finish = True
            self.ctx.event(NETWORK, "finish", quiescent=True)
        else:
            self.ctx.event(NETWORK, "finish", quiescent=False, reason=reason)
        for p, state in self.controller.partitions.items():
            if p in self.output_partitions:
                self._record_output_log(p, state)
            if not is_user_partition(p):
                continue
            source = state.leader
            if source is None:
                source = max(state.replicas, key=lambda b: self.broker_actors[b].logs[p].hw)
            log = self.broker_actors[source].logs[p]
            if not self.transactional_ids:
                records = [[r.offset, r.value, r.key, r.producer, r.epoch]
                           for r in log.records[:log.hw]]
                self.ctx.event(source, "final-log", partition=p, leader=state.leader,
                               hw=log.hw, records=records)
                continue
            self.ctx.event(source, "final-log", partition=p, leader=state.leader, hw=log.hw,
                           lso=log.last_stable_offset(),
                           records=transactional_final_log(log.records[:log.hw]))
        self.finished = True

    def _record_output_log(self, p: PartitionId, state: Any) -> None:
        """A transform's output partition as its downstream reader finds it: the data
        records below the HW, each with its transaction's outcome."""
        source = state.leader
        if source is None:
            source = max(state.replicas, key=lambda b: self.broker_actors[b].logs[p].hw)
        log = self.broker_actors[source].logs[p]
        self.ctx.event(source, "output-log", partition=p, leader=state.leader, hw=log.hw,
                       lso=log.last_stable_offset(),
                       reader=self.config.consumer.output_isolation_level,
                       records=transactional_final_log(log.records[:log.hw]))

    # -- settling ----------------------------------------------------------------------

    def quiescent(self) -> bool:
        """Healthy, every send resolved, every committed record consumed and committed."""
        return self.unsettled_reason() is None

    def unsettled_reason(self) -> str | None:
        """Why the cluster is not quiescent yet (None when it is): the first unmet
        condition, for the ``unsettled`` anomaly's reader."""
        if self.partitioned():
            return "the network is partitioned"
        if self.paused:
            return f"paused: {', '.join(sorted(self.paused))}"
        down = [n for n in self.brokers + self.clients if not self.alive(n)]
        if down:
            return f"down: {', '.join(down)}"
        log_end = len(self.controller.log)
        for broker in self.broker_actors.values():
            if (self.controller.is_fenced(broker.name) or not broker.serving
                    or broker.metadata.offset != log_end):
                return f"{broker.name} is fenced, not serving or behind the metadata log"
        if not self._only_background_traffic():
            return "requests are still in flight"
        busy = [p.name for p in self.every_producer
                if not p.idle()]
        if busy:
            return f"producer {busy[0]} has sends or requests outstanding"
        reason = self._transactions_unsettled()
        if reason is not None:
            return reason
        hws = self._consumer_targets()
        if isinstance(hws, str):
            return hws
        behind = [c.name for c in self.consumers.values() if not c.caught_up(hws)]
        if behind:
            return f"consumer {behind[0]} has not consumed and committed everything"
        if self.config.consumer.subscription == "subscribe":
            owned = sorted(p for c in self.consumers.values() for p in c.partitions)
            if owned != list(range(self.config.topic.partitions)):
                return "the group's members do not own every partition exactly once"
        return None

    def consumers_behind(self) -> list[str]:
        """The consumers that have not caught up (all of them while a partition is not
        settled): a caught-up group member need not poll, and the settle phase leaves
        it alone so that its auto-commits stop and the cluster can go quiet."""
        hws = self._consumer_targets(user_only=True)
        if isinstance(hws, str):
            return list(self.consumers)
        return [c.name for c in self.consumers.values() if not c.caught_up(hws)]

    def _consumer_targets(self, user_only: bool = False) -> dict[PartitionId, int] | str:
        """What consumers must reach: each user partition's HW (LSO for read_committed);
        or why the partitions (with ``user_only``, the user topic's) are not settled."""
        hws: dict[PartitionId, int] = {}
        for p, state in self.controller.partitions.items():
            if user_only and not is_user_partition(p):
                continue
            if state.leader is None or set(state.isr) != set(state.replicas):
                return f"partition {p} has no leader or a shrunk ISR"
            leader = self.broker_actors[state.leader].partitions.get(p)
            if leader is None or not leader.is_leader or leader.leader_epoch != state.leader_epoch:
                return f"partition {p}'s leader has not taken its role"
            if leader.log.hw != leader.log.leo or any(
                    self.broker_actors[r].logs[p].leo != leader.log.leo for r in state.replicas):
                return f"partition {p} is not fully replicated"
            if is_user_partition(p):
                hws[p] = (leader.log.last_stable_offset()
                          if self.config.consumer.isolation_level == "read_committed"
                          else leader.log.hw)
        return hws

    def _transactions_unsettled(self) -> str | None:
        """Every transactional producer is ready for its next transaction, and no
        coordinator has a transaction open, being written, or markers to send."""
        for producer in self.every_producer:
            if producer.txn is not None and producer.txn.state != "READY":
                return f"producer {producer.name} is {producer.txn.state}"
        for broker in self.broker_actors.values():
            for _, entries in broker.transactions.loaded.values():
                for tid, entry in sorted(entries.items()):
                    if entry.pending or entry.markers or entry.metadata.state in (
                            "Ongoing", "PrepareCommit", "PrepareAbort"):
                        return (f"transaction of {tid} is {entry.metadata.state} at its "
                                f"coordinator {broker.name}")
        return None

    def _only_background_traffic(self) -> bool:
        network = self.ctx.network
        for queue in [*network.queues.values(), *network.late.values()]:
            for _, message in queue:
                if not isinstance(message, _BACKGROUND):
                    return False
        return True

    # -- state views for the model-state invariants ------------------------------------

    def view(self) -> ClusterView:
        partitions = []
        actors = self.broker_actors
        for p, state in self.controller.partitions.items():
            replicas = {}
            for b in state.replicas:
                broker = actors[b]
                partition = broker.partitions.get(p)
                known = broker.metadata.partitions.get(p)
                log = broker.logs[p]
                if partition is None:
                    role = (False, -1, (), ())
                else:
                    leads = partition.leader == b
                    role = (leads, partition.leader_epoch,
                            partition.maximal_isr() if leads else (),
                            partition.isr if leads else ())
                replicas[b] = ReplicaView(
                    b, broker.alive, role[0], role[1], log.hw, log.records, role[2],
                    known.leader if known is not None else None,
                    known.leader_epoch if known is not None else -1, role[3])
            partitions.append(PartitionView(p, state.leader, state.leader_epoch, state.isr,
                                            replicas))
        image = self.controller.image
        brokers = [BrokerView(b.name, b.alive, b.incarnation, b.metadata.offset,
                              bool(b.partitions)) for b in actors.values()]
        unanswered = (tuple(sorted(self.ctx.network.muted)) if self.settled_at_finish
                      else ())
        return ClusterView(partitions, self.controller.log,
                           {b: image.is_active(b) for b in self.brokers}, brokers,
                           unanswered)
