"""The model-aware checkers, run once over shared observations, and the Verdict record.

``check_events`` is only the model-aware half of a verdict; every caller that judges a
history (hunts, ``replay``, ``check``) goes through ``invariants.verdict.judge``, which
adds Jepsen's analysis, so that they all give the same answer.
"""

from __future__ import annotations

from typing import Any, Iterable

import attrs

from invariants.anomaly import Anomalies
from invariants.delivery import check_delivery
from invariants.groups import check_groups, check_zombies
from invariants.guarantees import guarantee
from invariants.observations import Observations, observe
from invariants.ordering import check_ordering
from invariants.pipeline import check_pipeline
from invariants.visibility import check_visibility
from model.history import Event


@attrs.frozen
class Verdict:
    """Every anomaly found (informational ones included), the guarantee, statistics, and
    ``invalid``: the anomaly names that make the history invalid (what hunts stop on)."""

    anomalies: Anomalies
    guarantee: str
    stats: dict[str, Any]
    invalid: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.invalid

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "guarantee": self.guarantee,
                "anomalies": self.anomalies, "stats": self.stats}


def check_events(events: Iterable[Event]) -> Verdict:
    """The model-aware checkers alone (every anomaly they report makes a history invalid)."""
    return check_observations(observe(events))


def check_observations(obs: Observations) -> Verdict:
    """``check_events`` on facts already extracted (``invariants.verdict`` needs them too)."""
    anomalies: Anomalies = {}
    for violation in obs.invariant_violations:
        detail = dict(violation)
        anomalies.setdefault(detail.pop("name"), []).append(detail)
    if obs.settled is False:
        # The settle phase heals and restarts everything; a cluster that still has not
        # delivered, elected or caught up is a liveness failure (or a model bug).
        detail: dict[str, Any] = {"events": obs.events}
        if obs.unsettled_reason is not None:
            detail["reason"] = obs.unsettled_reason
        anomalies.setdefault("unsettled", []).append(detail)
    check_delivery(obs, anomalies)
    check_pipeline(obs, anomalies)
    check_groups(obs.group_events, anomalies)
    check_zombies(obs.group_events, obs.processed, anomalies)
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
    return Verdict(anomalies, guarantee(anomalies), stats, tuple(anomalies))
