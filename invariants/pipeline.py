"""The exactly-once verdict of a consume-transform-produce pipeline, on its output.

A transform keeps its input record's value (``model.clients.transform``), so each
output record names its input.  The question is the one an exactly-once pipeline
answers for its downstream: reading the output topic at the end of the run with the
reader's isolation level (``kafkacheck.output.isolation.level``; read_committed sees
only records of committed transactions, read_uncommitted every record below the high
watermark), is every input record's transform there exactly once?

* ``output-lost``: a committed input record, at or after where the consumers started,
  of which the reader sees no transform;
* ``output-duplicated``: an input record whose transform the reader sees more than once
  (a zombie's committed transaction, an aborted one read uncommitted, or a transaction
  that committed while its offsets did not).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from invariants.anomaly import Anomalies, add
from invariants.observations import Observations


def visible_output(obs: Observations) -> dict[int, list[tuple[str, int, str, str | None]]]:
    """Input value -> where the reader sees its transforms: (partition, offset, writer,
    transaction outcome)."""
    seen: dict[int, list[tuple[str, int, str, str | None]]] = defaultdict(list)
    committed_only = obs.output_reader == "read_committed"
    for partition, rows in sorted((obs.output_logs or {}).items()):
        for row in rows:
            status = row[5] if len(row) > 5 else None
            if committed_only and status not in (None, "committed"):
                continue
            seen[row[1]].append((partition, row[0], row[3], status))
    return seen


def check_pipeline(obs: Observations, anomalies: Anomalies) -> None:
    if obs.output_logs is None or obs.final_logs is None:
        return
    seen = visible_output(obs)
    for p in sorted(obs.final_logs):
        start = obs.baselines.get(p)
        if start is None:
            continue
        for offset, value, *_ in obs.committed_rows(p):
            places = seen.get(value, [])
            detail: dict[str, Any] = {"key": p, "offset": offset, "value": value,
                                      "reader": obs.output_reader}
            if offset >= start and not places:
                add(anomalies, "output-lost", **detail)
            elif len(places) > 1:
                add(anomalies, "output-duplicated", **detail, count=len(places),
                    output=[[q, o] for q, o, _, _ in places],
                    writers=[w for _, _, w, _ in places],
                    outcomes=[s for _, _, _, s in places])
