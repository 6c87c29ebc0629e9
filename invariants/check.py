"""Check a whole history: run every checker once over shared observations."""

from __future__ import annotations

from typing import Any, Iterable

import attrs

from invariants.anomaly import Anomalies
from invariants.delivery import check_delivery
from invariants.guarantees import guarantee
from invariants.observations import observe
from invariants.ordering import check_ordering
from invariants.visibility import check_visibility
from model.history import Event


@attrs.frozen
class Verdict:
    anomalies: Anomalies
    guarantee: str
    stats: dict[str, Any]

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "guarantee": self.guarantee,
                "anomalies": self.anomalies, "stats": self.stats}


def check_events(events: Iterable[Event]) -> Verdict:
    obs = observe(events)
    anomalies: Anomalies = {}
    for violation in obs.invariant_violations:
        detail = dict(violation)
        anomalies.setdefault(detail.pop("name"), []).append(detail)
    if obs.settled is False:
        # The settle phase heals and restarts everything; a cluster that still has not
        # delivered, elected or caught up is a liveness failure (or a model bug).
        anomalies.setdefault("unsettled", []).append({"events": obs.events})
    check_delivery(obs, anomalies)
    check_visibility(obs, anomalies)
    check_ordering(obs, anomalies)
    anomalies = {name: anomalies[name] for name in sorted(anomalies)}
    stats = {
        "events": obs.events,
        "sends": len(obs.sends),
        "acknowledged": sum(1 for s in obs.sends.values() if s.outcome == "ok"),
        "reads": len(obs.reads),
        "processed": sum(len(v) for v in obs.processed.values()),
        "final-log": obs.final_logs is not None,
    }
    return Verdict(anomalies, guarantee(anomalies), stats)
