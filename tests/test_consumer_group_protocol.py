"""KIP-848 consumer groups (``group.protocol=consumer``), scripted.

Each test names the Kafka class whose behaviour it pins down: the coordinator's
``GroupMetadataManager`` / ``CurrentAssignmentBuilder``, the new consumer's
``ConsumerMembershipManager`` / ``CommitRequestManager``.
"""

from __future__ import annotations

from typing import Any

from model import actions as a
from model import messages as m
from model.broker.consumer_group import (STABLE, UNRELEASED_PARTITIONS, UNREVOKED_PARTITIONS,
                                         ConsumerGroup, ConsumerMember)
from tests.scenario import Scenario
from tests.test_groups import (commit_async_while_the_lookup_fails, coordinator, flush,
                               flush_except, poll_all)


def group(**settings: Any) -> Scenario:
    settings = {"kafkacheck.consumer.api": "subscribe", "kafkacheck.consumers": "2",
                "kafkacheck.partitions": "2", "enable.auto.commit": "false",
                "group.protocol": "consumer", **settings}
    return Scenario(**{k.replace(".", "_"): v for k, v in settings.items()})


def owners(s: Scenario) -> dict[int, list[str]]:
    held: dict[int, list[str]] = {}
    for name, consumer in s.cluster.consumers.items():
        if consumer.alive:
            for p in consumer.partitions:
                held.setdefault(p, []).append(name)
    return held


def form(s: Scenario, rounds: int = 40) -> Scenario:
    """Poll, deliver, let a second pass, until every member is STABLE with partitions;
    no partition has two owners at any point on the way."""
    for _ in range(rounds):
        poll_all(s)
        for _ in range(4):
            flush(s)
            assert all(len(names) == 1 for names in owners(s).values()), owners(s)
        consumers = s.cluster.consumers.values()
        if all(c.membership.stable and c.partitions for c in consumers):
            return s
        s.tick(1000)
    raise AssertionError("the group did not form")


def the_group(s: Scenario) -> Any:
    return coordinator(s).consumer_groups.group("kafkacheck")


def test_a_partition_moves_only_after_its_owner_revoked_it() -> None:
    """CurrentAssignmentBuilder: the first member gets both partitions; when the second
    joins, the target splits them, and the second is given its partition only after
    the first has revoked it and said so in a heartbeat (UNRELEASED_PARTITIONS until
    then).  Every member ends at the group's epoch."""
    s = form(group())
    g = the_group(s)
    assert g.state() == "STABLE" and g.group_epoch == 2 == g.assignment_epoch
    assert sorted(p for c in s.cluster.consumers.values() for p in c.partitions) == [0, 1]
    states = [(e.value["member"], e.value["state"]) for e in s.internal("member-assignment")]
    second = states[1][0]
    assert (second, "UNRELEASED_PARTITIONS") in states
    revoked = s.internal("revoked")[0]
    assigned_later = [e for e in s.internal("assigned")
                      if e.value["member"] == second and e.value["partitions"]]
    assert revoked.index < assigned_later[0].index
    assert revoked.value["partitions"] == assigned_later[0].value["partitions"]
    assert {c.membership.epoch for c in s.cluster.consumers.values()} == {2}


def test_a_paused_member_is_removed_after_its_session_and_its_commit_refused() -> None:
    """A GC pause past group.consumer.session.timeout.ms (45 s): the coordinator
    removes the member, bumps the group epoch and frees its partition at once; the other
    member takes it.  The zombie's commitSync is refused (UNKNOWN_MEMBER_ID,
    CommitFailedException) and its next heartbeat fences it: it loses its partitions
    and joins again."""
    s = form(group(kafkacheck_commit_strategy="after-processing"))
    s.send("k0").flush(4)
    zombie = next(n for n, c in s.cluster.consumers.items() if c.partitions == [s.partition("k0")])
    other = "c1" if zombie == "c0" else "c0"
    s.poll_records(zombie)
    s.do(a.Process(zombie)).do(a.Pause(zombie))
    for _ in range(8):
        s.tick(10000)
        poll_all(s)
        flush(s, 6)
    assert [e.value["reason"] for e in s.internal("member-removed")] == ["session timeout"]
    assert sorted(s.cluster.consumers[other].partitions) == [0, 1]
    s.do(a.Resume(zombie)).do(a.Commit(zombie))
    flush(s, 3)
    commit = [op for op in s.ops("commit") if op.process.startswith(zombie)][-1]
    assert commit.type == "fail" and commit.meta["error"].startswith("CommitFailedException")
    assert [e.value["error"] for e in s.internal("commit-refused")] == [m.UNKNOWN_MEMBER_ID]
    s.tick(5000)
    flush(s, 3)
    assert [e.value["error"] for e in s.internal("heartbeat-error")
            if e.process == zombie] == [m.UNKNOWN_MEMBER_ID]
    assert s.cluster.consumers[zombie].partitions == []
    assert [e.value["reason"] for e in s.internal("lost")] == [m.UNKNOWN_MEMBER_ID]


def test_a_busy_application_past_max_poll_interval_leaves_and_rejoins_on_poll() -> None:
    """ConsumerHeartbeatRequestManager's poll timer: no poll() for max.poll.interval.ms
    and the member leaves (epoch -1) and goes STALE, its partitions lost with nothing
    committed; the next poll() joins again (epoch 0, the same member id since
    KIP-1082)."""
    s = form(group(max_poll_interval_ms="60000"))
    s.send("k0").flush(4)
    busy = next(n for n, c in s.cluster.consumers.items() if c.partitions == [s.partition("k0")])
    membership = s.cluster.consumers[busy].membership
    member_id = membership.member_id
    s.poll_records(busy)
    for _ in range(7):
        s.tick(10000)
        flush(s, 3)
    assert [e.value["reason"] for e in s.internal("leave-group")] == [
        "max.poll.interval.ms expired"]
    assert [e.value["reason"] for e in s.internal("member-removed")] == ["left the group"]
    assert membership.state == "STALE" and s.cluster.consumers[busy].partitions == []
    assert not s.internal("auto-commit")
    s.do(a.Process(busy)).do(a.Commit(busy))
    flush(s, 3)
    form(s)
    assert membership.member_id == member_id
    joined = [e.value["member"] for e in s.internal("member-joined")]
    assert joined.count(member_id) == 2


def _auto_commit_while_processing(version: str) -> Scenario:
    s = group(kafka_version=version, kafkacheck_consumers="1",
              enable_auto_commit="true", kafkacheck_commit_strategy="none")
    form(s)
    s.send("k0").flush(4)
    s.poll_records("c0")
    for _ in range(3):                         # 15 s of processing one record
        s.tick(5000)
        flush(s, 3)
    return s


def _restart_and_rejoin(s: Scenario) -> None:
    """The process dies and starts again as a new member; the dead one holds its
    partitions until its session (45 s) runs out."""
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0"))
    for _ in range(60):
        s.tick(1000)
        poll_all(s)
        flush(s, 4)
    assert [e.value["reason"] for e in s.internal("member-removed")] == ["session timeout"]
    form(s)


def test_before_kafka_18641_the_background_thread_auto_commits_unprocessed_records() -> None:
    """KAFKA-18641 (3.7 to 3.9): CommitRequestManager.poll auto-commits allConsumed()
    from the background thread whenever the interval passes, so a record poll()
    returned and the application is still processing is committed; if the process
    dies then, nothing ever processes it."""
    s = _auto_commit_while_processing("3.9")
    p = s.partition("k0")
    commits = [e.value for e in s.internal("auto-commit")]
    assert any(c["offsets"].get(str(p)) == 1 and c["reason"] == "interval (background thread)"
               for c in commits)
    _restart_and_rejoin(s)
    for _ in range(3):
        poll_all(s)
        flush(s, 2)
    assert not s.ops("process", "ok")
    assert s.cluster.consumers["c0"].positions[p] == 1


def test_since_kafka_18641_auto_commit_waits_for_the_next_poll() -> None:
    """The fix (4.0): auto-commit only in poll(), before it fetches, so it covers what
    earlier polls returned; the crashed process's record is processed after restart."""
    s = _auto_commit_while_processing("4.0")
    p = s.partition("k0")
    assert not any(e.value["offsets"].get(str(p)) == 1 for e in s.internal("auto-commit"))
    _restart_and_rejoin(s)
    if not s.cluster.consumers["c0"].pending:
        s.poll_records("c0")
    s.do(a.Process("c0"))
    assert [op.value[1] for op in s.ops("process", "ok")] == [0]


def test_a_new_coordinator_loads_the_group_and_keeps_its_members() -> None:
    """CoordinatorRuntime replays __consumer_offsets on the new leader (onLoaded re-arms
    every session): the members keep their epochs and partitions, no rebalance."""
    s = form(group())
    old = s.leader("__consumer_offsets-40")
    before = {n: (c.membership.epoch, list(c.partitions)) for n, c in s.cluster.consumers.items()}
    s.do(a.Crash(old))
    for _ in range(20):
        s.tick(1000)
        poll_all(s)
        flush(s, 3)
    assert s.leader("__consumer_offsets-40") not in (None, old)
    loaded = [e for e in s.internal("group-loaded") if e.value.get("protocol") == "consumer"]
    assert loaded and loaded[-1].value["epoch"] == 2
    after = {n: (c.membership.epoch, list(c.partitions)) for n, c in s.cluster.consumers.items()}
    assert after == before
    assert not s.internal("member-removed")


def test_a_changed_heartbeat_interval_restarts_the_timer_from_the_answer() -> None:
    """HeartbeatRequestManager (3.9) / AbstractHeartbeatRequestManager (4.0),
    updateHeartbeatIntervalMs: the timer starts when a heartbeat is sent, with the
    interval known then, and only an answer carrying a different interval restarts it,
    from the answer.  The join goes out with an interval of 0, so its answer (5000) is
    what spaces the next heartbeat: the model used to send one at once."""
    s = form(group())
    membership = s.cluster.consumers["c0"].membership
    s.tick(5000)
    membership.maybe_heartbeat()
    sent = membership.request
    assert sent is not None and membership.next_heartbeat_at == sent.sent_at + 5000
    s.tick(1000)
    membership.on_heartbeat_response(m.ConsumerGroupHeartbeatResponse(
        sent.corr, None, membership.member_id, membership.epoch, 5000, None))
    assert membership.next_heartbeat_at == sent.sent_at + 5000      # same interval
    membership.maybe_heartbeat()
    again = membership.request
    assert again is None
    s.tick(4000)
    membership.maybe_heartbeat()
    again = membership.request
    assert again is not None
    s.tick(1000)
    membership.on_heartbeat_response(m.ConsumerGroupHeartbeatResponse(
        again.corr, None, membership.member_id, membership.epoch, 3000, None))
    assert membership.next_heartbeat_at == s.cluster.ctx.now + 3000  # changed: restarted


def test_positions_of_new_partitions_are_looked_up_only_when_the_application_polls() -> None:
    """AsyncKafkaConsumer.updateFetchPositions (3.9 and 4.0): the OffsetFetch for newly
    assigned partitions is sent for a CheckAndUpdatePositionsEvent, which only poll()
    sends; the background thread reconciles the assignment but looks up nothing.  A
    member that does not poll after its assignment therefore asks for no committed
    offset (and, removed meanwhile, could never start from one)."""
    for version in ("3.9", "4.4"):
        s = group(**{"kafkacheck.consumers": "1", "kafka.version": version})
        consumer = s.cluster.consumers["c0"]
        poll_all(s)
        for _ in range(20):
            if consumer.partitions:
                break
            s.flush()
            s.tick(100)
        assert consumer.partitions == [0, 1]
        s.flush(4)
        assert consumer.coordinator.offsets_fetch is None
        assert not consumer.listing and all(p is None for p in consumer.positions.values())
        s.do(a.Poll("c0"))
        assert consumer.coordinator.offsets_fetch is not None
        s.flush(4)
        assert all(p is not None for p in consumer.positions.values())


def test_a_partition_given_back_during_its_revocation_waits_a_heartbeat_before_kafka_19449(
        ) -> None:
    """KAFKA-19449 (CurrentAssignmentBuilder.computeNextAssignment; 4.0.2, 4.1.2, 4.2.0):
    a member that reports it has revoked partition 1 while its new target gives 1 back.
    Before the fix its own pending revocation still counts as holding 1, so it moves to
    UNRELEASED_PARTITIONS and gets 1 on a later heartbeat; since, at once (STABLE)."""
    results = {}
    for version in ("4.0", "4.4"):
        s = group(**{"kafka.version": version})
        coordinators = coordinator(s).consumer_groups
        revoking = ConsumerMember("m", epoch=10, previous_epoch=9,
                                  state=UNREVOKED_PARTITIONS, assigned=frozenset({0}),
                                  pending_revocation=frozenset({1}))
        g = ConsumerGroup("kafkacheck", group_epoch=11, assignment_epoch=11,
                          members={"m": revoking}, target={"m": frozenset({0, 1})})
        after = coordinators._reconcile(g, revoking, (0,))
        results[version] = (after.state, sorted(after.assigned), after.epoch)
    assert results["4.0"] == (UNRELEASED_PARTITIONS, [0], 11)
    assert results["4.4"] == (STABLE, [0, 1], 11)


def test_a_queued_auto_commit_outlives_a_failed_coordinator_lookup() -> None:
    """CommitRequestManager (3.9, 4.0): an auto-commit made while no coordinator is known
    stays queued, with no deadline, through failed lookups, and no new auto-commit is
    made while it waits (shouldAutoCommit: nothing in flight)."""
    s = form(group(**{"enable.auto.commit": "true", "kafkacheck.commit.strategy": "none"}))
    consumer = s.cluster.consumers["c0"]
    side, answers = commit_async_while_the_lookup_fails(s)
    assert side.waiting_asyncs and answers == []
    consumer.next_auto_commit = s.cluster.ctx.now
    consumer._maybe_auto_commit()
    assert len(side.waiting_asyncs) == 1


def test_a_failed_auto_commit_waits_the_full_interval_not_the_backoff() -> None:
    """CommitRequestManager.maybeResetTimerWithBackoff (3.9, 4.0) resets the auto-commit
    timer to retry.backoff.ms only for a RetriableCommitFailedException, which the
    auto-commit's future never carries (it completes with the raw error): the next
    auto-commit waits the interval set when this one was made.  The classic
    ConsumerCoordinator retries after the backoff (tests/test_groups.py)."""
    s = form(group(**{"enable.auto.commit": "true", "kafkacheck.commit.strategy": "none"}))
    consumer = s.cluster.consumers["c0"]
    consumer.next_auto_commit = s.cluster.ctx.now + 5000
    consumer._auto_commit_done({0: 3}, m.COORDINATOR_NOT_AVAILABLE)
    assert consumer.next_auto_commit == s.cluster.ctx.now + 5000


def test_a_late_heartbeat_answered_nowhere_leaves_a_partition_unowned() -> None:
    """A model finding, read against Kafka's source (trunk 4.0 and 3.9), not yet seen on
    a real cluster.  ``GroupMetadataManager.consumerGroupHeartbeat`` puts the assignment
    in its answer only to a full request or when the member's assignment changed
    (``isFullRequest || hasAssignedPartitionsChanged``); the client sends a full request
    only when joining or after a failed heartbeat (``sentFields.reset()``).  c1 joins
    while c0 owns both partitions (UNRELEASED_PARTITIONS: partition 1 is c1's once c0
    releases it).  c1's next heartbeat is held past request.timeout.ms: the client
    closes the connection and sends a full heartbeat on a new one, answered with nothing
    yet.  c0 revokes partition 1.  Then the abandoned heartbeat, retransmitted by c1's
    kernel, lands: the coordinator moves c1 to STABLE with partition 1 and answers into
    the closed connection (``SocketServer`` drops it).  From then on c1's heartbeats are
    incremental at an unchanged epoch and assignment, so no answer carries the
    assignment again: the coordinator counts partition 1 as c1's, c1 owns nothing, and
    nobody consumes the partition while the group stays quiet."""
    s = group()
    network = s.cluster.ctx.network
    c0, c1 = s.cluster.consumers["c0"], s.cluster.consumers["c1"]
    for _ in range(10):                         # c0 alone takes both partitions
        s.do(a.Poll("c0"))
        flush(s)
        flush(s)
        if c0.membership.stable and c0.partitions:
            break
        s.tick(1000)
    node = c0.coordinator.coordinator
    c0_link = {(node, "c0"), ("c0", node)}
    both_links = c0_link | {(node, "c1"), ("c1", node)}
    s.do(a.Poll("c1"))
    for _ in range(4):                          # c1 joins; c0 hears nothing yet
        s.tick(100)
        for _ in range(4):
            flush_except(s, c0_link)
    member = the_group(s).members[c1.membership.member_id]
    assert member.state == UNRELEASED_PARTITIONS and not member.assigned
    for _ in range(6):                          # c1's next heartbeat goes out, held
        s.tick(1000)
        flush_except(s, both_links, 3)
    assert [type(msg) for _, msg in network.queues[("c1", node)]] == [
        m.ConsumerGroupHeartbeatRequest]
    s.tick(30_000)                              # request.timeout.ms: connections closed
    assert network.late_deliverable("c1", node)
    for _ in range(3):                          # c1's full heartbeat, answered: nothing
        s.tick(100)
        for _ in range(4):
            flush_except(s, c0_link)
    assert c1.partitions == [] and the_group(s).members[member.member_id].assigned == set()
    for _ in range(6):                          # c0 is told to revoke partition 1 and does
        poll_all(s)
        s.tick(100)
        for _ in range(4):
            flush_except(s, both_links - c0_link)
    assert c0.partitions == [0]
    s.do(a.DeliverLate("c1", node))             # the abandoned heartbeat lands
    member = the_group(s).members[member.member_id]
    assert member.state == STABLE and member.assigned == {1}
    for _ in range(40):                         # 40 s of a healthy network and polls
        poll_all(s)
        s.tick(1000)
        for _ in range(4):
            flush(s)
    assert the_group(s).members[member.member_id].assigned == {1}
    assert c1.membership.state == "STABLE" and c1.partitions == []
    assert owners(s) == {0: ["c0"]}
