"""Facts extracted once from a history, shared by every model-aware checker.

The checkers in this package read only :class:`model.history.Event` records.  This module
walks the events a single time and keeps what the checkers ask about: sends and their
outcomes, what polls returned, what the application processed, where the consumer started,
and the final committed log recorded by the ``Finish`` step.
"""

from __future__ import annotations

from typing import Any, Iterable

import attrs

from model.history import INTERNAL, Event


@attrs.define(slots=True)
class SendOp:
    """One ``send``: its invocation and (if any) its completion."""

    index: int
    process: str        # the Jepsen process (lane) that sent it
    partition: int
    value: int
    record_key: str | None
    outcome: str | None = None        # ok | fail | info | None (never completed)
    offset: int | None = None
    completion: int | None = None
    resend_of: int | None = None      # the application record this send repeats
    txn: str | None = None            # the producer transaction it was sent in

    @property
    def client(self) -> str:
        """The producer client: processes are named ``client:incarnation[:lane]``."""
        return self.process.split(":", 1)[0]


@attrs.define(slots=True)
class Observations:
    sends: dict[int, SendOp] = attrs.field(factory=dict)              # by value
    reads: list[tuple[int, int, int, int]] = attrs.field(factory=list)  # (p, offset, value, op)
    processed: dict[int, list[tuple[int, int, int]]] = attrs.field(factory=dict)
    baselines: dict[int, int] = attrs.field(factory=dict)             # first start position
    # Partitions whose first start position was the log end (auto.offset.reset=latest).
    started_at_end: set[int] = attrs.field(factory=set)
    # Per partition the final committed log's data records: (offset, value, key,
    # producer, epoch[, transaction outcome]); offsets skip control records.
    final_logs: dict[int, list[tuple[Any, ...]]] | None = None
    # Partitions whose last stable offset stayed below the HW: (lso, hw).
    final_lso: dict[int, tuple[int, int]] = attrs.field(factory=dict)
    offset_index: dict[tuple[int, int], tuple[int, str | None]] | None = attrs.field(
        default=None, init=False, repr=False)
    invariant_violations: list[dict[str, Any]] = attrs.field(factory=list)
    # The consumer-group events invariants.groups reads, in order (with the application's
    # processing and its failed commits).
    group_events: list[Event] = attrs.field(factory=list)
    # A consume-transform-produce run's output partitions as its downstream reader
    # finds them at the end (rows as in final_logs, with the transaction's outcome), and
    # that reader's isolation level.
    output_logs: dict[str, list[tuple[Any, ...]]] | None = None
    output_reader: str = "read_committed"
    settled: bool | None = None       # did the run end quiescent (None: no Finish step)
    unsettled_reason: str | None = None
    events: int = 0

    def final_value_at(self, partition: int, offset: int) -> int | None:
        """The value at ``offset`` of the final log (aborted and open records too)."""
        assert self.final_logs is not None
        return self._by_offset().get((partition, offset), (None, None))[0]

    def final_status_at(self, partition: int, offset: int) -> str | None:
        """A transactional record's outcome (committed, aborted, open); None otherwise."""
        return self._by_offset().get((partition, offset), (None, None))[1]

    def _by_offset(self) -> dict[tuple[int, int], tuple[int, str | None]]:
        if self.offset_index is None:
            self.offset_index = {(p, row[0]): (row[1], row[5] if len(row) > 5 else None)
                                 for p, log in (self.final_logs or {}).items() for row in log}
        return self.offset_index

    def committed_rows(self, partition: int) -> list[tuple[Any, ...]]:
        """The final log's records a read_committed reader may see: every record but
        those of aborted or never-committed transactions."""
        return [row for row in (self.final_logs or {}).get(partition, [])
                if len(row) <= 5 or row[5] == "committed"]

    def records(self) -> dict[int, list[int]]:
        """Application record (its first send's value) -> the values of every send of it,
        when the application sent it more than once (``resend``)."""
        out: dict[int, list[int]] = {}
        for value, send in sorted(self.sends.items()):
            if send.resend_of is not None:
                out.setdefault(send.resend_of, [send.resend_of]).append(value)
        return out

    def final_offsets_by_value(self) -> dict[int, list[tuple[int, int]]]:
        """value -> [(partition, offset), ...] in the final logs."""
        out: dict[int, list[tuple[int, int]]] = {}
        for p in (self.final_logs or {}):
            for offset, value, *_ in self.committed_rows(p):
                out.setdefault(value, []).append((p, offset))
        return out


# Every internal event invariants/groups.py reads: one missing here is invisible to the
# group checkers (a rejoin under an old member id left out made its member a zombie).
GROUP_EVENTS = frozenset({"assigned", "revoked", "lost", "member-removed", "member-joined",
                          "position", "offsets-committed", "commit-refused", "leave-group",
                          "auto-commit-failed"})


def observe(events: Iterable[Event]) -> Observations:
    obs = Observations()
    pending: dict[tuple[str, int], SendOp] = {}
    for event in events:
        obs.events += 1
        f = event.f
        if event.type == INTERNAL:
            if f in GROUP_EVENTS:
                obs.group_events.append(event)
            if f == "final-log":
                if obs.final_logs is None:
                    obs.final_logs = {}
                obs.final_logs[event.value["partition"]] = [
                    tuple(r) for r in event.value["records"]]  # type: ignore[misc]
                lso, hw = event.value.get("lso"), event.value.get("hw")
                if isinstance(lso, int) and isinstance(hw, int) and lso < hw:
                    obs.final_lso[event.value["partition"]] = (lso, hw)
            elif f == "output-log":
                if obs.output_logs is None:
                    obs.output_logs = {}
                obs.output_logs[event.value["partition"]] = [
                    tuple(r) for r in event.value["records"]]  # type: ignore[misc]
                reader = event.value.get("reader")
                if isinstance(reader, str):
                    obs.output_reader = reader
            elif f == "position":
                p, offset = event.value["partition"], event.value["offset"]
                if offset is not None and p not in obs.baselines:
                    obs.baselines[p] = offset
                    if event.value.get("reset") == "latest":
                        obs.started_at_end.add(p)
            elif f == "finish":
                obs.settled = bool(event.value.get("quiescent"))
                reason = event.value.get("reason")
                obs.unsettled_reason = reason if isinstance(reason, str) else None
            elif f == "invariant":
                obs.invariant_violations.append(dict(event.value))
            continue
        if f == "send":
            for _, partition, value in event.value:
                if event.type == "invoke":
                    meta = event.meta or {}
                    resend_of = meta.get("resend-of")
                    txn = meta.get("txn")
                    op = SendOp(event.index, event.process, partition, value,
                                meta.get("key"),
                                resend_of=resend_of if isinstance(resend_of, int) else None,
                                txn=txn if isinstance(txn, str) else None)
                    obs.sends[value] = op
                    pending[(event.process, value)] = op
                    continue
                offset = None
                if isinstance(value, list):
                    offset, value = value
                op = pending.pop((event.process, value), None) or obs.sends.get(value)
                if op is None:
                    continue
                op.outcome, op.offset, op.completion = event.type, offset, event.index
        elif f == "poll" and event.type == "ok":
            for mop in event.value:
                if len(mop) < 2:
                    continue
                for partition, pairs in mop[1].items():
                    for offset, value in pairs:
                        obs.reads.append((partition, offset, value, event.index))
        elif f == "process" and event.type == "ok":
            partition, offset, value = event.value
            obs.processed.setdefault(value, []).append((partition, offset, event.index))
            obs.group_events.append(event)
        elif f == "commit" and event.type in ("fail", "info"):
            obs.group_events.append(event)
    return obs
