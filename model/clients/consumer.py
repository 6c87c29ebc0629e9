"""A consumer assigned to every partition, and the application loop around it.

The consumer pulls from each partition's leader from its position, sees only records
below the high watermark (read_uncommitted), detects log truncation through
``lastFetchedEpoch`` (KIP-320) and resets per ``auto.offset.reset`` when it has no committed
offset or its position is out of range.  ``poll`` returns what earlier fetches buffered and
sends the next fetches (the Java client pipelines the same way).  Committed offsets are
read and written through the group coordinator
(:class:`model.clients.coordinator.ConsumerCoordinator`).

The application loop is the part users get wrong, so it is explicit state:
``kafkacheck.commit.strategy=after-processing`` is ``poll; process each; commitSync``
(at-least-once), ``before-processing`` is ``poll; commitSync; process each`` (at-most-once;
if commitSync throws the batch is skipped, as an exception from it would do).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from model import messages as m
from model.clients.coordinator import ConsumerCoordinator
from model.context import Context
from model.broker.log import UNDEFINED_EPOCH, Record
from model.broker.producer_state import ABORT, NO_PRODUCER_ID

POLL, PROCESS, COMMIT = "poll", "process", "commit"


def returned_records(records: tuple[Record, ...], read_committed: bool,
                     aborted: tuple[tuple[int, int], ...]) -> list[Record]:
    """What the consumer returns from a fetched range (``CompletedFetch``): never a
    control record; with read_committed, no record of a batch whose producer's
    transaction the broker listed as aborted (a producer joins the aborted set when the
    range reaches that transaction's first offset, and leaves it at its ABORT marker)."""
    out: list[Record] = []
    pending = sorted(aborted, key=lambda a: a[1])
    aborted_producers: set[int] = set()
    index = 0
    while index < len(records):
        first = records[index]
        end = index + 1
        while (end < len(records) and records[end].offset - records[end].batch_index
               == first.offset - first.batch_index):
            end += 1
        batch = records[index:end]
        index = end
        if read_committed and first.producer_id != NO_PRODUCER_ID:
            while pending and pending[0][1] <= batch[-1].offset:
                aborted_producers.add(pending.pop(0)[0])
            if first.control == ABORT:
                aborted_producers.discard(first.producer_id)
            elif first.transactional and first.producer_id in aborted_producers:
                continue
        if first.control is None:
            out.extend(batch)
    return out


class Consumer:
    def __init__(self, name: str, ctx: Context,
                 metadata: Callable[[int], tuple[str | None, int]], brokers: list[str]) -> None:
        self.name = name
        self.ctx = ctx
        self.lookup = metadata
        self.brokers = brokers          # the bootstrap servers
        self.alive = True
        self.incarnation = 0
        self.partitions = list(range(ctx.config.topic.partitions))
        self._start()

    @property
    def op_process(self) -> str:
        """The Jepsen process of this incarnation (a restarted client is a new process)."""
        return f"{self.name}:{self.incarnation}"

    def _start(self) -> None:
        self.positions: dict[int, int | None] = {p: None for p in self.partitions}
        self.position_epochs: dict[int, int] = {p: UNDEFINED_EPOCH for p in self.partitions}
        self.buffer: dict[int, list[Record]] = {p: [] for p in self.partitions}
        # The buffered fetch's offset, where it ended (the next fetch offset, past any
        # control or aborted records it skipped) and the epoch of its last batch.
        self.buffer_end: dict[int, tuple[int, int, int] | None] = {
            p: None for p in self.partitions}
        self.read_committed = self.ctx.config.consumer.isolation_level == "read_committed"
        # partition -> (corr, broker, sent_at) of the fetch / ListOffsets in flight
        self.fetching: dict[int, tuple[int, str, int]] = {}
        self.listing: dict[int, tuple[int, str, int]] = {}
        self.pending: deque[tuple[int, Record]] = deque()   # polled, not yet processed
        self.processed: dict[int, int] = {}                 # next offset after processed
        self.returned: dict[int, int] = {}                  # next offset after returned
        self.phase = POLL
        self.leaders: dict[int, tuple[str | None, int]] = {}
        self.coordinator = ConsumerCoordinator(self.name, self.ctx, self.brokers,
                                               self._commit_done, self._on_committed)
        self.refresh_metadata()
        self.ctx.history.add(self.op_process, "invoke", "assign", list(self.partitions))
        self.ctx.history.add(self.op_process, "ok", "assign", list(self.partitions))
        self.coordinator.advance()

    def refresh_metadata(self) -> None:
        self.leaders = {p: self.lookup(p) for p in self.partitions}

    # -- what the application may do now ------------------------------------------------

    def can_poll(self) -> bool:
        return self.alive and self.phase == POLL

    def can_process(self) -> bool:
        return self.alive and self.phase == PROCESS and bool(self.pending)

    def can_commit(self) -> bool:
        return self.alive and self.phase == COMMIT and self.coordinator.commit is None

    def caught_up(self, high_watermarks: dict[int, int]) -> bool:
        """Everything below each HW was returned, processed and committed (or skipped)."""
        return (self.alive and self.phase == POLL and not self.pending
                and self.coordinator.commit is None
                and all(self.positions[p] is not None and self.positions[p] >= hw
                        for p, hw in high_watermarks.items()))

    # -- application calls -------------------------------------------------------------

    def poll(self) -> None:
        self.ctx.history.add(self.op_process, "invoke", "poll", [["poll"]])
        returned: dict[int, list[list[int]]] = {}
        for p in self.partitions:
            position = self.positions[p]
            fetched = self.buffer_end[p]
            taken = self.buffer[p]
            self.buffer[p], self.buffer_end[p] = [], None
            if fetched is None or fetched[0] != position:
                continue       # fetched for a position we have since left
            _, end, epoch = fetched
            if end > position:
                self.positions[p] = end
                self.position_epochs[p] = epoch
                self.returned[p] = end
            if taken:
                returned[p] = [[r.offset, r.value] for r in taken]
                self.pending.extend((p, r) for r in taken)
        self.ctx.history.add(self.op_process, "ok", "poll", [["poll", returned]])
        if self.pending:
            strategy = self.ctx.config.consumer.commit_strategy
            self.phase = PROCESS if strategy == "after-processing" else COMMIT
        self._send_requests()

    def process(self) -> None:
        partition, record = self.pending.popleft()
        self.ctx.history.add(self.op_process, "ok", "process",
                             [partition, record.offset, record.value], {"key": record.key})
        self.processed[partition] = record.offset + 1
        if not self.pending:
            strategy = self.ctx.config.consumer.commit_strategy
            self.phase = COMMIT if strategy == "after-processing" else POLL

    def commit(self) -> None:
        strategy = self.ctx.config.consumer.commit_strategy
        offsets = dict(self.processed if strategy == "after-processing" else self.returned)
        self.ctx.history.add(self.op_process, "invoke", "commit", offsets)
        self.coordinator.commit_sync(offsets)

    def _commit_done(self, offsets: dict[int, int], outcome: str, error: str | None) -> None:
        meta = {"error": error} if error else None
        self.ctx.history.add(self.op_process, outcome, "commit", offsets, meta)
        strategy = self.ctx.config.consumer.commit_strategy
        if strategy == "before-processing" and outcome != "ok":
            # commitSync threw: the application never processes this batch.
            self.pending.clear()
            self.phase = POLL
        else:
            self.phase = PROCESS if strategy == "before-processing" and self.pending else POLL

    # -- requests ----------------------------------------------------------------------

    def _on_committed(self, offsets: dict[int, int]) -> None:
        for p, offset in sorted(offsets.items()):
            self.positions[p] = offset
            self.processed[p] = offset
            self.returned[p] = offset
            self.ctx.event(self.name, "position", partition=p, offset=offset, reason="committed")
        self._send_requests()  # poll() chains OffsetFetch -> ListOffsets -> Fetch itself

    def _send_requests(self) -> None:
        if not self.coordinator.committed_known:
            self.coordinator.advance()
            return
        now = self.ctx.now
        for p in self.partitions:
            leader, epoch = self.leaders[p]
            if leader is None:
                continue
            if self.positions[p] is None:
                if p not in self.listing:
                    corr = self.ctx.next_corr()
                    reset = self.ctx.config.consumer.auto_offset_reset
                    if self.ctx.send(self.name, leader, m.ListOffsetsRequest(
                            corr, p, reset, epoch, self.read_committed)):
                        self.listing[p] = (corr, leader, now)
                continue
            if p not in self.fetching:
                corr = self.ctx.next_corr()
                position = self.positions[p]
                request = m.FetchRequest(corr, p, None, position,  # type: ignore[arg-type]
                                         self.position_epochs[p], epoch,
                                         read_committed=self.read_committed)
                if self.ctx.send(self.name, leader, request):
                    self.fetching[p] = (corr, leader, now)

    def receive(self, src: str, generation: int, message: Any) -> None:
        if isinstance(message, m.FetchResponse):
            self._on_fetch(message)
        elif isinstance(message, m.ListOffsetsResponse):
            self._on_list_offsets(message)
        elif isinstance(message, m.FindCoordinatorResponse):
            self.coordinator.on_find_coordinator(message)
        elif isinstance(message, m.OffsetFetchResponse):
            self.coordinator.on_offset_fetch(message)
        elif isinstance(message, m.OffsetCommitResponse):
            self.coordinator.on_commit_response(message)
            self.coordinator.advance()
        else:
            raise TypeError(f"consumer cannot handle {type(message).__name__}")

    def _on_list_offsets(self, resp: m.ListOffsetsResponse) -> None:
        if self.listing.get(resp.partition, (None,))[0] != resp.corr:
            return
        del self.listing[resp.partition]
        if resp.error is not None:
            self.refresh_metadata()
            return
        self._reset_to(resp.partition, resp.offset, "auto.offset.reset")
        self._send_requests()

    def _reset_to(self, p: int, offset: int, reason: str) -> None:
        self.positions[p] = offset
        self.position_epochs[p] = UNDEFINED_EPOCH
        self.buffer[p], self.buffer_end[p] = [], None
        self.ctx.event(self.name, "position", partition=p, offset=offset, reason=reason)

    def _on_fetch(self, resp: m.FetchResponse) -> None:
        p = resp.partition
        assert isinstance(p, int)
        if self.fetching.get(p, (None,))[0] != resp.corr:
            return
        del self.fetching[p]
        if resp.fetch_offset != self.positions[p]:
            return  # the position moved since this fetch was sent
        if resp.error == m.OFFSET_OUT_OF_RANGE:
            self.positions[p] = None  # reset on the next poll, per auto.offset.reset
            self.ctx.event(self.name, "position", partition=p, offset=None, reason="out-of-range")
            return
        if resp.error is not None:
            self.refresh_metadata()
            return
        if resp.diverging is not None:
            # Truncation detected (KIP-320): move back to where our history and the log agree.
            epoch, end = resp.diverging
            self._reset_to(p, max(0, min(end, self.positions[p])), "truncation")  # type: ignore
            return
        # The broker bounds what a read_uncommitted consumer may see by the HW
        # (FetchIsolation.HIGH_WATERMARK); the Java client takes what it is given.
        self.buffer[p] = returned_records(resp.records, self.read_committed, resp.aborted)
        if resp.records:
            last = resp.records[-1]
            self.buffer_end[p] = (resp.fetch_offset, last.offset + 1, last.epoch)

    # -- timers, connections, crash ----------------------------------------------------

    def on_tick(self) -> None:
        limit = self.ctx.now - self.ctx.config.producer.request_timeout_ms
        timed_out = self.coordinator.timed_out_brokers() | {
            broker for corr, broker, sent_at in [*self.fetching.values(), *self.listing.values()]
            if sent_at <= limit}
        for broker in sorted(timed_out):
            # NetworkClient closes a connection whose request timed out; both ends learn.
            self.ctx.close(self.name, broker)
        self.refresh_metadata()
        self.coordinator.advance()

    def on_disconnect(self, peer: str) -> None:
        self.fetching = {p: v for p, v in self.fetching.items() if v[1] != peer}
        self.listing = {p: v for p, v in self.listing.items() if v[1] != peer}
        self.coordinator.on_disconnect(peer)
        self.refresh_metadata()
        self.coordinator.advance()

    def crash(self) -> None:
        self.alive = False
        offsets = self.coordinator.abandon()
        if offsets is not None:
            self.ctx.history.add(self.op_process, "info", "commit", offsets,
                                 {"error": "CLIENT_CRASHED"})
        self.ctx.history.add(self.op_process, "info", "crash", None)

    def restart(self) -> None:
        self.alive = True
        self.incarnation += 1
        self._start()
