"""Consumer groups: does each partition have one owner, and do commits only move forward?

Both questions are asked of the events the model records while it runs (the clients'
``assigned`` / ``revoked`` / ``lost``, each naming the partitions it adds or takes away,
the coordinator's ``member-removed`` and ``offsets-committed``), so they need no final
log:

* ``group-overlap``: two members of a group believe they own one partition at the same
  time, both still members as the coordinator sees it (the KIP-848 specification's
  ``NoDoubleClientAssignment``).  A member the coordinator has removed (its session ran
  out, it left, it missed the rebalance) and that has not learned it yet is a zombie: its
  belief is not counted here; what it does meanwhile shows up as duplicate processing
  and refused commits.
* ``offset-regression``: a group's committed offset of a partition moving backwards with
  no reset in between (a consumer resetting its position after truncation, an
  out-of-range fetch or with no committed offset at all is a reset).
"""

from __future__ import annotations

from typing import Any, Iterable

from invariants.anomaly import Anomalies, add
from model.history import INTERNAL, Event

RESETS = ("auto.offset.reset", "truncation", "out-of-range")


def check_groups(events: Iterable[Event], anomalies: Anomalies) -> None:
    holdings: dict[str, tuple[set[int], Any, int]] = {}   # member -> (partitions, gen, at)
    removed: set[str] = set()
    committed: dict[tuple[str, int], tuple[int, int]] = {}  # (group, p) -> (offset, at)
    reset_at: dict[int, int] = {}
    for event in events:
        if event.type != INTERNAL:
            continue
        f, value = event.f, event.value
        if f == "assigned":
            member = value["member"]
            added = set(value["partitions"])
            # A zombie taking up an assignment after its removal is not counted either.
            for other, (theirs, generation, since) in sorted(holdings.items()
                                                             if member not in removed else ()):
                shared = sorted(added & theirs)
                if other != member and other not in removed and shared:
                    for p in shared:
                        add(anomalies, "group-overlap", key=p, members=[other, member],
                            generations=[generation, value["generation"]],
                            since=since, at=event.index)
            kept = holdings.get(member, (set(), None, 0))[0]
            holdings[member] = (kept | added, value["generation"], event.index)
        elif f in ("revoked", "lost"):
            left = holdings.get(value["member"], (set(), None, 0))
            still = left[0] - set(value["partitions"])
            if still:
                holdings[value["member"]] = (still, left[1], left[2])
            else:
                holdings.pop(value["member"], None)
        elif f == "member-removed":
            removed.add(value["member"])
        elif f == "member-joined":
            # A KIP-848 consumer (4.0+) rejoins under its old member id once removed.
            removed.discard(value["member"])
        elif f == "position" and value.get("reason") in RESETS:
            reset_at[value["partition"]] = event.index
        elif f == "offsets-committed":
            group = value["group"]
            for p_text, offset in sorted(value["offsets"].items()):
                p = int(p_text)
                last = committed.get((group, p))
                if (last is not None and offset < last[0]
                        and reset_at.get(p, -1) < last[1]):
                    add(anomalies, "offset-regression", key=p, group=group, previous=last[0],
                        offset=offset, member=value.get("member") or None, at=event.index)
                committed[(group, p)] = (offset, event.index)


REFUSED = ("CommitFailedException", "RebalanceInProgressException", "UNKNOWN_MEMBER_ID",
           "ILLEGAL_GENERATION")


def check_zombies(events: Iterable[Event], processed: dict[int, list[tuple[int, int, int]]],
                  anomalies: Anomalies) -> None:
    """``zombie-processed``: a record processed more than once, one of those times by a
    consumer whose group had already removed it (its session ran out, it missed a
    rebalance, or it left after ``max.poll.interval.ms``) and whose next commit the group
    then refused: Kafka fencing a zombie as designed, and the duplicate it leaves."""
    holder: dict[str, str] = {}           # consumer node -> member whose partitions it holds
    held: dict[str, set[int]] = {}        # consumer node -> the partitions it holds
    gone: dict[str, int] = {}             # member -> when it stopped being a member
    # process event index -> (node, member, when the member had stopped being one)
    zombie_at: dict[int, tuple[str, str, int]] = {}
    refusals: dict[str, list[tuple[int, str]]] = {}  # node -> (index, error)
    for event in events:
        f, value = event.f, event.value
        node = event.process.split(":", 1)[0]
        if f == "assigned":
            holder[node] = value["member"]
            held.setdefault(node, set()).update(value["partitions"])
        elif f in ("revoked", "lost"):
            held.setdefault(node, set()).difference_update(value["partitions"])
            if not held[node]:
                holder.pop(node, None)
        elif f == "member-removed":
            gone.setdefault(value["member"], event.index)
        elif f == "member-joined":
            gone.pop(value["member"], None)
        elif f == "leave-group" and value.get("member"):
            gone.setdefault(value["member"], event.index)
        elif f == "process":
            member = holder.get(node)
            if member is not None and member in gone:
                zombie_at[event.index] = (node, member, gone[member])
        elif f == "commit-refused":
            refusals.setdefault(_node_of(value.get("member", "")), []).append(
                (event.index, value["error"]))
        elif f in ("commit", "auto-commit-failed"):
            error = (event.meta or {}).get("error") if f == "commit" else value.get("error")
            if isinstance(error, str) and error.startswith(REFUSED):
                refusals.setdefault(node, []).append((event.index, error))
    for value, times in sorted(processed.items()):
        if len(times) < 2:
            continue
        for partition, offset, index in times:
            if index not in zombie_at:
                continue
            node, member, removed_at = zombie_at[index]
            refused = [(i, e) for i, e in refusals.get(node, []) if i > index]
            if refused:
                add(anomalies, "zombie-processed", key=partition, value=value, offset=offset,
                    member=member, removed_at=removed_at, processed_at=index,
                    refused_at=refused[0][0], error=refused[0][1],
                    ops=[i for *_, i in times])
                break


def _node_of(member_id: str) -> str:
    """Member ids are ``<client>-<n>`` (Kafka's ``<client.id>-<uuid>``)."""
    return member_id.rsplit("-", 1)[0]
