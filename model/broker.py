"""A broker's replica manager: leader and follower roles for each partition it hosts.

Followers pull (Fetch with ``lastFetchedEpoch`` and ``currentLeaderEpoch``); the leader
answers with records and its high watermark, tracks each follower's fetch offset, moves
the HW to the minimum log end offset over the *maximal* ISR (KIP-497: a replica being added
counts at once, one being removed still counts until the controller agrees), asks the
controller to shrink the ISR after ``replica.lag.time.max.ms`` without catching up and to
expand it once a follower reaches the HW and the current epoch's start, and completes
``acks=all`` produce requests once the HW passes them (``DelayedProduce``).
"""

from __future__ import annotations

from typing import Any

import attrs

from model import messages as m
from model.context import CONTROLLER, Context
from model.log import UNDEFINED_EPOCH, ReplicaLog


@attrs.define(slots=True)
class DelayedProduce:
    client: str
    generation: int
    corr: int
    partition: int
    offset: int
    deadline: int


@attrs.define(slots=True)
class ReplicaState:
    """This broker's replica of one partition, and what it believes about the partition."""

    log: ReplicaLog = attrs.field(factory=ReplicaLog)
    leader: str | None = None
    leader_epoch: int = UNDEFINED_EPOCH
    partition_epoch: int = -1
    isr: tuple[str, ...] = ()
    replicas: tuple[str, ...] = ()
    # Leader role.
    follower_offset: dict[str, int] = attrs.field(factory=dict)
    caught_up_at: dict[str, int] = attrs.field(factory=dict)
    last_fetch_leader_leo: dict[str, int] = attrs.field(factory=dict)
    last_fetch_time: dict[str, int] = attrs.field(factory=dict)
    epoch_start_offset: int = 0
    pending_isr: tuple[str, ...] | None = None
    pending_corr: int = 0          # the AlterPartition request pending_isr belongs to
    pending_unsent: bool = False   # its connection dropped: resend on the next tick
    delayed: list[DelayedProduce] = attrs.field(factory=list)
    # Follower role.
    fetch_corr: int | None = None
    fetch_retry_at: int = 0


class Broker:
    def __init__(self, name: str, ctx: Context, offset_store: dict[int, int]) -> None:
        self.name = name
        self.ctx = ctx
        # The committed-offset table.  Kafka keeps it in the replicated __consumer_offsets
        # topic; here it is one reliable table that whichever broker coordinates writes.
        self.offset_store = offset_store
        self.alive = True
        self.replicas: dict[int, ReplicaState] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def host(self, partition: int) -> None:
        self.replicas[partition] = ReplicaState()

    def crash(self) -> None:
        """Process crash: the log survives, every in-memory role and request is gone."""
        self.alive = False
        for state in self.replicas.values():
            state.leader = None
            # The restarted broker must hear the partition's state again before acting:
            # an unknown partition epoch makes the controller's catch-up re-send it.
            state.partition_epoch = -1
            state.follower_offset.clear()
            state.caught_up_at.clear()
            state.pending_isr = None
            state.delayed.clear()
            state.fetch_corr = None

    def restart(self) -> None:
        self.alive = True

    def is_leader(self, partition: int) -> bool:
        state = self.replicas.get(partition)
        return state is not None and state.leader == self.name

    # -- messages ----------------------------------------------------------------------

    def receive(self, src: str, generation: int, message: Any) -> None:
        if isinstance(message, m.FetchRequest):
            self._on_fetch(src, generation, message)
        elif isinstance(message, m.FetchResponse):
            self._on_fetch_response(src, message)
        elif isinstance(message, m.ProduceRequest):
            self._on_produce(src, generation, message)
        elif isinstance(message, m.LeaderAndIsr):
            self._on_leader_and_isr(message)
        elif isinstance(message, m.AlterPartitionResponse):
            state = self.replicas.get(message.partition)
            if (state is not None and state.pending_corr == message.corr
                    and message.error == m.INELIGIBLE_REPLICA):
                # Refused and nothing changed: propose again when the time comes.  For a
                # stale epoch the pending change stays (the maximal ISR keeps counting
                # it) until the controller's current state arrives, right behind this.
                state.pending_isr = None
        elif isinstance(message, m.ListOffsetsRequest):
            self._on_list_offsets(src, generation, message)
        elif isinstance(message, m.OffsetCommitRequest):
            self.offset_store.update(message.offsets)
            self.ctx.event(self.name, "offsets-committed", group=message.group,
                           offsets={str(p): o for p, o in message.offsets})
            self._reply(src, generation, m.OffsetCommitResponse(message.corr, None))
        elif isinstance(message, m.OffsetFetchRequest):
            self._reply(src, generation, m.OffsetFetchResponse(
                message.corr, None, tuple(sorted(self.offset_store.items()))))
        else:
            raise TypeError(f"{self.name} cannot handle {type(message).__name__}")

    def _epoch_error(self, state: ReplicaState, epoch: int) -> str | None:
        """KIP-320: a request naming another leader epoch is refused, not served."""
        if state.leader != self.name:
            return m.NOT_LEADER_OR_FOLLOWER
        if epoch < state.leader_epoch:
            return m.FENCED_LEADER_EPOCH
        if epoch > state.leader_epoch:
            return m.UNKNOWN_LEADER_EPOCH
        return None

    def _on_produce(self, src: str, generation: int, req: m.ProduceRequest) -> None:
        state = self.replicas.get(req.partition)
        respond = req.acks != "0"
        if state is None or state.leader != self.name:
            if respond:
                self._reply(src, generation, m.ProduceResponse(
                    req.corr, req.partition, m.NOT_LEADER_OR_FOLLOWER, None))
            return
        min_isr = self.ctx.config.topic.min_insync_replicas
        if req.acks == "all" and len(state.isr) < min_isr:
            self._reply(src, generation, m.ProduceResponse(
                req.corr, req.partition, m.NOT_ENOUGH_REPLICAS, None))
            return
        record = state.log.append(state.leader_epoch, req.key, req.value, src)
        self.ctx.event(self.name, "append", partition=req.partition, offset=record.offset,
                       epoch=record.epoch, value=record.value)
        if req.acks == "1":
            self._reply(src, generation, m.ProduceResponse(
                req.corr, req.partition, None, record.offset))
        elif req.acks == "all":
            state.delayed.append(DelayedProduce(
                src, generation, req.corr, req.partition, record.offset + 1,
                self.ctx.now + req.timeout_ms))
        self._maybe_increment_hw(req.partition, state)

    def _on_fetch(self, src: str, generation: int, req: m.FetchRequest) -> None:
        state = self.replicas.get(req.partition)
        if state is None:
            self._reply(src, generation, m.FetchResponse(
                req.corr, req.partition, m.NOT_LEADER_OR_FOLLOWER, fetch_offset=req.fetch_offset))
            return
        error = self._epoch_error(state, req.current_leader_epoch)
        if error is not None:
            self._reply(src, generation, m.FetchResponse(
                req.corr, req.partition, error, fetch_offset=req.fetch_offset))
            return
        log = state.log
        diverging = log.diverging_epoch(req.fetch_offset, req.last_fetched_epoch)
        if diverging is not None:
            self._reply(src, generation, m.FetchResponse(
                req.corr, req.partition, None, (), log.hw, diverging, req.fetch_offset))
            return
        if req.fetch_offset > log.leo:
            self._reply(src, generation, m.FetchResponse(
                req.corr, req.partition, m.OFFSET_OUT_OF_RANGE, fetch_offset=req.fetch_offset))
            return
        if req.replica is not None:
            self._update_follower(req.partition, state, req.replica, req.fetch_offset)
            upto = log.leo
        else:
            upto = log.hw  # read_uncommitted consumers see only what is below the HW
        records = tuple(log.records[req.fetch_offset:upto])
        self._reply(src, generation, m.FetchResponse(
            req.corr, req.partition, None, records, log.hw, None, req.fetch_offset))

    def _update_follower(self, partition: int, state: ReplicaState, replica: str, offset: int) -> None:
        now = self.ctx.now
        leo = state.log.leo
        # Replica.updateFetchState: caught up if it reached our LEO now, or reached the
        # LEO we had at its previous fetch.
        if offset >= leo:
            state.caught_up_at[replica] = now
        elif offset >= state.last_fetch_leader_leo.get(replica, leo + 1):
            state.caught_up_at[replica] = state.last_fetch_time.get(replica, now)
        state.last_fetch_leader_leo[replica] = leo
        state.last_fetch_time[replica] = now
        state.follower_offset[replica] = offset
        if (replica not in state.isr and state.pending_isr is None
                and offset >= state.log.hw and offset >= state.epoch_start_offset):
            self._propose_isr(partition, state, tuple(r for r in state.replicas
                                                       if r in state.isr or r == replica))
        self._maybe_increment_hw(partition, state)

    def _maximal_isr(self, state: ReplicaState) -> set[str]:
        return set(state.isr) | set(state.pending_isr or ())

    def _maybe_increment_hw(self, partition: int, state: ReplicaState) -> None:
        log = state.log
        new_hw = log.leo
        for replica in self._maximal_isr(state):
            if replica != self.name:
                new_hw = min(new_hw, state.follower_offset.get(replica, 0))
        if new_hw > log.hw:
            log.hw = new_hw
            self.ctx.event(self.name, "hw", partition=partition, hw=new_hw)
        self._complete_delayed(partition, state)

    def _complete_delayed(self, partition: int, state: ReplicaState) -> None:
        if not state.delayed:
            return
        min_isr = self.ctx.config.topic.min_insync_replicas
        waiting = []
        for d in state.delayed:
            if state.log.hw >= d.offset:
                error = None if len(state.isr) >= min_isr else m.NOT_ENOUGH_REPLICAS_AFTER_APPEND
                self._reply(d.client, d.generation, m.ProduceResponse(
                    d.corr, partition, error, d.offset - 1 if error is None else None))
            else:
                waiting.append(d)
        state.delayed = waiting

    def _fail_delayed(self, partition: int, state: ReplicaState, error: str) -> None:
        for d in state.delayed:
            self._reply(d.client, d.generation, m.ProduceResponse(d.corr, partition, error, None))
        state.delayed = []

    def _propose_isr(self, partition: int, state: ReplicaState, new_isr: tuple[str, ...]) -> None:
        """Send an AlterPartition; until the controller answers, the change is pending and
        the HW counts the maximal ISR (KIP-497).  Like Kafka's AlterPartitionManager, a
        request whose connection dropped is resent, never silently forgotten: it may
        have been applied with only the answer lost."""
        state.pending_isr = new_isr
        state.pending_corr = self.ctx.next_corr()
        sent = self.ctx.send(self.name, CONTROLLER, m.AlterPartition(
            state.pending_corr, partition, self.name, state.leader_epoch, state.partition_epoch,
            new_isr))
        state.pending_unsent = not sent

    def _on_fetch_response(self, src: str, resp: m.FetchResponse) -> None:
        state = self.replicas.get(resp.partition)
        if state is None or state.fetch_corr != resp.corr:
            return  # a response to a fetch we have abandoned
        state.fetch_corr = None
        log = state.log
        if resp.error is not None:
            state.fetch_retry_at = self.ctx.now + self.ctx.config.broker.replica_fetch_backoff_ms
            return
        if resp.diverging is not None:
            cut = log.truncation_offset(resp.diverging)
            dropped = log.truncate_to(cut)  # also clears epochs starting at the cut
            if dropped:
                self.ctx.event(self.name, "truncate", partition=resp.partition, offset=cut,
                               dropped=dropped)
        else:
            for record in resp.records:
                if record.offset == log.leo:
                    log.append_replicated(record)
            new_hw = min(resp.high_watermark, log.leo)
            if new_hw != log.hw:
                log.hw = new_hw
                self.ctx.event(self.name, "hw", partition=resp.partition, hw=new_hw)
        self._send_fetch(resp.partition, state)

    def _send_fetch(self, partition: int, state: ReplicaState) -> None:
        if state.leader is None or state.leader == self.name or state.fetch_corr is not None:
            return
        corr = self.ctx.next_corr()
        log = state.log
        # A follower's lastFetchedEpoch is its epoch cache's latest epoch (Kafka's
        # ``log.latestEpoch``), not the epoch of its last record.
        request = m.FetchRequest(corr, partition, self.name, log.leo,
                                 log.latest_epoch(), state.leader_epoch)
        if self.ctx.send(self.name, state.leader, request):
            state.fetch_corr = corr
        else:
            state.fetch_retry_at = self.ctx.now + self.ctx.config.broker.replica_fetch_backoff_ms

    def _on_leader_and_isr(self, msg: m.LeaderAndIsr) -> None:
        state = self.replicas.get(msg.partition)
        if state is None:
            return
        if msg.leader_epoch < state.leader_epoch or (
                msg.leader_epoch == state.leader_epoch
                and msg.partition_epoch <= state.partition_epoch
                and state.leader == msg.leader):
            return  # stale metadata
        was_leader = state.leader == self.name
        new_epoch = msg.leader_epoch > state.leader_epoch
        state.isr = msg.isr
        state.replicas = msg.replicas
        state.partition_epoch = msg.partition_epoch
        state.pending_isr = None
        state.leader_epoch = msg.leader_epoch
        if msg.leader == self.name:
            state.leader = self.name
            if not was_leader or new_epoch:
                self._become_leader(msg.partition, state)
            self._maybe_increment_hw(msg.partition, state)
            return
        if was_leader:
            self._fail_delayed(msg.partition, state, m.NOT_LEADER_OR_FOLLOWER)
            self.ctx.event(self.name, "become-follower", partition=msg.partition,
                           leader=msg.leader, epoch=msg.leader_epoch)
        if msg.leader != state.leader or new_epoch:
            state.fetch_corr = None
        state.leader = msg.leader
        self._send_fetch(msg.partition, state)

    def _become_leader(self, partition: int, state: ReplicaState) -> None:
        """Partition.makeLeader: start a new epoch at our LEO, forget follower progress."""
        log = state.log
        log.assign_epoch_start(state.leader_epoch, log.leo)
        state.epoch_start_offset = log.leo
        state.follower_offset = {}
        state.last_fetch_leader_leo = {}
        state.last_fetch_time = {}
        state.caught_up_at = {r: self.ctx.now for r in state.replicas if r != self.name}
        state.fetch_corr = None
        self.ctx.event(self.name, "become-leader", partition=partition,
                       epoch=state.leader_epoch, leo=log.leo, hw=log.hw)

    def _on_list_offsets(self, src: str, generation: int, req: m.ListOffsetsRequest) -> None:
        state = self.replicas.get(req.partition)
        error = m.NOT_LEADER_OR_FOLLOWER if state is None else self._epoch_error(
            state, req.current_leader_epoch)
        offset = 0
        if error is None and req.reset == "latest":
            offset = state.log.hw  # type: ignore[union-attr]
        self._reply(src, generation, m.ListOffsetsResponse(req.corr, req.partition, error, offset))

    def _reply(self, dst: str, generation: int, message: Any) -> None:
        self.ctx.send(self.name, dst, message, generation)

    # -- timers and connections --------------------------------------------------------

    def on_tick(self) -> None:
        now = self.ctx.now
        lag = self.ctx.config.broker.replica_lag_time_max_ms
        for partition, state in self.replicas.items():
            if state.leader == self.name:
                expired = [d for d in state.delayed if d.deadline <= now]
                if expired:
                    state.delayed = [d for d in state.delayed if d.deadline > now]
                    for d in expired:
                        self._reply(d.client, d.generation, m.ProduceResponse(
                            d.corr, partition, m.REQUEST_TIMED_OUT, None))
                if state.pending_isr is not None and state.pending_unsent:
                    self._propose_isr(partition, state, state.pending_isr)
                elif state.pending_isr is None:
                    lagging = {r for r in state.isr if r != self.name
                               and now - state.caught_up_at.get(r, now) > lag}
                    if lagging:
                        self._propose_isr(partition, state,
                                          tuple(r for r in state.isr if r not in lagging))
            elif state.leader is not None and state.fetch_corr is None \
                    and now >= state.fetch_retry_at:
                self._send_fetch(partition, state)

    def on_disconnect(self, peer: str) -> None:
        backoff = self.ctx.config.broker.replica_fetch_backoff_ms
        for state in self.replicas.values():
            if state.leader == peer and state.fetch_corr is not None:
                state.fetch_corr = None
                state.fetch_retry_at = self.ctx.now + backoff
            if peer == CONTROLLER and state.pending_isr is not None:
                state.pending_unsent = True
