"""Visibility: consumers may only ever see committed records, and offsets name one value.

* ``uncommitted-read``: a poll returned a record that is not in the final committed log at
  that offset.  Kafka serves only records below the high watermark, and clean elections
  keep everything below it, so this appears only when committed data is later lost
  (for example after an unclean leader election).
* ``G1a`` (Jepsen's aborted read): a poll returned a record whose transaction was
  aborted, or never committed.  read_uncommitted consumers do this by design; a
  read_committed consumer never should.
* ``inconsistent-offsets`` (Jepsen's name): one offset of a partition is reported holding
  two different values by acknowledged sends, polls or the final log.
"""

from __future__ import annotations

from invariants.anomaly import Anomalies, add
from invariants.observations import Observations


def check_visibility(obs: Observations, anomalies: Anomalies) -> None:
    if obs.final_logs is not None:
        for p, offset, value, op in obs.reads:
            if obs.final_value_at(p, offset) != value:
                add(anomalies, "uncommitted-read", key=p, offset=offset, value=value,
                    reader=op, **{"final-value": obs.final_value_at(p, offset)})
            elif obs.final_status_at(p, offset) in ("aborted", "open"):
                add(anomalies, "G1a", key=p, offset=offset, value=value, reader=op,
                    transaction=obs.final_status_at(p, offset))
    seen: dict[tuple[int, int], dict[int, list[str]]] = {}

    def note(p: int, offset: int, value: int, source: str) -> None:
        seen.setdefault((p, offset), {}).setdefault(value, []).append(source)

    for send in obs.sends.values():
        if send.outcome == "ok" and send.offset is not None:
            note(send.partition, send.offset, send.value, f"send op {send.completion}")
    for p, offset, value, op in obs.reads:
        note(p, offset, value, f"poll op {op}")
    for p, log in (obs.final_logs or {}).items():
        for offset, value, *_ in log:
            note(p, offset, value, "final log")
    for (p, offset), values in sorted(seen.items()):
        if len(values) > 1:
            add(anomalies, "inconsistent-offsets", key=p, offset=offset,
                values=sorted(values), sources={str(v): s for v, s in sorted(values.items())})
