"""Delivery: were acknowledged writes kept, and was each record processed exactly once?

Each question is asked of the final committed log the ``Finish`` step recorded, where
a record of an aborted or never-committed transaction does not count as stored:

* ``lost-write``: a send the producer saw acknowledged (``ok``) whose value is not in the
  final log of its partition.  With ``acks=0`` "acknowledged" means "handed to the socket".
* ``duplicate``: one value stored at more than one offset (a retried send that had landed),
  or one application record stored more than once through the application's resends
  (values are unique per send; a resend names the record it repeats, ``resend-of``).
* ``G1a``: a send that ended ``fail`` (which promises the write did not happen) whose value
  is in the final log: Jepsen's aborted read, judged against the log rather than polls,
  so that it is found even when no consumer read that far.
* ``torn-transaction`` / ``hanging-transaction``: see :func:`check_transactions`.
* ``processed-zero-times`` / ``processed-more-than-once``: the consumer pipeline's verdict.
  Expected are the records of the final log from the offset the consumer first started at
  (its first committed or ``auto.offset.reset`` position), so a consumer configured with
  ``auto.offset.reset=latest`` is not blamed for records older than its start.  Counting
  is per value, so a producer-side duplicate that the consumer processes twice counts.
* ``never-consumed``: the records older than that start, when it was the log end
  (``auto.offset.reset=latest`` and no committed offset): written, committed, and never
  seen by the pipeline, which is what ``latest`` means for a new group.
"""

from __future__ import annotations

from invariants.anomaly import Anomalies, add
from invariants.observations import Observations


def check_delivery(obs: Observations, anomalies: Anomalies) -> None:
    if obs.final_logs is None:
        return
    stored = obs.final_offsets_by_value()
    for value, send in sorted(obs.sends.items()):
        if send.outcome == "ok" and not any(p == send.partition for p, _ in stored.get(value, ())):
            add(anomalies, "lost-write", key=send.partition, value=value,
                offset=send.offset, writer=send.completion, **{"record-key": send.record_key})
    for value, send in sorted(obs.sends.items()):
        if send.outcome == "fail":
            offsets = [o for p, o in stored.get(value, ()) if p == send.partition]
            if offsets:
                add(anomalies, "G1a", key=send.partition, value=value,
                    writer=send.completion, offsets=offsets)
    for value, places in sorted(stored.items()):
        if len(places) > 1:
            add(anomalies, "duplicate", key=places[0][0], value=value,
                offsets=[o for _, o in places], count=len(places))
    for root, values in sorted(obs.records().items()):
        places = [(p, o, v) for v in values for p, o in stored.get(v, ())]
        if len(places) > 1 and not any(len(stored.get(v, ())) > 1 for v in values):
            add(anomalies, "duplicate", key=places[0][0], value=root,
                values=[v for _, _, v in places], offsets=[o for _, o, _ in places],
                count=len(places))
    check_transactions(obs, stored, anomalies)
    if obs.output_logs is not None:
        # Consume-transform-produce: processing is the output, judged on it
        # (invariants.pipeline), not on the application's process operations.
        return
    for p in sorted(obs.final_logs):
        start = obs.baselines.get(p)
        if start is None:
            continue
        for offset, value, *_ in obs.committed_rows(p):
            if offset >= start and value not in obs.processed:
                add(anomalies, "processed-zero-times", key=p, offset=offset, value=value)
            elif offset < start and p in obs.started_at_end and value not in obs.processed:
                add(anomalies, "never-consumed", key=p, offset=offset, value=value,
                    reason=f"auto.offset.reset=latest: with no committed offset the "
                           f"consumers started at the log end, offset {start}")
    for value, times in sorted(obs.processed.items()):
        if len(times) > 1:
            add(anomalies, "processed-more-than-once", key=times[0][0], value=value,
                count=len(times), offsets=[o for _, o, _ in times], ops=[i for *_, i in times])


def check_transactions(obs: Observations, stored: dict[int, list[tuple[int, int]]],
                       anomalies: Anomalies) -> None:
    """``torn-transaction``: one producer transaction of which some records are
    committed in the final log and others are not (aborted, never committed, or
    missing); ``hanging-transaction``: a partition whose last stable offset stayed
    below its high watermark after the cluster settled (a transaction no marker will
    ever close, so read_committed consumers stop there)."""
    by_txn: dict[str, list[int]] = {}
    for value, send in sorted(obs.sends.items()):
        if send.txn is not None:
            by_txn.setdefault(send.txn, []).append(value)
    for txn, values in sorted(by_txn.items()):
        visible = [v for v in values if v in stored]
        if visible and len(visible) < len(values):
            add(anomalies, "torn-transaction", key=obs.sends[values[0]].partition, txn=txn,
                values=values, committed=visible,
                missing=[v for v in values if v not in stored])
    for p, (lso, hw) in sorted(obs.final_lso.items()):
        add(anomalies, "hanging-transaction", key=p, lso=lso, hw=hw,
            status=obs.final_status_at(p, lso))
