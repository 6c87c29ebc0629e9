"""The controller: the one reliable metadata store, and its decisions sent as messages.

Modelled on KRaft's controller: brokers heartbeat (implicitly, on every ``Tick`` while
alive and connected); a broker not heard from for ``broker.session.timeout.ms`` is fenced,
removed from every ISR it is in (except where it is the last member: before KIP-966 the
ISR never becomes empty) and replaced as leader by the first live ISR member.  With
``unclean.leader.election.enable`` an out-of-sync replica may be elected when no ISR member
is alive.  A restarted broker re-registers, is fenced for its old incarnation and then
unfenced.  Every change bumps the partition epoch; every leader change bumps the leader
epoch.  Brokers hear of decisions only through ``LeaderAndIsr`` messages, so a deposed
leader keeps acting as leader until one reaches it.

Propagation is late but reliable, as in KRaft where brokers pull the metadata log: a
decision lost with a dropped connection is sent again on the next ``Tick`` at which the
broker is reachable and still behind.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from model import messages as m
from model.context import CONTROLLER, Context


@attrs.define(slots=True)
class PartitionMetadata:
    replicas: tuple[str, ...]
    leader: str | None
    isr: tuple[str, ...]
    leader_epoch: int = 0
    partition_epoch: int = 0

    def message(self, partition: int) -> m.LeaderAndIsr:
        return m.LeaderAndIsr(partition, self.leader, self.leader_epoch,
                              self.partition_epoch, self.isr, self.replicas)


class Controller:
    name = CONTROLLER

    def __init__(self, ctx: Context, brokers: list[str], assignment: dict[int, tuple[str, ...]]):
        self.ctx = ctx
        self.brokers = brokers
        self.partitions = {
            p: PartitionMetadata(replicas, replicas[0], replicas)
            for p, replicas in assignment.items()
        }
        self.fenced: set[str] = set()
        self.last_heartbeat = {b: 0 for b in brokers}
        self.reregistering: set[str] = set()
        # (broker, partition) -> partition epoch of the last LeaderAndIsr on the wire.
        self.in_flight: dict[tuple[str, int], int] = {}

    # -- queries used by clients' metadata refresh -------------------------------------

    def leader_of(self, partition: int) -> tuple[str | None, int]:
        meta = self.partitions[partition]
        return meta.leader, meta.leader_epoch

    def coordinator(self) -> str | None:
        """The group coordinator: here the first unfenced broker (offsets kept reliably)."""
        for broker in self.brokers:
            if broker not in self.fenced and broker not in self.reregistering:
                return broker
        return None

    # -- messages ----------------------------------------------------------------------

    def receive(self, src: str, generation: int, message: Any) -> None:
        if not isinstance(message, m.AlterPartition):
            raise TypeError(f"controller cannot handle {type(message).__name__}")
        meta = self.partitions[message.partition]
        if (message.leader == meta.leader and message.leader_epoch == meta.leader_epoch
                and set(message.new_isr) == set(meta.isr)):
            # A retried request whose change is already in effect succeeds (the answer
            # to the first attempt was lost): the leader gets the current state.
            self._send_state(src, message.partition)
            return
        error = None
        if (message.leader != meta.leader or message.leader_epoch != meta.leader_epoch
                or message.partition_epoch != meta.partition_epoch):
            error = m.INVALID_UPDATE_VERSION
        elif not all(r in meta.isr or self._live(r) for r in message.new_isr):
            error = m.INELIGIBLE_REPLICA     # KRaft never adds a fenced broker to the ISR
        if error is not None:
            self.ctx.send(self.name, src, m.AlterPartitionResponse(
                message.corr, message.partition, error, meta.partition_epoch))
            if error == m.INVALID_UPDATE_VERSION:
                self._send_state(src, message.partition)   # the leader learns the truth
            return
        self._change(message.partition, isr=message.new_isr)

    def _change(self, partition: int, *, leader: Any = ..., isr: tuple[str, ...] | None = None,
                unclean: bool = False) -> None:
        meta = self.partitions[partition]
        if (leader is ... or leader == meta.leader) and (isr is None or isr == meta.isr):
            return
        if leader is not ... and leader != meta.leader:
            meta.leader = leader
            meta.leader_epoch += 1
            self.ctx.event(self.name, "election", partition=partition, leader=leader,
                           epoch=meta.leader_epoch, unclean=unclean)
        if isr is not None and isr != meta.isr:
            meta.isr = isr
            self.ctx.event(self.name, "isr", partition=partition, isr=list(isr))
        meta.partition_epoch += 1
        for replica in meta.replicas:
            self._send_state(replica, partition)

    def _send_state(self, broker: str, partition: int) -> None:
        meta = self.partitions[partition]
        if self.ctx.send(self.name, broker, meta.message(partition)):
            self.in_flight[(broker, partition)] = meta.partition_epoch

    def on_disconnect(self, peer: str) -> None:
        self.in_flight = {k: v for k, v in self.in_flight.items() if k[0] != peer}

    def _catch_up(self, broker: str, known: dict[int, tuple[int, int]]) -> None:
        """Re-send the current state of every partition this broker is behind on."""
        for partition, meta in self.partitions.items():
            if broker not in meta.replicas:
                continue
            if known.get(partition) == (meta.leader_epoch, meta.partition_epoch):
                continue
            if self.in_flight.get((broker, partition)) != meta.partition_epoch:
                self._send_state(broker, partition)

    # -- fencing and elections ---------------------------------------------------------

    def _live(self, broker: str) -> bool:
        return broker not in self.fenced and broker not in self.reregistering

    def fence(self, broker: str) -> None:
        self.fenced.add(broker)
        self.ctx.event(self.name, "fence", broker=broker)
        for partition, meta in self.partitions.items():
            if broker not in meta.replicas:
                continue
            isr = tuple(r for r in meta.isr if r != broker) or meta.isr
            if meta.leader == broker or meta.leader is None:
                leader, isr, unclean = self._elect(meta, isr)
                self._change(partition, leader=leader, isr=isr, unclean=unclean)
            elif isr != meta.isr:
                self._change(partition, isr=isr)

    def _elect(self, meta: PartitionMetadata, isr: tuple[str, ...]
               ) -> tuple[str | None, tuple[str, ...], bool]:
        for replica in meta.replicas:
            if replica in isr and self._live(replica):
                return replica, isr, False
        if self.ctx.config.topic.unclean_leader_election_enable:
            for replica in meta.replicas:
                if self._live(replica):
                    return replica, (replica,), True
        return None, isr, False

    def unfence(self, broker: str) -> None:
        self.fenced.discard(broker)
        self.reregistering.discard(broker)
        self.ctx.event(self.name, "unfence", broker=broker)
        for partition, meta in self.partitions.items():
            if broker not in meta.replicas:
                continue
            if meta.leader is None:
                leader, isr, unclean = self._elect(meta, meta.isr)
                if leader is not None:
                    self._change(partition, leader=leader, isr=isr, unclean=unclean)
                    continue
            # Metadata catch-up for the returning broker.
            self._send_state(broker, partition)

    def broker_restarted(self, broker: str) -> None:
        self.reregistering.add(broker)

    def on_tick(self, alive: dict[str, bool],
                known: Callable[[str], dict[int, tuple[int, int]]]) -> None:
        now = self.ctx.now
        timeout = self.ctx.config.broker.broker_session_timeout_ms
        net = self.ctx.network
        for broker in self.brokers:
            heard = alive[broker] and net.connected(broker, self.name)
            if heard:
                self.last_heartbeat[broker] = now
                if broker in self.reregistering:
                    if broker not in self.fenced:
                        self.fence(broker)  # the old incarnation
                    self.unfence(broker)
                elif broker in self.fenced:
                    self.unfence(broker)
                self._catch_up(broker, known(broker))
            elif broker not in self.fenced and now - self.last_heartbeat[broker] >= timeout:
                self.fence(broker)
