"""The consumer-group checkers (invariants/groups.py) on hand-written event streams."""

from __future__ import annotations

from typing import Any

from invariants.anomaly import Anomalies
from invariants.groups import check_groups, check_zombies
from invariants.observations import observe
from model.history import Event


def events(*specs: tuple[str, str, str, Any]) -> list[Event]:
    """(process, type, f, value) -> events with consecutive indices."""
    return [Event(i, i, i * 1000, process, type_, f, value)
            for i, (process, type_, f, value) in enumerate(specs)]


def groups(stream: list[Event]) -> Anomalies:
    found: Anomalies = {}
    check_groups(stream, found)
    return found


def assigned(node: str, member: str, generation: int, *partitions: int) -> tuple:
    return (node, "internal", "assigned",
            {"member": member, "generation": generation, "partitions": list(partitions)})


def test_two_live_members_owning_one_partition_overlap() -> None:
    """KIP-848 NoDoubleClientAssignment: c1 is assigned partition 0 while c0, still a
    member, has not revoked it."""
    found = groups(events(assigned("c0", "c0-1", 1, 0, 1), assigned("c1", "c1-2", 2, 0)))
    assert [d["members"] for d in found["group-overlap"]] == [["c0-1", "c1-2"]]


def test_a_revoked_or_removed_owner_is_no_overlap() -> None:
    revoked = events(assigned("c0", "c0-1", 1, 0),
                     ("c0", "internal", "revoked", {"member": "c0-1", "partitions": [0]}),
                     assigned("c1", "c1-2", 2, 0))
    removed = events(assigned("c0", "c0-1", 1, 0),
                     ("b0", "internal", "member-removed", {"member": "c0-1"}),
                     assigned("c1", "c1-2", 2, 0))
    assert groups(revoked) == {} and groups(removed) == {}


def committed(offset: int, member: str = "c0-1") -> tuple:
    return ("b0", "internal", "offsets-committed",
            {"group": "g", "offsets": {"0": offset}, "member": member})


def test_a_committed_offset_moving_back_is_a_regression_unless_a_reset_came_between() -> None:
    found = groups(events(committed(5), committed(3)))
    assert [(d["previous"], d["offset"]) for d in found["offset-regression"]] == [(5, 3)]
    reset = ("c0", "internal", "position",
             {"partition": 0, "offset": 3, "reason": "truncation"})
    assert groups(events(committed(5), reset, committed(3))) == {}


def test_a_zombie_whose_commit_was_refused_processed_a_record_twice() -> None:
    stream = events(
        assigned("c0", "c0-1", 1, 0),
        ("b0", "internal", "member-removed", {"member": "c0-1"}),
        ("c0:0", "ok", "process", [0, 0, 7]),
        ("b0", "internal", "commit-refused", {"member": "c0-1", "error": "UNKNOWN_MEMBER_ID"}),
        assigned("c1", "c1-2", 2, 0),
        ("c1:0", "ok", "process", [0, 0, 7]))
    found: Anomalies = {}
    check_zombies(stream, {7: [(0, 0, 2), (0, 0, 5)]}, found)
    [detail] = found["zombie-processed"]
    assert (detail["member"], detail["error"], detail["processed_at"]) == (
        "c0-1", "UNKNOWN_MEMBER_ID", 2)
    # Without the refused commit, or processed by a live member, it is plain duplication.
    found = {}
    check_zombies([e for e in stream if e.f != "commit-refused"],
                  {7: [(0, 0, 2), (0, 0, 5)]}, found)
    assert found == {}
    found = {}
    check_zombies([e for e in stream if e.f != "member-removed"],
                  {7: [(0, 0, 2), (0, 0, 5)]}, found)
    assert found == {}


def test_a_member_that_rejoined_under_its_old_id_is_no_zombie_kip_1082() -> None:
    """KIP-1082 (4.0+): a fenced or removed KIP-848 consumer rejoins with the member id
    it generated, so ``member-joined`` ends its removal.  The events go through
    ``observe`` as in a verdict: the checkers must be handed the rejoin to see it."""
    rejoin = ("b0", "internal", "member-joined", {"group": "g", "member": "c0-1"})
    stream = events(
        assigned("c0", "c0-1", 1, 0),
        ("b0", "internal", "member-removed", {"member": "c0-1"}),
        rejoin,
        assigned("c0", "c0-1", 3, 0),
        ("c0:0", "ok", "process", [0, 0, 7]),
        ("b0", "internal", "commit-refused", {"member": "c0-1", "error": "UNKNOWN_MEMBER_ID"}),
        ("c0", "internal", "revoked", {"member": "c0-1", "partitions": [0]}),
        assigned("c1", "c1-2", 4, 0),
        ("c1:0", "ok", "process", [0, 0, 7]))
    obs = observe(stream)
    found: Anomalies = {}
    check_zombies(obs.group_events, obs.processed, found)
    assert found == {}
    # The same stream without the rejoin: c0-1 processed as a removed member.
    obs = observe([e for e in stream if e.f != "member-joined"])
    found = {}
    check_zombies(obs.group_events, obs.processed, found)
    assert [d["member"] for d in found["zombie-processed"]] == ["c0-1"]


def test_a_zombie_that_rejoins_before_its_refused_commit_is_still_a_zombie() -> None:
    """Processed while removed, then back in the group (KIP-1082), then refused: the
    processing was a zombie's, and the report keeps when its member had been removed."""
    stream = events(
        assigned("c0", "c0-1", 1, 0),
        ("b0", "internal", "member-removed", {"member": "c0-1"}),
        ("c0:0", "ok", "process", [0, 0, 7]),
        ("b0", "internal", "member-joined", {"group": "g", "member": "c0-1"}),
        ("b0", "internal", "commit-refused", {"member": "c0-1", "error": "UNKNOWN_MEMBER_ID"}),
        assigned("c1", "c1-2", 2, 0),
        ("c1:0", "ok", "process", [0, 0, 7]))
    obs = observe(stream)
    found: Anomalies = {}
    check_zombies(obs.group_events, obs.processed, found)
    [detail] = found["zombie-processed"]
    assert (detail["removed_at"], detail["processed_at"]) == (1, 2)
