"""Invariants of the model's state, checked after every step of a run.

These are the properties Kafka's own TLA+ specifications check (hachikuji's
``StrongIsr``; Vanlightly's ``LeaderCompleteness`` and ``NoCommittedRecordLostGlobally``):

* ``committed-prefix-changed``: a record once below an acting leader's high watermark is
  later missing or different in the acting leader's log (committed data lost).
* ``isr-log-mismatch``: below the leader's HW, an ISR member's log differs from the leader's.
* ``hw-exceeds-isr-leo``: the leader's HW is beyond the log end of an ISR member, which
  could then be elected without records the HW declared committed.

An *acting* leader is the controller's choice that also knows it leads in that epoch; a
deposed leader that has not heard yet is not held to these, exactly as in Kafka.
"""

from __future__ import annotations

from typing import Any, Sequence

from model.views import PartitionView

# The names ``ModelStateMonitor`` reports (and ``invariant`` events in a history carry).
INVARIANT_NAMES = ("committed-prefix-changed", "isr-log-mismatch", "hw-exceeds-isr-leo")


class ModelStateMonitor:
    """Remembers the committed prefix of every partition across steps."""

    def __init__(self) -> None:
        self.committed: dict[int, list[tuple[int, int]]] = {}
        self.reported: set[tuple[str, int, int]] = set()

    def check(self, views: Sequence[PartitionView]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for view in views:
            leader = view.acting_leader()
            if leader is None:
                continue
            self._check_committed(view.partition, leader.records, leader.hw, found)
            for name in view.isr:
                if name == leader.broker:
                    continue
                member = view.replicas[name]
                upto = min(leader.hw, member.leo)
                if member.records[:upto] != leader.records[:upto]:
                    self._report(found, "isr-log-mismatch", view.partition, upto,
                                 replica=name, leader=leader.broker)
                if leader.hw > member.leo:
                    self._report(found, "hw-exceeds-isr-leo", view.partition, leader.hw,
                                 replica=name, leader=leader.broker, leo=member.leo)
        return found

    def _check_committed(self, partition: int, records: Sequence, hw: int,
                         found: list[dict[str, Any]]) -> None:
        committed = self.committed.setdefault(partition, [])
        overlap = min(len(committed), len(records))
        for offset in range(overlap):
            record = records[offset]
            if (record.epoch, record.value) != committed[offset]:
                self._report(found, "committed-prefix-changed", partition, offset,
                             expected=committed[offset][1], actual=record.value)
                committed[offset:] = []
                break
        else:
            if len(records) < len(committed):
                self._report(found, "committed-prefix-changed", partition, len(records),
                             expected=committed[len(records)][1], actual=None)
                del committed[len(records):]
        if hw > len(committed):
            committed.extend((r.epoch, r.value) for r in records[len(committed):hw])

    def _report(self, found: list[dict[str, Any]], name: str, partition: int, offset: int,
                **detail: Any) -> None:
        key = (name, partition, offset)
        if key in self.reported:
            return
        self.reported.add(key)
        found.append({"name": name, "key": partition, "offset": offset, **detail})
