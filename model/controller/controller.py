"""The KRaft controller: the metadata log, and the decisions that append to it.

Modelled on ``QuorumController`` (the quorum itself is one reliable node here): every
decision is a record appended to the metadata log, and brokers learn decisions only by
fetching that log (``MetadataFetch``), in order.  A broker cut off from the controller
keeps acting on the last records it fetched (a zombie leader keeps serving until it
learns it was replaced), while a broker can never apply an older state of a partition
after a newer one, across restarts too.

Decisions:

* Sessions and registration (:mod:`model.controller.cluster_control`): a broker not heard
  from for ``broker.session.timeout.ms`` is fenced; a restarted broker's new incarnation
  is refused while the old one's session is valid, then registered fenced, and unfenced
  once it has replayed the log up to its own registration.
* Fencing removes the broker from every ISR it is in and elects new leaders; unfencing
  elects leaders for leaderless partitions; ``AlterPartition`` changes an ISR
  (:mod:`model.controller.replication_control`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from model import messages as m
from model.context import CONTROLLER, Context
from model.controller.cluster_control import ClusterControl
from model.controller.replication_control import (change_partition, elect_for_unfenced,
                                                  remove_from_isr)
from model.metadata import (BrokerFencingRecord, MetadataImage, MetadataRecord, PartitionId,
                            PartitionRecord, PartitionState, RegisterBrokerRecord)


#: ``ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE``.
PRODUCER_ID_BLOCK_SIZE = 1000


class Controller:
    name = CONTROLLER

    def __init__(self, ctx: Context, brokers: list[str],
                 assignment: dict[PartitionId, tuple[str, ...]],
                 unclean_allowed: Callable[[PartitionId], bool]) -> None:
        self.ctx = ctx
        self.brokers = brokers
        self.unclean_allowed = unclean_allowed
        self.log: list[MetadataRecord] = []
        self.image = MetadataImage()
        self.cluster = ClusterControl(self.image, ctx.config.broker.broker_session_timeout_ms)
        # Parked metadata fetches (a long poll): broker -> (corr, generation, offset).
        self.waiting: dict[str, tuple[int, int, int]] = {}
        # ProducerIdControlManager: the next producer id no broker has been given yet.
        self.next_producer_id = 0
        self._bootstrap(assignment)

    def _bootstrap(self, assignment: dict[PartitionId, tuple[str, ...]]) -> None:
        """The cluster as it stands when a run starts: every broker registered and
        unfenced, every partition created with its first replica leading."""
        for broker in self.brokers:
            epoch = len(self.log)
            self._append([RegisterBrokerRecord(broker, epoch, 0)], quiet=True)
            self.cluster.registered(broker, epoch, 0)
            self._append([BrokerFencingRecord(broker, epoch, fenced=False)], quiet=True)
        self._append([PartitionRecord(PartitionState(p, replicas, replicas, replicas[0]))
                      for p, replicas in assignment.items()], quiet=True)

    # -- queries -----------------------------------------------------------------------

    @property
    def partitions(self) -> dict[PartitionId, PartitionState]:
        return self.image.partitions

    def leader_of(self, partition: PartitionId) -> tuple[str | None, int]:
        state = self.image.partitions[partition]
        return state.leader, state.leader_epoch

    def is_fenced(self, broker: str) -> bool:
        return not self.image.is_active(broker)

    # -- the log -----------------------------------------------------------------------

    def _append(self, records: Iterable[MetadataRecord], quiet: bool = False) -> None:
        for record in records:
            before = (self.image.partitions.get(record.state.partition)
                      if isinstance(record, PartitionRecord) else None)
            self.log.append(record)
            self.image.apply(record)
            self.ctx.touch()
            if not quiet:
                self._record_event(record, before)
        self._answer_waiting()

    def _record_event(self, record: MetadataRecord, before: PartitionState | None) -> None:
        if isinstance(record, RegisterBrokerRecord):
            self.ctx.event(self.name, "register", broker=record.broker,
                           epoch=record.broker_epoch, incarnation=record.incarnation)
        elif isinstance(record, BrokerFencingRecord):
            self.ctx.event(self.name, "fence" if record.fenced else "unfence",
                           broker=record.broker)
        else:
            state = record.state
            if before is None or state.leader != before.leader:
                self.ctx.event(self.name, "election", partition=state.partition,
                               leader=state.leader, epoch=state.leader_epoch,
                               unclean=record.unclean)
            if before is None or state.isr != before.isr:
                self.ctx.event(self.name, "isr", partition=state.partition,
                               isr=list(state.isr))

    def _answer_waiting(self) -> None:
        parked, self.waiting = self.waiting, {}
        for broker, (corr, generation, offset) in sorted(parked.items()):
            self._respond_fetch(broker, corr, generation, offset)

    def _respond_fetch(self, broker: str, corr: int, generation: int, offset: int) -> None:
        response = m.MetadataFetchResponse(corr, offset, tuple(self.log[offset:]))
        self.ctx.send(self.name, broker, response, generation)

    # -- messages ----------------------------------------------------------------------

    def receive(self, src: str, generation: int, message: Any) -> None:
        if isinstance(message, m.MetadataFetch):
            if message.offset < len(self.log):
                self._respond_fetch(src, message.corr, generation, message.offset)
            else:
                self.waiting[src] = (message.corr, generation, message.offset)
        elif isinstance(message, m.AlterPartition):
            self._alter_partition(src, generation, message)
        elif isinstance(message, m.ConnectionClosed):
            self.on_disconnect(src)
        else:
            raise TypeError(f"controller cannot handle {type(message).__name__}")

    def _alter_partition(self, src: str, generation: int, request: m.AlterPartition) -> None:
        """``ReplicationControlManager.alterPartition``: validate, then change the ISR."""
        state = self.image.partitions[request.partition]
        error = None
        if request.leader_epoch > state.leader_epoch or request.partition_epoch > state.partition_epoch:
            error = m.NOT_CONTROLLER
        elif request.leader_epoch < state.leader_epoch:
            error = m.FENCED_LEADER_EPOCH
        elif request.leader != state.leader:
            error = m.INVALID_REQUEST
        elif request.partition_epoch < state.partition_epoch:
            error = m.INVALID_UPDATE_VERSION
        elif request.leader not in request.members or not set(request.members) <= set(state.replicas):
            error = m.INVALID_REQUEST
        elif any(not self.image.is_active(b) or (epoch != m.NO_BROKER_EPOCH
                                                 and self.image.broker_epoch(b) != epoch)
                 for b, epoch in request.new_isr):
            error = m.INELIGIBLE_REPLICA
        if error is None:
            record = change_partition(
                state, target_isr=tuple(r for r in state.replicas if r in request.members),
                acceptable=self.image.is_active,
                unclean_allowed=self.unclean_allowed(request.partition))
            if record is not None:
                self._append([record])
            state = self.image.partitions[request.partition]
        self.ctx.send(self.name, src, m.AlterPartitionResponse(
            request.corr, request.partition, error, None if error else state), generation)

    # -- fencing and elections ---------------------------------------------------------

    def _fence(self, broker: str) -> None:
        """``handleBrokerFenced``: out of every ISR, out of leadership, then fenced."""
        records: list[MetadataRecord] = []
        for partition, state in self.image.partitions.items():
            if broker in state.isr:
                record = remove_from_isr(state, broker, active=self.image.is_active,
                                         unclean_allowed=self.unclean_allowed(partition))
                if record is not None:
                    records.append(record)
        epoch = self.image.broker_epoch(broker)
        assert epoch is not None
        records.append(BrokerFencingRecord(broker, epoch, fenced=True))
        self._append(records)

    def _unfence(self, broker: str) -> None:
        """``handleBrokerUnfenced``: unfenced, then leaderless partitions elect."""
        epoch = self.image.broker_epoch(broker)
        assert epoch is not None
        records: list[MetadataRecord] = [BrokerFencingRecord(broker, epoch, fenced=False)]
        for partition, state in self.image.partitions.items():
            record = elect_for_unfenced(state, broker, active=self.image.is_active,
                                        unclean_allowed=self.unclean_allowed(partition))
            if record is not None:
                records.append(record)
        self._append(records)

    # -- sessions (called by the cluster on Tick) ----------------------------------------

    def expire_sessions(self) -> None:
        for broker in self.cluster.expired(self.ctx.now):
            self._fence(broker)

    def register(self, request: m.BrokerRegistrationRequest) -> m.BrokerRegistrationResponse:
        now = self.ctx.now
        error = self.cluster.check_registration(request, now)
        if error is not None:
            return m.BrokerRegistrationResponse(error)
        epoch = len(self.log)
        self._append([RegisterBrokerRecord(request.broker, epoch, request.incarnation)])
        self.cluster.registered(request.broker, epoch, now)
        return m.BrokerRegistrationResponse(None, epoch)

    def heartbeat(self, request: m.BrokerHeartbeatRequest) -> m.BrokerHeartbeatResponse:
        response, unfence = self.cluster.heartbeat(request, self.ctx.now)
        if unfence:
            self._unfence(request.broker)
        return response

    def allocate_producer_ids(self, broker: str) -> tuple[int, int]:
        """``AllocateProducerIds``: the next block of ``PRODUCER_ID_BLOCK_SIZE`` ids,
        never handed out again (``ProducerIdControlManager``; the block's end is a
        ``ProducerIdsRecord`` in the metadata log, so no id is reused after a failover)."""
        start = self.next_producer_id
        self.next_producer_id += PRODUCER_ID_BLOCK_SIZE
        return start, self.next_producer_id

    def on_disconnect(self, peer: str) -> None:
        self.waiting.pop(peer, None)
