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

A value the input's producer wrote twice (``duplicate``: the idempotent producer across
a leader change) is two input records, and a pipeline that transforms each once shows
that value twice in its output: the output is judged against how many copies of each
value the input holds, so the producer's duplicate stays the producer's finding.
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
        rows = [(offset, value) for offset, value, *_ in obs.committed_rows(p)]
        copies: dict[int, list[int]] = defaultdict(list)    # value -> its input offsets
        for offset, value in rows:
            copies[value].append(offset)
        for offset, value in rows:
            places = seen.get(value, [])
            detail: dict[str, Any] = {"key": p, "offset": offset, "value": value,
                                      "reader": obs.output_reader}
            # The transforms seen cover this value's copies in offset order; this one is
            # lost if fewer are seen than the consumed copies up to and including it.
            consumed_up_to_here = sum(1 for o in copies[value] if start <= o <= offset)
            if offset >= start and len(places) < consumed_up_to_here:
                add(anomalies, "output-lost", **detail)
            elif len(places) > len(copies[value]):
                add(anomalies, "output-duplicated", **detail, count=len(places),
                    output=[[q, o] for q, o, _, _ in places],
                    writers=[w for _, _, w, _ in places],
                    outcomes=[s for _, _, _, s in places])
