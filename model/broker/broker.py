"""A broker process: its lifecycle with the controller, its replicas, its coordinator.

Lifecycle (``BrokerLifecycleManager`` and ``BrokerServer.startup``):

1. A started process is a new *incarnation*.  It keeps what a process kill does not
   lose: its partition logs and its copy of the metadata log (both on disk, in the page
   cache).  Everything else starts empty.
2. It registers with the controller (refused while the previous incarnation's session is
   still valid), receives its broker epoch, and fetches the metadata log.
3. Once the controller says it has caught up to its own registration record it publishes
   the metadata: only now does it take the roles the current metadata gives it (leader or
   follower of each partition it hosts).  It never acts on what it knew before its
   restart, and it never applies a partition state older than one it has applied.
4. It then asks to be unfenced, and opens its listeners to clients and other brokers
   only once the controller has unfenced it.

Replicas are :class:`model.broker.partition.Partition`; offsets are stored by
:class:`model.broker.group_coordinator.GroupCoordinator`.
"""

from __future__ import annotations

from typing import Any, Callable

from model import messages as m
from model.broker.group_coordinator import GroupCoordinator
from model.broker.log import ReplicaLog
from model.broker.partition import Partition, TopicSettings
from model.broker.producer_state import BatchHeader
from model.broker.transaction_coordinator import (BROKER_REQUEST_TIMEOUT_MS,
                                                  TransactionCoordinator)
from model.broker.txn_verification import TxnVerifier
from model.context import CONTROLLER, Context
from model.metadata import MetadataImage, PartitionId


class Broker:
    def __init__(self, name: str, ctx: Context, hosted: dict[PartitionId, TopicSettings]) -> None:
        self.name = name
        self.ctx = ctx
        self.config = ctx.config.broker
        self.settings = hosted
        self.alive = True
        self.incarnation = 0
        # What survives a process kill: the logs and the local copy of the metadata log.
        self.logs: dict[PartitionId, ReplicaLog] = {p: ReplicaLog() for p in hosted}
        self.metadata = MetadataImage()
        self._start()

    def _start(self) -> None:
        """The in-memory state of a fresh process."""
        self.broker_epoch: int | None = None
        self.published = False
        self.serving = False          # listeners open (after the controller unfenced us)
        self.ctx.network.listen(self.name, False)
        self.metadata_fetch: int | None = None
        self.partitions: dict[PartitionId, Partition] = {}
        # RPCProducerIdManager: the block of producer ids this process hands out (held in
        # memory: a restarted broker asks the controller for a new block).
        self.producer_ids: tuple[int, int] | None = None
        self.isr_checks_from = self.ctx.now
        self.last_isr_check = self.ctx.now
        # The coordinators' and the verifier's state is in memory only.
        self.coordinator = GroupCoordinator(self)
        self.transactions = TransactionCoordinator(self)
        self.txn_verifier = TxnVerifier(self)

    # -- lifecycle ---------------------------------------------------------------------

    def bootstrap(self, records: list[Any], broker_epoch: int,
                  producer_ids: tuple[int, int]) -> None:
        """Start the run already registered, caught up and serving, with a block of
        producer ids (the cluster was up before the first action); :meth:`take_roles`
        follows once every broker is."""
        for record in records:
            self.metadata.apply(record)
        self.broker_epoch = broker_epoch
        self.producer_ids = producer_ids
        self._set_serving()

    def take_roles(self) -> None:
        self._publish(set(self.logs))
        self._fetch_metadata()

    def crash(self) -> None:
        """Process kill: the logs and the metadata copy survive, nothing else does."""
        self.alive = False
        for partition in self.partitions.values():
            partition.shutdown()
        self._start()
        self.ctx.touch()

    def restart(self) -> None:
        """A new process: it loads each log, rebuilding its producer state
        (``LogLoader.load`` -> ``rebuildProducerState``)."""
        self.alive = True
        self.incarnation += 1
        for log in self.logs.values():
            log.recover_after_kill()
        self._start()
        self._fetch_metadata()
        self.ctx.touch()

    def heartbeat_request(self) -> m.BrokerRegistrationRequest | m.BrokerHeartbeatRequest:
        if self.broker_epoch is None:
            return m.BrokerRegistrationRequest(self.name, self.incarnation)
        return m.BrokerHeartbeatRequest(self.name, self.broker_epoch, self.metadata.offset,
                                        want_fence=not self.published)

    def on_registration_response(self, resp: m.BrokerRegistrationResponse) -> None:
        if resp.error is None:
            self.broker_epoch = resp.broker_epoch

    def on_heartbeat_response(self, resp: m.BrokerHeartbeatResponse) -> bool:
        """Handle the answer; True if the next heartbeat should go at once (the broker
        just became ready to be unfenced, ``setReadyToUnfence``)."""
        if resp.error is not None:
            return False
        if not resp.is_fenced and not self.serving:
            self._set_serving()
        if resp.is_caught_up and not self.published:
            self._publish(set(self.logs))
            return True
        return False

    def _set_serving(self) -> None:
        """``BrokerServer.startup`` opens the listeners once the broker is unfenced."""
        self.serving = True
        self.ctx.network.listen(self.name, True)

    # -- the metadata log --------------------------------------------------------------

    def _fetch_metadata(self) -> None:
        if self.metadata_fetch is not None:
            return
        corr = self.ctx.next_corr()
        if self.ctx.send(self.name, CONTROLLER, m.MetadataFetch(corr, self.metadata.offset)):
            self.metadata_fetch = corr

    def _on_metadata(self, resp: m.MetadataFetchResponse) -> None:
        if resp.corr != self.metadata_fetch:
            return
        self.metadata_fetch = None
        changed: set[PartitionId] = set()
        skip = self.metadata.offset - resp.offset
        if skip >= 0 and resp.records[skip:]:
            self.ctx.touch()
            for record in resp.records[skip:]:
                partition = self.metadata.apply(record)
                if partition is not None and partition in self.logs:
                    changed.add(partition)
        if self.published and changed:
            self._publish(changed)
        self._fetch_metadata()

    def _publish(self, changed: set[PartitionId]) -> None:
        """``BrokerMetadataPublisher`` -> ``ReplicaManager.applyDelta``: take the role the
        newest applied state gives each changed partition we host."""
        self.published = True
        for partition_id in sorted(changed, key=str):
            state = self.metadata.partitions.get(partition_id)
            if state is None:
                continue
            partition = self.partitions.get(partition_id)
            if partition is None:
                partition = self.partitions[partition_id] = Partition(
                    self, partition_id, self.logs[partition_id], self.settings[partition_id])
            partition.apply_state(state)

    # -- requests ----------------------------------------------------------------------

    def receive(self, src: str, generation: int, message: Any) -> None:
        if isinstance(message, m.ConnectionClosed):
            self.on_disconnect(src)
        elif isinstance(message, m.MetadataFetchResponse):
            self._on_metadata(message)
        elif isinstance(message, m.FetchRequest):
            partition = self.partitions.get(message.partition)
            if partition is not None:
                partition.fetch(src, generation, message)
            else:
                self.reply(src, generation, m.FetchResponse(
                    message.corr, message.partition, m.NOT_LEADER_OR_FOLLOWER,
                    fetch_offset=message.fetch_offset))
        elif isinstance(message, m.FetchResponse):
            partition = self.partitions.get(message.partition)
            if partition is not None:
                partition.on_fetch_response(message)
        elif isinstance(message, m.ProduceRequest):
            self._on_produce(src, generation, message)
        elif isinstance(message, m.AlterPartitionResponse):
            partition = self.partitions.get(message.partition)
            if partition is not None:
                partition.on_alter_partition_response(message)
        elif isinstance(message, m.ListOffsetsRequest):
            self._on_list_offsets(src, generation, message)
        elif isinstance(message, m.InitProducerIdRequest):
            if message.transactional_id is not None:
                self.transactions.init_producer_id(src, generation, message)
            else:
                self._on_init_producer_id(src, generation, message)
        elif isinstance(message, m.FindCoordinatorRequest):
            if message.key_type == "transaction":
                self.transactions.find_coordinator(src, generation, message)
            else:
                self.coordinator.find_coordinator(src, generation, message)
        elif isinstance(message, m.AddPartitionsToTxnRequest):
            self.transactions.add_partitions(src, generation, message)
        elif isinstance(message, m.AddPartitionsToTxnResponse):
            self.txn_verifier.on_response(message)
        elif isinstance(message, m.AddOffsetsToTxnRequest):
            self.transactions.add_offsets(src, generation, message)
        elif isinstance(message, m.TxnOffsetCommitRequest):
            self.coordinator.txn_commit(src, generation, message)
        elif isinstance(message, m.EndTxnRequest):
            self.transactions.end_txn(src, generation, message)
        elif isinstance(message, m.WriteTxnMarkersRequest):
            self.write_txn_marker(message, lambda resp: self.reply(src, generation, resp))
        elif isinstance(message, m.WriteTxnMarkersResponse):
            self.transactions.on_marker_response(message)
        elif isinstance(message, m.OffsetCommitRequest):
            self.coordinator.commit(src, generation, message)
        elif isinstance(message, m.OffsetFetchRequest):
            self.coordinator.fetch_offsets(src, generation, message)
        elif isinstance(message, m.JoinGroupRequest):
            self.coordinator.join(src, generation, message)
        elif isinstance(message, m.SyncGroupRequest):
            self.coordinator.sync(src, generation, message)
        elif isinstance(message, m.LeaveGroupRequest):
            self.coordinator.leave(src, generation, message)
        elif isinstance(message, m.ConsumerGroupHeartbeatRequest):
            self.coordinator.consumer_group_heartbeat(src, generation, message)
        else:
            raise TypeError(f"{self.name} cannot handle {type(message).__name__}")

    def _on_produce(self, src: str, generation: int, req: m.ProduceRequest) -> None:
        partition = self.partitions.get(req.partition)

        def complete(error: str | None, offset: int | None) -> None:
            if req.acks != "0":
                self.reply(src, generation, m.ProduceResponse(req.corr, req.partition, error,
                                                              offset))
            else:   # KafkaApis sends a no-op response: the channel is unmuted, no answer
                self.ctx.network.unmute(src, self.name, generation)

        if partition is None:
            complete(m.NOT_LEADER_OR_FOLLOWER, None)
            return
        partition.append_as_leader([(key, value, src) for key, value in req.records],
                                   req.acks, req.timeout_ms,
                                   complete, BatchHeader(req.producer_id, req.producer_epoch,
                                                         req.sequence, req.transactional_id))

    def write_txn_marker(self, req: m.WriteTxnMarkersRequest,
                         respond: Callable[[m.WriteTxnMarkersResponse], None]) -> None:
        """``KafkaApis.handleWriteTxnMarkersRequest`` for one partition."""
        partition = self.partitions.get(req.partition)

        def complete(error: str | None, offset: int | None) -> None:
            respond(m.WriteTxnMarkersResponse(req.corr, req.partition, error))

        if partition is None:
            complete(m.NOT_LEADER_OR_FOLLOWER, None)
            return
        partition.write_marker(req.producer_id, req.producer_epoch, req.commit,
                               req.coordinator_epoch, BROKER_REQUEST_TIMEOUT_MS, complete)

    def _on_init_producer_id(self, src: str, generation: int,
                             req: m.InitProducerIdRequest) -> None:
        """``TransactionCoordinator.handleInitProducerId`` without a transactional id: a
        fresh producer id at epoch 0 from this broker's block; with no block yet (a
        restarted broker, until its next exchange with the controller) the retriable
        COORDINATOR_LOAD_IN_PROGRESS (``RPCProducerIdManager.generateProducerId``)."""
        if self.producer_ids is None or self.producer_ids[0] >= self.producer_ids[1]:
            self.producer_ids = None
            self.reply(src, generation, m.InitProducerIdResponse(
                req.corr, m.COORDINATOR_LOAD_IN_PROGRESS))
            return
        self.reply(src, generation, m.InitProducerIdResponse(req.corr, None,
                                                             self.allocate_producer_id(), 0))

    def allocate_producer_id(self) -> int:
        """The next id of this broker's block (``ProducerIdsBlock.claimNextId``)."""
        assert self.producer_ids is not None and self.producer_ids[0] < self.producer_ids[1]
        producer_id, end = self.producer_ids
        self.producer_ids = (producer_id + 1, end)
        return producer_id

    @property
    def needs_producer_ids(self) -> bool:
        return self.producer_ids is None

    def _on_list_offsets(self, src: str, generation: int, req: m.ListOffsetsRequest) -> None:
        partition = self.partitions.get(req.partition)
        error = m.NOT_LEADER_OR_FOLLOWER if partition is None else partition.epoch_error(
            req.current_leader_epoch)
        offset = 0
        if error is None and req.reset == "latest":
            log = partition.log  # type: ignore[union-attr]
            offset = log.last_stable_offset() if req.read_committed else log.hw
        self.reply(src, generation, m.ListOffsetsResponse(req.corr, req.partition, error, offset))

    def reply(self, dst: str, generation: int, message: Any) -> None:
        self.ctx.send(self.name, dst, message, generation)

    # -- timers and connections --------------------------------------------------------

    def on_tick(self) -> None:
        self._fetch_metadata()
        if not self.published:
            return
        for partition in self.partitions.values():
            partition.on_tick()
        self.transactions.on_tick()
        self.coordinator.on_tick()
        # ReplicaManager schedules "isr-expiration" every replica.lag.time.max.ms / 2.
        period = max(1, self.config.replica_lag_time_max_ms // 2)
        due = self.isr_checks_from + (self.ctx.now - self.isr_checks_from) // period * period
        if due > self.last_isr_check:
            self.last_isr_check = due
            for partition in self.partitions.values():
                partition.maybe_shrink_isr(due)

    def on_disconnect(self, peer: str) -> None:
        if peer == CONTROLLER:
            self.metadata_fetch = None
        for partition in self.partitions.values():
            partition.on_disconnect(peer)
        self.transactions.on_disconnect(peer)
        self.txn_verifier.on_disconnect(peer)
