"""Every anomaly name kafkacheck can report, with its family and a one-line meaning.

Why one registry: the model-aware checkers (``invariants.check``) and Jepsen's checker
(``invariants.jepsen``) each name what they find, the verdict merges both, the guarantee
is read off the families, ``hunt --target`` must refuse a name nothing can produce, and
``docs/anomalies.md`` must explain every name.  All of them read this table, so a new
anomaly is added here once (the tests check that every checker's names are registered
and that the docs describe each).

Families say what an anomaly means for someone running Kafka:

* ``loss``: a record the system acknowledged, or committed, is not delivered;
* ``duplication``: a record is stored or delivered more than once, or the producer was
  told a send failed that in fact landed (its retry would duplicate it);
* ``order``: records land in the log out of their producer's order, or reach a consumer
  out of the log's order (skips and re-reads by one consumer: Jepsen measures them in
  positions of the version order, so a duplicate alone already shows up as a skip and a
  re-read; whether records were really lost or processed twice is for the loss and
  duplication anomalies to say);
* ``visibility``: readers see data that is not (or not stably) committed;
* ``liveness``: the cluster never recovered after every fault was repaired;
* ``ownership``: what a consumer group's members own and commit: two live members owned
  one partition at once (which Kafka's protocols promise never happens), or a committed
  offset moved backwards (which Kafka lets a commit request that arrives late do: an
  OffsetCommit carries no sequence);
* ``informational``: reported, never makes a history invalid (Kafka does not promise it);
* ``inconclusive``: the checker could not decide (nothing to check, or out of time).

The guarantee (``invariants.guarantees``) is decided by ``loss`` and ``duplication``.
"""

from __future__ import annotations

import attrs

FAMILIES = ("loss", "duplication", "order", "visibility", "liveness", "ownership",
            "informational", "inconclusive")
MODEL, JEPSEN, BOTH = "model-aware", "Jepsen", "both"


@attrs.frozen
class AnomalyKind:
    name: str
    family: str = attrs.field(validator=attrs.validators.in_(FAMILIES))
    found_by: str = attrs.field(validator=attrs.validators.in_((MODEL, JEPSEN, BOTH)))
    meaning: str


ANOMALY_KINDS: tuple[AnomalyKind, ...] = (
    # -- loss --------------------------------------------------------------------------
    AnomalyKind("lost-write", "loss", BOTH,
                "an acknowledged send is missing from the log (or readers moved past it)"),
    AnomalyKind("unseen", "loss", JEPSEN,
                "an acknowledged send that no successful poll ever returned"),
    AnomalyKind("processed-zero-times", "loss", MODEL,
                "a committed record the consumer application never processed"),
    AnomalyKind("never-consumed", "loss", MODEL,
                "a committed record written before the consumers started at the log end "
                "(auto.offset.reset=latest with no committed offset), so never consumed"),
    AnomalyKind("output-lost", "loss", MODEL,
                "a consume-transform-produce pipeline's input record of which its output's "
                "reader sees no transform"),
    AnomalyKind("committed-prefix-changed", "loss", MODEL,
                "a record below the high watermark was later changed or removed"),
    # -- duplication -------------------------------------------------------------------
    AnomalyKind("duplicate", "duplication", BOTH,
                "one value stored at more than one offset"),
    AnomalyKind("processed-more-than-once", "duplication", MODEL,
                "a record the consumer application processed more than once"),
    AnomalyKind("output-duplicated", "duplication", MODEL,
                "a consume-transform-produce pipeline's input record whose transform its "
                "output's reader sees more than once"),
    AnomalyKind("zombie-processed", "duplication", MODEL,
                "a record processed twice, once by a consumer its group had already removed "
                "and whose next commit the group refused"),
    AnomalyKind("G1a", "duplication", BOTH,
                "aborted read: a record reported failed, or of an aborted or never-committed "
                "transaction, was stored or read"),
    # -- order -------------------------------------------------------------------------
    AnomalyKind("reorder", "order", MODEL,
                "two sends of one producer and record key stored in the opposite order "
                "(the earlier one acknowledged)"),
    AnomalyKind("nonmonotonic-send", "order", JEPSEN,
                "a producer's later operation landed before its earlier one"),
    AnomalyKind("int-nonmonotonic-send", "order", JEPSEN,
                "two sends inside one operation landed in the opposite order"),
    AnomalyKind("poll-skip", "order", JEPSEN,
                "a consumer's successive polls of a partition jumped over records"),
    AnomalyKind("int-poll-skip", "order", JEPSEN,
                "records jumped over inside one poll (or one transaction's polls)"),
    AnomalyKind("nonmonotonic-poll", "order", JEPSEN,
                "a consumer's poll went back to records it had already been given"),
    AnomalyKind("int-nonmonotonic-poll", "order", JEPSEN,
                "records out of log order inside one poll (or one transaction's polls)"),
    # -- visibility --------------------------------------------------------------------
    AnomalyKind("uncommitted-read", "visibility", MODEL,
                "a consumer saw a record that is not in the final log at that offset"),
    AnomalyKind("inconsistent-offsets", "visibility", BOTH,
                "one offset reported holding two different values"),
    AnomalyKind("precommitted-read", "visibility", JEPSEN,
                "a transaction polled its own uncommitted send"),
    AnomalyKind("torn-transaction", "visibility", MODEL,
                "some records of one producer transaction committed, others aborted or lost"),
    AnomalyKind("G1c", "visibility", JEPSEN,
                "circular information flow: a cycle of write-read dependencies"),
    AnomalyKind("G1c-realtime", "visibility", JEPSEN,
                "a G1c cycle that also needs real-time order"),
    # -- liveness ----------------------------------------------------------------------
    AnomalyKind("unsettled", "liveness", MODEL,
                "after healing and restarting everything the cluster never caught up"),
    AnomalyKind("hanging-transaction", "liveness", MODEL,
                "a partition's last stable offset stays below its high watermark for good"),
    # -- ownership ---------------------------------------------------------------------
    AnomalyKind("group-overlap", "ownership", MODEL,
                "two members of a group owned one partition at the same time"),
    AnomalyKind("offset-regression", "ownership", MODEL,
                "a group's committed offset of a partition moved backwards without a reset"),
    # -- informational (allowed) -------------------------------------------------------
    AnomalyKind("int-send-skip", "informational", JEPSEN,
                "other producers' records landed between one operation's sends"),
    AnomalyKind("G0", "informational", JEPSEN,
                "write cycle: two operations' writes interleave in opposite orders"),
    AnomalyKind("G0-realtime", "informational", JEPSEN,
                "a write cycle that also needs real-time order"),
    AnomalyKind("G-single", "informational", JEPSEN,
                "read skew: a cycle with exactly one anti-dependency"),
    AnomalyKind("G2", "informational", JEPSEN,
                "write skew: a cycle with two or more anti-dependencies"),
    # -- inconclusive ------------------------------------------------------------------
    AnomalyKind("empty-transaction-graph", "inconclusive", JEPSEN,
                "no dependency between operations at all: nothing was checked"),
    AnomalyKind("cycle-search-timeout", "inconclusive", JEPSEN,
                "the cycle search of one component ran out of time"),
)

BY_NAME: dict[str, AnomalyKind] = {kind.name: kind for kind in ANOMALY_KINDS}
ANOMALY_NAMES: tuple[str, ...] = tuple(sorted(BY_NAME))


def family_of(name: str) -> str | None:
    kind = BY_NAME.get(name)
    return kind.family if kind is not None else None


def names_in(family: str) -> tuple[str, ...]:
    """The registered names of one family, sorted."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    return tuple(sorted(k.name for k in ANOMALY_KINDS if k.family == family))


def target_names() -> tuple[str, ...]:
    """The names a hunt can stop for: every registered one that is not informational
    (informational anomalies never make a run invalid)."""
    return tuple(n for n in ANOMALY_NAMES if BY_NAME[n].family != "informational")


def markdown_table() -> str:
    """The index table of docs/anomalies.md (a test keeps the two identical)."""
    rows = ["| anomaly | family | found by | meaning |", "|---|---|---|---|"]
    for family in FAMILIES:
        for kind in ANOMALY_KINDS:
            if kind.family == family:
                rows.append(f"| `{kind.name}` | {family} | {kind.found_by} | {kind.meaning} |")
    return "\n".join(rows) + "\n"
