"""Which anomalies Jepsen tolerates in Kafka, and so whether a history is valid.

Kafka promises less than a database: writes are not isolated (so write cycles, G0, are
normal), a transaction's sends interleave with other producers' (``int-send-skip``), and
consumers using ``subscribe`` are rebalanced between polls (so skips and re-reads across
ops are expected).  With ``ww_deps`` the ww edges are inferred from offsets and make G1c
cycles normal too.  Anti-dependency cycles (G-single, G2) are kafkacheck's additions:
Kafka never promised snapshot reads across partitions, so they are reported for
information and never invalidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SUB_VIA_CHOICES = ("assign", "subscribe")

ALWAYS_ALLOWED = frozenset({
    "int-send-skip",
    "G0", "G0-process", "G0-realtime",
    # kafkacheck's informational additions
    "G-single", "G-single-realtime", "G2", "G2-realtime",
})
ALLOWED_WITH_SUBSCRIBE = frozenset({"poll-skip", "nonmonotonic-poll"})
ALLOWED_WITH_WW_DEPS = frozenset({"G1c", "G1c-process", "G1c-realtime"})


def parse_sub_via(sub_via: str | Iterable[str]) -> frozenset[str]:
    """``"assign"``, ``"subscribe"``, or both (a collection or ``"assign,subscribe"``)."""
    parts = sub_via.split(",") if isinstance(sub_via, str) else list(sub_via)
    out = frozenset(p.strip() for p in parts if p.strip())
    bad = sorted(out - set(SUB_VIA_CHOICES))
    if bad or not out:
        raise ValueError(f"sub_via must be 'assign' or 'subscribe' (or both), got {sub_via!r}")
    return out


def allowed_anomalies(*, ww_deps: bool, sub_via: frozenset[str]) -> frozenset[str]:
    allowed = set(ALWAYS_ALLOWED)
    if "subscribe" in sub_via:
        allowed |= ALLOWED_WITH_SUBSCRIBE
    if ww_deps:
        allowed |= ALLOWED_WITH_WW_DEPS
    return frozenset(allowed)


def bad_anomaly_types(found: Mapping[str, list[dict]], allowed: frozenset[str]) -> list[str]:
    """Anomaly types that make the history invalid.

    A ``cycle-search-timeout`` counts only if the abandoned search could have found a type
    that is not allowed: giving up on an informational G2 search proves nothing bad.
    """
    bad = []
    for name, cases in found.items():
        if name in allowed:
            continue
        if name == "cycle-search-timeout" and not any(
                t not in allowed
                for case in cases
                for t in [case.get("anomaly-spec-type"), *case.get("not-searched", ())]):
            continue
        bad.append(name)
    return sorted(bad)
