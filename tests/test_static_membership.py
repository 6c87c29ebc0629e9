"""Static membership (KIP-345, ``group.instance.id``), each test written from Kafka's
behaviour: the coordinator's ``updateStaticMemberThenRebalanceOrCompleteJoin`` and
``ClassicGroup.validateMember`` (GroupMetadataManager), the client's
``AbstractCoordinator.maybeLeaveGroup`` and its handling of FENCED_INSTANCE_ID.
"""

from __future__ import annotations

from typing import Any

from model import actions as a
from model import messages as m
from model.broker.classic_group import STABLE
from tests.scenario import Scenario
from tests.test_groups import coordinator, flush, form, group, poll_all, the_group


def static(**settings: Any) -> Scenario:
    return form(group(group_instance_id="app", **settings))


def rounds(s: Scenario, seconds: int) -> Scenario:
    for _ in range(seconds):
        s.tick(1000)
        poll_all(s)
        flush(s, 3)
    return s


def states_since(s: Scenario, start: int) -> list[str]:
    return [e.value["state"] for e in s.cluster.history[start:]
            if e.f == "group-state"]


def test_static_members_join_without_member_id_required_under_their_instance_ids() -> None:
    """A static member's first JoinGroup is accepted at once (KIP-394's
    MEMBER_ID_REQUIRED is for dynamic members), and its member id starts with its
    group.instance.id; kafkacheck gives consumer cN the id <group.instance.id>-cN."""
    s = static()
    g = the_group(s)
    assert sorted(mb.instance_id for mb in g.members.values()) == ["app-c0", "app-c1"]
    assert all(mb.member_id.startswith(mb.instance_id + "-") for mb in g.members.values())
    assert not [e for e in s.cluster.history if e.f == "join-failed"]


def test_a_restarted_static_member_gets_its_partitions_back_without_a_rebalance() -> None:
    """updateStaticMemberThenRebalanceOrCompleteJoin: a known instance joining with no
    member id in a Stable group whose protocol does not change replaces its old member
    id, the group is stored, and the JoinGroup is answered with the current generation:
    no rebalance, and SyncGroup gives the old assignment back.  A dynamic member
    restarted the same way joins as a new member: a rebalance starts, and waits for the
    old member id's session to run out."""
    outcomes = {}
    for instance in ("app", None):
        settings = {"group_instance_id": instance} if instance else {}
        s = form(group(**settings))
        generation = the_group(s).generation
        owned = list(s.cluster.consumers["c0"].partitions)
        start = len(s.cluster.history)
        s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0"))
        rounds(s, 10)
        g = the_group(s)
        outcomes[instance] = (g.generation - generation, states_since(s, start),
                              s.cluster.consumers["c0"].partitions == owned)
    assert outcomes["app"] == (0, [], True)
    _, states, got_back = outcomes[None]
    # The rebalance waits for the old member id's session to run out meanwhile.
    assert states == ["PreparingRebalance"] and not got_back


def test_the_replaced_member_id_is_fenced() -> None:
    """ClassicGroup.validateMember: once an instance maps to a new member id, requests
    naming the old one with that instance id are answered FENCED_INSTANCE_ID
    (heartbeat, SyncGroup, OffsetCommit); an instance the group does not know is
    UNKNOWN_MEMBER_ID."""
    s = static()
    old = next(mb.member_id for mb in the_group(s).members.values()
               if mb.instance_id == "app-c0")
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0"))
    rounds(s, 5)
    g = the_group(s)
    new = g.static_member("app-c0")
    assert new is not None and new != old
    replaced = s.internal("static-member-replaced")
    assert [(e.value["old"], e.value["new"]) for e in replaced] == [(old, new)]
    c = coordinator(s)
    assert c.heartbeat("kafkacheck", old, g.generation, "app-c0") == m.FENCED_INSTANCE_ID
    assert c.heartbeat("kafkacheck", new, g.generation, "app-c0") is None
    assert c.heartbeat("kafkacheck", old, g.generation, "app-c9") == m.UNKNOWN_MEMBER_ID
    assert c._validate_commit("kafkacheck", g.generation, old,
                              instance_id="app-c0") == m.FENCED_INSTANCE_ID
    answers: list[Any] = []
    original = c.broker.reply
    c.broker.reply = lambda src, gen, resp: answers.append(resp)
    try:
        c.sync("c0", 0, m.SyncGroupRequest(-1, "kafkacheck", g.generation, old, (),
                                           "app-c0"))
    finally:
        c.broker.reply = original
    assert answers == [m.SyncGroupResponse(-1, m.FENCED_INSTANCE_ID)]


def test_a_fenced_static_consumer_ends_its_process() -> None:
    """FencedInstanceIdException is fatal: poll() (from the heartbeat's answer) throws
    it and the application ends; kafkacheck records the end as the process's crash."""
    s = static()
    consumer = s.cluster.consumers["c0"]
    consumer.membership.on_heartbeat(m.FENCED_INSTANCE_ID)
    assert not consumer.alive
    ends = [op for op in s.ops("crash") if op.process.startswith("c0")]
    assert ends and ends[-1].meta == {"error": "FencedInstanceIdException"}
    assert [e.value["error"] for e in s.internal("fenced")] == [m.FENCED_INSTANCE_ID]


def test_a_closed_static_member_sends_no_leave_group_and_stays_until_its_session_ends() -> None:
    """maybeLeaveGroup: "only dynamic members will send LeaveGroupRequest" (2.3+); a
    closed static member keeps its partitions in the group until session.timeout.ms
    (45 s) runs out, then the group rebalances them to the other member."""
    s = static(enable_auto_commit="false")
    owned = list(s.cluster.consumers["c0"].partitions)
    start = len(s.cluster.history)
    closing = s.cluster.consumers["c0"]
    closing.close()                   # KafkaConsumer.close(): maybeLeaveGroup
    assert closing.membership.leave is None and not closing.alive
    assert the_group(s).static_member("app-c0") is not None
    rounds(s, 30)
    assert the_group(s).state == STABLE and states_since(s, start) == []
    rounds(s, 30)
    removed = [e.value["reason"] for e in s.internal("member-removed")]
    assert removed == ["session timeout"]
    assert sorted(s.cluster.consumers["c1"].partitions) == sorted(
        owned + [p for p in (0, 1) if p not in owned])


def test_a_failed_store_of_the_replacement_restores_the_old_member_id(
        monkeypatch: Any) -> None:
    """updateStaticMemberThenRebalanceOrCompleteJoin: when the group cannot be stored
    with the new member id, the replacement is undone (``replaceStaticMember`` back to
    the old id, its protocols and timeouts restored) and the JoinGroup is answered with
    the error; the client joins again and the next store succeeds."""
    from model.broker.classic_group import group_key
    from model.broker.partition import Partition
    from model.clients.membership import GroupMembership

    s = static()
    old = next(mb.member_id for mb in the_group(s).members.values()
               if mb.instance_id == "app-c0")
    original = Partition.append_as_leader
    failed: list[str] = []

    def append(self: Any, records: Any, acks: str, timeout_ms: int, complete: Any,
               *args: Any, **kwargs: Any) -> None:
        if not failed and any(key == group_key("kafkacheck") for key, _, _ in records):
            complete(m.NOT_ENOUGH_REPLICAS, None)
            failed.append({mb.instance_id: mb.member_id
                           for mb in the_group(s).members.values()}["app-c0"])
            return
        original(self, records, acks, timeout_ms, complete, *args, **kwargs)

    monkeypatch.setattr(Partition, "append_as_leader", append)
    answers: list[str | None] = []
    on_join = GroupMembership.on_join_response

    def join_response(self: Any, resp: m.JoinGroupResponse) -> None:
        if self.name == "c0":
            answers.append(resp.error)
        on_join(self, resp)

    monkeypatch.setattr(GroupMembership, "on_join_response", join_response)
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0"))
    for _ in range(10):
        rounds(s, 1)
        if failed:
            break
    assert failed == [old]          # right after the failed store: the old id is back
    # The store's NOT_ENOUGH_REPLICAS reaches the client as COORDINATOR_NOT_AVAILABLE
    # (GroupMetadataManager.storeGroup's error mapping).
    assert answers == [m.COORDINATOR_NOT_AVAILABLE]
    rounds(s, 10)
    g = the_group(s)
    new = {mb.instance_id: mb.member_id for mb in g.members.values()}["app-c0"]
    assert new != old and s.cluster.consumers["c0"].membership.member_id == new
    assert s.cluster.consumers["c0"].membership.stable
