"""One verdict for a kafkacheck history: the model-aware checkers and Jepsen's, merged.

Why one function: a hunt, ``replay`` and ``check`` used to judge the same history with
different checkers (hunts with the model-aware ones only), so a hunt could call a run
exactly-once that ``check`` then found invalid (a send reported ``fail`` whose record was
stored: Jepsen's ``G1a``).  Everything that judges a kafkacheck history now calls
:func:`judge`, and a saved history's ``verdict`` is exactly what ``replay`` and ``check``
compute again.

The two halves see different things: the model-aware checkers know the final committed
log and the application's side effects (loss of records nobody read, the consumer
pipeline); Jepsen's analysis reads only client operations (skips and re-reads by a
consumer, dependency cycles).  Where both report the same anomaly for the same record it
is listed once.  Validity follows Jepsen's allowed-anomaly rules for its half (everything
the model-aware half reports is a violation) with one exception, ``empty-transaction-graph``
in a finished run (see below), and the guarantee is read off the invalid anomalies'
families (``invariants.guarantees``).

Cost: on hunt-sized histories (hundreds of events) Jepsen's analysis takes well under a
millisecond per hundred events and never forks a helper (that starts at 10^5 operations,
``invariants.jepsen.parallel.FORK_THRESHOLD_OPS``); see docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from invariants.anomaly import Anomalies
from invariants.check import Verdict, check_observations
from invariants.guarantees import guarantee
from invariants.jepsen import analyze, jsonable
from invariants.observations import Observations, observe
from model.history import INTERNAL, Event

# How to tell that two details of one anomaly name describe the same record.
IDENTITY = {
    "lost-write": ("key", "value"),
    "duplicate": ("key", "value"),
    "G1a": ("key", "value"),
    "inconsistent-offsets": ("key", "offset"),
}


def judge(events: Sequence[Event], *, ww_deps: bool = False,
          sub_via: str | None = None) -> Verdict:
    """The complete verdict on a kafkacheck history (JSON-ready: saving it and loading it
    back gives an equal verdict).  ``sub_via`` defaults to what the history shows: a
    history whose consumers ``subscribe`` is judged as Jepsen judges rebalancing
    consumers (poll skips and re-reads allowed)."""
    events = events if isinstance(events, list) else list(events)
    if sub_via is None:
        sub_via = ("subscribe" if any(e.f == "subscribe" and e.type != INTERNAL for e in events)
                   else "assign")
    obs = observe(events)
    ours = check_observations(obs)
    theirs = analyze(events, ww_deps=ww_deps, sub_via=sub_via).to_json()
    jepsen_found = excuse_records_before_start(theirs["anomalies"], obs)
    anomalies = merge(jepsen_found, jsonable(ours.anomalies))
    invalid = {name for name in theirs["stats"]["bad-anomaly-types"] if name in jepsen_found}
    invalid |= set(ours.invalid)
    if ours.stats["final-log"]:
        # Jepsen's checker has nothing else to go on and calls a history without one
        # dependency edge unusable; a finished model run (say, one that sent nothing)
        # was still checked, against its final log, by the model-aware half.
        invalid.discard("empty-transaction-graph")
    invalid = sorted(invalid)
    stats: dict[str, Any] = {**theirs["stats"], **ours.stats,
                             "anomaly-types": sorted(anomalies),
                             "bad-anomaly-types": invalid}
    return Verdict(anomalies, guarantee(invalid), stats, tuple(invalid))


def excuse_records_before_start(found: Anomalies, obs: Observations) -> Anomalies:
    """Jepsen's ``unseen`` and ``lost-write`` without the records the consumer was never
    meant to read: those in the final log below where it first started
    (``auto.offset.reset=latest``).

    Why: Jepsen's workload always starts consumers at the earliest offset, so to it an
    acknowledged record nobody read is lost; a Kafka consumer that starts at the log end
    skips older records by design, and the model-aware checker does not expect them to
    be processed either (``invariants.delivery``).  Records missing from the final log,
    or at or after the start, are never excused.
    """
    if obs.final_logs is None:
        return found

    def excused(key: Any, value: Any) -> bool:
        if type(key) is not int:
            return False
        start = obs.baselines.get(key)
        return any(v == value and (start is None or offset < start)
                   for offset, v, *_ in obs.committed_rows(key))

    out = dict(found)
    if "lost-write" in out:
        kept = [d for d in out["lost-write"] if not excused(d.get("key"), d.get("value"))]
        if kept:
            out["lost-write"] = kept
        else:
            del out["lost-write"]
    if "unseen" in out:
        entries = []
        for d in out["unseen"]:
            values = [v for v in d["values"] if not excused(d["key"], v)]
            if values:
                entries.append({**d, "count": len(values), "values": values})
        if entries:
            out["unseen"] = entries
        else:
            del out["unseen"]
    return out


def merge(first: Anomalies, second: Anomalies) -> Anomalies:
    """``first``'s details, then ``second``'s that do not describe a record already listed
    (per ``IDENTITY``); names sorted."""
    merged: Anomalies = {name: list(details) for name, details in first.items()}
    for name, details in second.items():
        into = merged.setdefault(name, [])
        fields = IDENTITY.get(name)
        known = {tuple(d.get(f) for f in fields) for d in into} if fields else set()
        for detail in details:
            if fields and tuple(detail.get(f) for f in fields) in known:
                continue
            into.append(detail)
    return {name: merged[name] for name in sorted(merged)}
