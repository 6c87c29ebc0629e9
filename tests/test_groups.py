"""Classic consumer groups, as Kafka's group coordinator and Java consumer run them.

Each test names the Kafka class (or KIP) whose behaviour it pins down:
``GroupMetadataManager`` / ``ClassicGroup`` on the coordinator, ``AbstractCoordinator`` /
``ConsumerCoordinator`` in the client.
"""

from __future__ import annotations

from typing import Any

from model import actions as a
from model import messages as m
from model.broker.classic_group import (COMPLETING_REBALANCE, EMPTY, PREPARING_REBALANCE,
                                        STABLE)
from model.clients.membership import UNJOINED
from tests.scenario import Scenario

OFFSETS = "__consumer_offsets-40"   # abs("kafkacheck".hashCode()) % 50


def group(**settings: Any) -> Scenario:
    settings = {"kafkacheck.consumer.api": "subscribe", "kafkacheck.consumers": "2",
                "kafkacheck.partitions": "2", "enable.auto.commit": "false", **settings}
    return Scenario(**{k.replace(".", "_"): v for k, v in settings.items()})


def poll_all(s: Scenario) -> None:
    for name, consumer in s.cluster.consumers.items():
        if s.cluster.is_enabled(a.Poll(name)):
            s.do(a.Poll(name))


def flush(s: Scenario, rounds: int = 1) -> None:
    """Scenario.flush, leaving what is queued for a paused client where it is."""
    network = s.cluster.ctx.network
    for _ in range(rounds):
        for src, dst in network.ready_links():
            if s.cluster.is_enabled(a.Deliver(src, dst)):
                s.do(a.Deliver(src, dst))


def form(s: Scenario, rounds: int = 40) -> Scenario:
    """Poll, deliver and let a second pass until every consumer holds a stable
    generation with its partitions."""
    for _ in range(rounds):
        poll_all(s)
        s.flush()
        if all(c.membership.stable and c.partitions for c in s.cluster.consumers.values()):
            return s
        s.tick(1000)
    raise AssertionError("the group did not form")


def coordinator(s: Scenario) -> Any:
    return s.cluster.broker_actors[s.leader(OFFSETS)].coordinator


def the_group(s: Scenario) -> Any:
    return coordinator(s)._group("kafkacheck")


def test_a_new_member_joins_twice_and_the_leader_assigns_with_range() -> None:
    """KIP-394: the first JoinGroup gets MEMBER_ID_REQUIRED and a member id; the member
    joins again with it.  An empty group's first rebalance waits
    group.initial.rebalance.delay.ms for more members (InitialDelayedJoin), then the
    leader runs the chosen assignor, RangeAssignor (first of Kafka's default
    range,cooperative-sticky), and every member gets its share in SyncGroup."""
    s = group()
    poll_all(s)
    s.flush(2)                   # FindCoordinator and its answer
    poll_all(s)
    s.flush(3)                   # JoinGroup, MEMBER_ID_REQUIRED, JoinGroup again
    g = the_group(s)
    assert g.state == PREPARING_REBALANCE and len(g.members) == 2
    assert all(mid.startswith(("c0-", "c1-")) for mid in g.members)
    s.tick(1000).flush()
    assert the_group(s).state == PREPARING_REBALANCE     # still within the initial delay
    form(s)
    g = the_group(s)
    assert g.state == STABLE and g.generation == 1 and g.protocol == "range"
    owned = {c.name: c.partitions for c in s.cluster.consumers.values()}
    assert sorted(owned.values()) == [[0], [1]]
    assigned = s.internal("assigned")
    assert {e.value["generation"] for e in assigned} == {1}


def test_offset_commit_validation_follows_classic_group_rules() -> None:
    """ClassicGroup.validateOffsetCommit: a member's generation must be the group's;
    an unknown member is refused; CompletingRebalance refuses with
    REBALANCE_IN_PROGRESS while PreparingRebalance still accepts the current generation
    (commits of the generation being left); a commit with generation -1 is accepted
    only while the group is empty, with or without a member id."""
    s = form(group())
    c = coordinator(s)
    g = the_group(s)
    member = next(iter(g.members))

    def validate(generation: int, member_id: str) -> str | None:
        return c._validate_commit("kafkacheck", generation, member_id)

    assert validate(g.generation, member) is None
    assert validate(g.generation, "nobody") == m.UNKNOWN_MEMBER_ID
    assert validate(g.generation - 1, member) == m.ILLEGAL_GENERATION
    assert validate(-1, "") == m.UNKNOWN_MEMBER_ID       # the group is not empty
    g.state = PREPARING_REBALANCE
    assert validate(g.generation, member) is None
    g.state = COMPLETING_REBALANCE
    assert validate(g.generation, member) == m.REBALANCE_IN_PROGRESS
    g.state = EMPTY          # generation -1 on an empty group: accepted, member id or not
    assert validate(-1, "") is None and validate(-1, member) is None


def test_heartbeats_answer_by_group_state() -> None:
    """GroupMetadataManager.classicGroupHeartbeatToClassicGroup: PreparingRebalance
    answers REBALANCE_IN_PROGRESS, CompletingRebalance and Stable answer NONE (members
    may heartbeat after their JoinGroup answer), a stale generation ILLEGAL_GENERATION,
    an unknown member UNKNOWN_MEMBER_ID."""
    s = form(group())
    c, g = coordinator(s), the_group(s)
    member = next(iter(g.members))
    assert c.heartbeat("kafkacheck", member, g.generation) is None
    assert c.heartbeat("kafkacheck", member, g.generation - 1) == m.ILLEGAL_GENERATION
    assert c.heartbeat("kafkacheck", "nobody", g.generation) == m.UNKNOWN_MEMBER_ID
    g.state = COMPLETING_REBALANCE
    assert c.heartbeat("kafkacheck", member, g.generation) is None
    g.state = PREPARING_REBALANCE
    assert c.heartbeat("kafkacheck", member, g.generation) == m.REBALANCE_IN_PROGRESS


def test_a_paused_member_is_removed_after_its_session_and_its_commit_refused() -> None:
    """A GC pause longer than session.timeout.ms: the coordinator hears no heartbeat
    and removes the member (onClassicGroupMemberHeartbeatExpiry), the other member
    takes its partition in the next generation; when the zombie resumes, its commitSync
    is refused (UNKNOWN_MEMBER_ID -> CommitFailedException) and it rejoins as new."""
    s = form(group())
    s.send("k0").flush(4)
    zombie = next(n for n, c in s.cluster.consumers.items() if c.partitions == [s.partition("k0")])
    other = "c1" if zombie == "c0" else "c0"
    s.poll_records(zombie)
    s.do(a.Process(zombie))
    s.do(a.Pause(zombie))
    for _ in range(8):           # 80 s: past the 45 s session, and a rebalance
        s.tick(10000)
        for _ in range(3):
            poll_all(s)
            flush(s, 2)
    removed = s.internal("member-removed")
    assert [e.value["reason"] for e in removed] == ["session timeout"]
    assert sorted(s.cluster.consumers[other].partitions) == [0, 1]
    s.do(a.Resume(zombie))
    s.do(a.Commit(zombie))
    s.flush(3)
    commits = [op for op in s.ops("commit") if op.process.startswith(zombie)]
    assert commits[-1].type == "fail" and "CommitFailedException" in commits[-1].meta["error"]
    assert [e.value["error"] for e in s.internal("commit-refused")] == [m.UNKNOWN_MEMBER_ID]


def test_a_join_group_waits_for_the_rebalance_not_for_request_timeout() -> None:
    """AbstractCoordinator.sendJoinGroupRequest gives a JoinGroup max.poll.interval.ms
    plus JOIN_GROUP_TIMEOUT_LAPSE (305 s), not request.timeout.ms (30 s): the
    coordinator holds it until every member rejoined, a dead one until its session
    (45 s) runs out.  The surviving member keeps its one JoinGroup out the whole time
    and is answered; it does not disconnect and rejoin at 30 s."""
    s = form(group())
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0"))   # a new member; the old one dead
    survivor = s.cluster.consumers["c1"].membership
    for _ in range(10):
        poll_all(s)
        flush(s)
        s.tick(1000)
        if survivor.state == "joining":
            break
    assert survivor.state == "joining"
    corr, sent_at = survivor.request.corr, survivor.request.sent_at
    while survivor.state == "joining":
        assert survivor.request.corr == corr
        poll_all(s)
        flush(s)
        s.tick(1000)
    assert s.cluster.ctx.now - sent_at > 30000
    assert survivor.state in ("syncing", "stable")
    assert [e.value["reason"] for e in s.internal("member-removed")] == ["session timeout"]


def test_a_busy_application_past_max_poll_interval_leaves_the_group() -> None:
    """AbstractCoordinator's heartbeat thread: when the application has not called
    poll() for max.poll.interval.ms, a dynamic member sends LeaveGroup and forgets its
    generation; its next commitSync fails locally (CommitFailedException)."""
    s = form(group(max_poll_interval_ms=60000))
    s.send("k0").flush(4)
    busy = next(n for n, c in s.cluster.consumers.items() if c.partitions == [s.partition("k0")])
    s.poll_records(busy)
    for _ in range(7):
        s.tick(10000)
        s.flush()
    leaves = s.internal("leave-group")
    assert [e.value["reason"] for e in leaves] == ["max.poll.interval.ms expired"]
    assert [e.value["reason"] for e in s.internal("member-removed")] == ["left the group"]
    s.do(a.Process(busy)).do(a.Commit(busy))
    commit = [op for op in s.ops("commit") if op.process.startswith(busy)][-1]
    assert commit.type == "fail" and commit.meta["error"] == "CommitFailedException"


def test_auto_commit_at_the_start_of_a_poll_covers_earlier_polls_only() -> None:
    """ConsumerCoordinator.maybeAutoCommitOffsetsAsync runs in poll() before records are
    returned: it commits the positions of what earlier polls returned, once
    auto.commit.interval.ms has passed."""
    s = form(group(enable_auto_commit="true", kafkacheck_commit_strategy="none"))
    s.send("k0").flush(4)
    name = next(n for n, c in s.cluster.consumers.items() if c.partitions == [s.partition("k0")])
    consumer = s.cluster.consumers[name]
    s.poll_records(name)
    p = s.partition("k0")
    assert consumer.positions[p] == 1
    assert not [e for e in s.internal("auto-commit") if e.process == name
                and e.value["offsets"].get(str(p)) == 1]
    s.tick(5000)
    s.do(a.Process(name)).do(a.Poll(name))
    commits = [e.value["offsets"] for e in s.internal("auto-commit") if e.process == name]
    assert commits[-1] == {str(p): 1}


def test_close_with_auto_commit_commits_what_the_last_poll_returned() -> None:
    """KafkaConsumer.close() -> maybeAutoCommitOffsetsSync: the positions include the
    records of the last poll, processed or not, so records whose processing threw are
    committed as consumed."""
    s = form(group(enable_auto_commit="true", kafkacheck_commit_strategy="none",
                   kafkacheck_processing_failure="close"))
    s.send("k0").flush(4)
    name = next(n for n, c in s.cluster.consumers.items() if c.partitions == [s.partition("k0")])
    s.poll_records(name)
    s.do(a.Close(name))
    s.flush(4)
    closing = [e for e in s.internal("auto-commit") if e.value["reason"] == "close"]
    assert closing and closing[-1].value["offsets"] == {str(s.partition("k0")): 1}
    committed = s.internal("offsets-committed")
    assert committed[-1].value["offsets"] == {str(s.partition("k0")): 1}
    assert not s.ops("process", "ok")
    assert not s.cluster.consumers[name].alive


def test_a_new_coordinator_loads_the_stored_generation() -> None:
    """GroupMetadataManager.storeGroup writes a generation's assignment to
    __consumer_offsets; the next leader of that partition loads it (the group stays
    Stable with the same members) and expects their heartbeats from then on."""
    s = form(group())
    before = the_group(s)
    members, generation = sorted(before.members), before.generation
    s.fetch_round(s.followers(OFFSETS)[0], OFFSETS)
    old = s.leader(OFFSETS)
    s.do(a.Crash(old))
    for _ in range(30):
        s.tick(1000)
        s.flush(2)
        if s.leader(OFFSETS) not in (None, old):
            break
    after = the_group(s)
    assert after is not None and after.state == STABLE
    assert (sorted(after.members), after.generation) == (members, generation)
    loaded = s.internal("group-loaded")
    assert loaded and loaded[-1].value["generation"] == generation


def test_auto_commit_with_a_lagging_worker_commits_records_never_processed() -> None:
    """Auto-commit commits positions, which move when poll() returns records
    (SubscriptionState.allConsumed), not when the application processes them: with a
    worker that lags the poll loop, a crash after the next poll's auto-commit loses the
    records still queued for the worker."""
    s = form(group(enable_auto_commit="true", kafkacheck_commit_strategy="none",
                   kafkacheck_processing="async"))
    s.send("k0").flush(4)
    name = next(n for n, c in s.cluster.consumers.items() if c.partitions == [s.partition("k0")])
    s.poll_records(name)
    s.tick(5000)
    s.do(a.Poll(name))                        # auto-commits offset 1; the record is queued
    s.do(a.ClientCrash(name))
    s.finish()
    committed = [e.value["offsets"] for e in s.internal("offsets-committed")]
    assert {str(s.partition("k0")): 1} in committed
    assert "processed-zero-times" in s.anomalies()
    assert not s.ops("process", "ok")


# -- cooperative rebalancing (KIP-429) ------------------------------------------------------

def cooperative(version: str, partitions: int) -> Scenario:
    return group(**{"kafkacheck.consumers": "3", "kafkacheck.partitions": str(partitions),
                    "partition.assignment.strategy": "cooperative-sticky",
                    "kafka.version": version})


def flush_except(s: Scenario, held: set[tuple[str, str]], rounds: int = 1) -> None:
    """Deliver everything queued except on the ``held`` links (a slow connection)."""
    network = s.cluster.ctx.network
    for _ in range(rounds):
        for src, dst in network.ready_links():
            if (src, dst) not in held and network.deliverable(src, dst):
                s.do(a.Deliver(src, dst))


def run_for(s: Scenario, rounds: int, held: set[tuple[str, str]] = set(),
            ms: int = 1000) -> Scenario:
    for _ in range(rounds):
        poll_all(s)
        flush_except(s, held, 3)
        s.tick(ms)
    return s


def owned(s: Scenario) -> dict[str, list[int]]:
    return {n: c.partitions for n, c in s.cluster.consumers.items() if c.alive}


def test_cooperative_rebalancing_moves_a_partition_over_two_generations() -> None:
    """KIP-429 (ConsumerCoordinator.onJoinPrepare / onJoinComplete, COOPERATIVE): members
    keep their partitions through a rebalance; CooperativeStickyAssignor withholds a
    partition that changes owner; its owner revokes it on the assignment and rejoins at
    once, and the new owner gets it in the next generation, after the revocation."""
    s = run_for(cooperative("4.4", 3), 10)
    assert owned(s) == {"c0": [0], "c1": [1], "c2": [2]}
    s.do(a.ClientCrash("c1"))
    run_for(s, 60, ms=1000)              # the session times out; c0 takes p1, adding only
    assert owned(s) == {"c0": [0, 1], "c2": [2]}
    assert not [e for e in s.internal("revoked") if e.value["member"].startswith("c0")]
    s.do(a.ClientRestart("c1"))
    position_before = s.cluster.consumers["c0"].positions[0]
    run_for(s, 1)
    assert s.cluster.consumers["c0"].positions[0] == position_before   # still fetching p0
    run_for(s, 20)
    assert owned(s) == {"c0": [0], "c1": [1], "c2": [2]}
    revoked = [e for e in s.internal("revoked") if e.value["partitions"] == [1]]
    given = [e for e in s.internal("assigned")
             if e.process == "c1" and e.value["partitions"] == [1] and e.value["generation"] > 1]
    assert len(revoked) == 1 and len(given) == 1
    # revoked on generation 3's assignment, given in generation 4
    assert revoked[0].value["generation"] + 1 == given[0].value["generation"]
    assert revoked[0].index < given[0].index
    assert "group-overlap" not in s.anomalies()


def missed_sync_group(version: str) -> Scenario:
    """KAFKA-13419's sequence: c2's SyncGroup of generation 2 is slow; the others finish
    generation 2, a new member starts generation 3, and c2's SyncGroup is answered
    REBALANCE_IN_PROGRESS, so c2 rejoins still owning what generation 1 gave it."""
    s = run_for(cooperative(version, 4), 10)
    assert owned(s) == {"c0": [0, 3], "c1": [1], "c2": [2]}
    s.do(a.ClientCrash("c0"))
    slow = {("c2", s.leader(OFFSETS))}
    for _ in range(200):                          # until c2 has its generation-2 JoinGroup answer
        poll_all(s)
        if s.cluster.consumers["c2"].membership.state == "syncing":
            break
        flush_except(s, set())
        s.tick(500)
    run_for(s, 5, held=slow)
    assert the_group(s).state == STABLE and the_group(s).generation == 2
    s.do(a.ClientRestart("c0"))
    run_for(s, 3, held=slow)
    assert the_group(s).state == PREPARING_REBALANCE
    return run_for(s, 20)


def test_a_member_that_missed_a_sync_group_shares_a_partition_before_kafka_14639() -> None:
    """KAFKA-14639 (2.4 to 3.4.0; Kafka 3.3.2 here): c2 rejoins generation 3 claiming
    its generation-1 partition with generation 1 (CooperativeStickyAssignor's user data;
    KAFKA-13715's generation field came in 3.4.0), and AbstractStickyAssignor ignores
    every claim below the highest generation, so the partition looks free and goes
    straight to the new member while c2 still owns it."""
    s = missed_sync_group("3.3")
    overlaps = s.anomalies().get("group-overlap", [])
    assert overlaps and overlaps[0]["key"] == 2
    taken = next(e for e in s.internal("assigned")
                 if e.process.startswith("c0") and 2 in e.value["partitions"])
    released = next(e for e in s.internal("revoked") if e.process.startswith("c2"))
    assert taken.index < released.index


def test_the_same_schedule_keeps_one_owner_since_kafka_14639() -> None:
    """Since 3.4.1/3.5.0 a claim counts per partition, the highest generation winning,
    and c2's subscription carries its current generation (KAFKA-13715): c2 keeps its
    partition, or revokes it before anyone else gets it."""
    s = missed_sync_group("4.4")
    assert "group-overlap" not in s.anomalies()
    assert owned(s) == {"c0": [3], "c1": [0, 1], "c2": [2]}


def test_a_member_assigned_no_partition_sends_no_offset_fetch(monkeypatch: Any) -> None:
    """ConsumerCoordinator.refreshCommittedOffsetsIfNeeded fetches the committed offsets
    of the partitions being initialised only; with none (three members, two
    partitions: the range assignor leaves one member empty) it sends no OffsetFetch."""
    s = group(kafkacheck_consumers=3, kafkacheck_partitions=2)
    sent: list[tuple[str, Any]] = []
    network = type(s.cluster.ctx.network)
    original = network.send

    def send(self: Any, src: str, dst: str, message: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(message, m.OffsetFetchRequest):
            sent.append((src, message))
        return original(self, src, dst, message, *args, **kwargs)

    monkeypatch.setattr(network, "send", send)
    for _ in range(40):
        poll_all(s)
        s.flush()
        if all(c.membership.stable for c in s.cluster.consumers.values()):
            break
        s.tick(1000)
    for _ in range(3):           # the owners fetch their offsets and start fetching
        poll_all(s)
        s.flush()
    empty = [c for c in s.cluster.consumers.values() if not c.partitions]
    owners = [c for c in s.cluster.consumers.values() if c.partitions]
    assert len(empty) == 1 and len(owners) == 2
    assert empty[0].membership.stable and empty[0].coordinator.committed_known
    assert {src for src, _ in sent} == {c.name for c in owners}
    assert all(request.partitions for _, request in sent)


def test_a_commit_of_nothing_succeeds_locally_without_a_request() -> None:
    """ConsumerCoordinator.commitOffsetsSync and sendOffsetCommitRequest (and the KIP-848
    consumer's CommitRequestManager) complete a commit of no offsets locally: no
    OffsetCommit is sent and no membership is checked, so a member whose generation is
    gone still commits nothing successfully.  The model used to send the empty request
    and report the coordinator's refusal as CommitFailedException."""
    s = form(group())
    consumer = s.cluster.consumers["c0"]
    consumer.membership.state = UNJOINED         # as after UNKNOWN_MEMBER_ID
    assert consumer.membership.commit_refusal() is not None
    done: list[tuple[str, str | None]] = []
    consumer.coordinator.on_commit_done = lambda offsets, outcome, error: done.append(
        (outcome, error))
    queued = {link: len(q) for link, q in s.cluster.ctx.network.queues.items()}
    consumer.coordinator.commit_sync({})
    answered: list[str | None] = []
    consumer.coordinator.commit_async({}, lambda offsets, error: answered.append(error))
    assert done == [("ok", None)] and answered == [None]
    assert {link: len(q) for link, q in s.cluster.ctx.network.queues.items()} == queued


def test_a_timed_out_coordinator_write_is_answered_as_each_coordinator_does() -> None:
    """The Scala GroupCoordinator (classic groups before 4.0): GroupMetadataManager.
    storeGroup turns a timed-out group write into REBALANCE_IN_PROGRESS and
    maybeConvertOffsetCommitError passes a timed-out commit through (REQUEST_TIMED_OUT).
    The new coordinator (every group from 4.0; GroupCoordinatorService.
    handleOperationException) answers COORDINATOR_NOT_AVAILABLE for both."""
    scala = coordinator(group(**{"kafka.version": "3.9"}))
    new = coordinator(group(**{"kafka.version": "4.0"}))
    assert scala._group_write_error(m.REQUEST_TIMED_OUT) == m.REBALANCE_IN_PROGRESS
    assert scala._offset_write_error(m.REQUEST_TIMED_OUT) == m.REQUEST_TIMED_OUT
    assert new._group_write_error(m.REQUEST_TIMED_OUT) == m.COORDINATOR_NOT_AVAILABLE
    assert new._offset_write_error(m.REQUEST_TIMED_OUT) == m.COORDINATOR_NOT_AVAILABLE
    for c in (scala, new):
        assert c._offset_write_error(m.NOT_LEADER_OR_FOLLOWER) == m.NOT_COORDINATOR
        assert c._group_write_error(m.NOT_ENOUGH_REPLICAS) == m.COORDINATOR_NOT_AVAILABLE


def test_an_auto_commit_waits_for_the_coordinator_lookup_and_sends_its_own_offsets() -> None:
    """ConsumerCoordinator.commitOffsetsAsync with no known coordinator: it looks the
    coordinator up and sends the commit, with the offsets it was given, once the lookup
    succeeds (the model used to fail it at once and retry later with newer offsets)."""
    s = form(group())
    consumer = s.cluster.consumers["c0"]
    coordinator_side = consumer.coordinator
    coordinator_side.mark_unknown()
    answers: list[str | None] = []
    coordinator_side.commit_async({0: 3}, lambda offsets, error: answers.append(error))
    assert answers == [] and coordinator_side.waiting_asyncs
    assert coordinator_side.finding is not None
    for _ in range(6):
        flush(s)
    assert coordinator_side.waiting_asyncs == [] and answers
    commits = [e.value for e in s.internal("offsets-committed")]
    assert {"0": 3} in [c["offsets"] for c in commits]


def test_a_failed_lookup_fails_a_waiting_auto_commit_retriably() -> None:
    """commitOffsetsAsync's lookup listener, onFailure: the commit waiting for the
    coordinator fails with a retriable error (and auto-commit retries after
    retry.backoff.ms)."""
    s = form(group())
    side, answers = commit_async_while_the_lookup_fails(s)
    assert side.waiting_asyncs == [] and answers == [m.COORDINATOR_NOT_AVAILABLE]


def commit_async_while_the_lookup_fails(s: Scenario) -> tuple[Any, list[str | None]]:
    """c0 forgets its coordinator, commits {0: 3} asynchronously, and its lookup is
    answered COORDINATOR_NOT_AVAILABLE: its coordinator side and the commit's answers."""
    side = s.cluster.consumers["c0"].coordinator
    side.mark_unknown()
    answers: list[str | None] = []
    side.commit_async({0: 3}, lambda offsets, error: answers.append(error))
    assert side.finding is not None
    side.on_find_coordinator(m.FindCoordinatorResponse(side.finding.corr,
                                                       m.COORDINATOR_NOT_AVAILABLE, None))
    return side, answers


def test_a_failed_classic_auto_commit_is_retried_after_the_backoff() -> None:
    """ConsumerCoordinator.maybeAutoCommitOffsetsAsync: a RetriableCommitFailedException
    resets the auto-commit timer to retry.backoff.ms (100)."""
    s = form(group(**{"enable.auto.commit": "true", "kafkacheck.commit.strategy": "none"}))
    consumer = s.cluster.consumers["c0"]
    consumer.next_auto_commit = s.cluster.ctx.now + 5000
    consumer._auto_commit_done({0: 3}, m.COORDINATOR_NOT_AVAILABLE)
    assert consumer.next_auto_commit == s.cluster.ctx.now + 100


def test_a_timed_out_commit_sync_landing_after_the_next_commit_moves_the_offset_back() -> None:
    """An OffsetCommit carries no sequence number, and the coordinator
    (``GroupMetadataManager.storeOffsets``; ``OffsetMetadataManager`` from 4.0) stores
    what any request of the current generation says, in the order requests arrive.  A
    commitSync of offset 2 whose first request is held past ``request.timeout.ms`` (the
    client closes the connection) and whose retry is held as long fails with a
    TimeoutException after ``default.api.timeout.ms``; the application commits 3; then
    the two abandoned requests, retransmitted by the kernel within its orphan window,
    arrive and are stored: the committed offset goes back to 2 (``offset-regression``),
    and the partition's next owner reads a record again.  The 4.4 cooperative long hunt
    found this (tests/test_group_hunts.py)."""
    s = form(group(**{"kafka.version": "4.4"}))
    consumer = s.cluster.consumers["c0"]
    partition = consumer.partitions[0]
    side = consumer.coordinator
    coordinator_node = s.leader(OFFSETS)
    held = {("c0", coordinator_node)}
    outcomes: list[tuple[str, str | None]] = []
    side.on_commit_done = lambda offsets, outcome, error: outcomes.append((outcome, error))
    side.commit_sync({partition: 2})
    s.tick(30_000)                      # the first attempt times out: connection closed
    network = s.cluster.ctx.network
    assert len(network.late[("c0", coordinator_node)]) == 1
    flush_except(s, held, 3)            # the coordinator is looked up again
    s.tick(100)                         # retry.backoff.ms
    flush_except(s, held, 3)            # the retry, held as well
    s.tick(30_000)
    assert outcomes == [("info", "TimeoutException")]
    late = [msg for _, msg in network.late[("c0", coordinator_node)]]
    assert [type(msg) for msg in late[:2]] == [m.OffsetCommitRequest] * 2
    side.commit_sync({partition: 3})
    for _ in range(6):
        flush(s)
    assert outcomes[-1] == ("ok", None)
    s.do(a.DeliverLate("c0", coordinator_node)).do(a.DeliverLate("c0", coordinator_node))
    for _ in range(6):
        flush(s)
    stored = [e.value["offsets"][str(partition)] for e in s.internal("offsets-committed")
              if str(partition) in e.value["offsets"]]
    assert stored[-3:] == [3, 2, 2]
    (regression,) = s.anomalies()["offset-regression"]
    assert (regression["previous"], regression["offset"]) == (3, 2)


def test_a_heartbeat_waits_behind_a_commit_held_on_the_coordinator_connection() -> None:
    """``AbstractCoordinator``'s heartbeat thread sends on the coordinator connection its
    commits use, and a connection is one ordered stream (TCP; ``SocketServer`` reads one
    request of it at a time): while an OffsetCommit is held in the network, the heartbeat
    behind it reaches nobody and the coordinator's session deadline for the member stays
    where it was; once the commit is through, the coordinator hears the heartbeat but
    the member hears the answer only after the commit's own, still held on the way
    back."""
    s = form(group())
    consumer = s.cluster.consumers["c0"]
    membership = consumer.membership
    coordinator_node = s.leader(OFFSETS)
    member = the_group(s).members[membership.member_id]
    consumer.coordinator.commit_sync({consumer.partitions[0]: 1})
    deadline, heard = member.heartbeat_deadline, membership.last_heartbeat
    s.tick(3000)                        # heartbeat.interval.ms: one is due
    assert (member.heartbeat_deadline, membership.last_heartbeat) == (deadline, heard)
    s.deliver("c0", coordinator_node)   # the commit; its answer waits for replication
    flush_except(s, {(coordinator_node, "c0")}, 6)
    assert s.cluster.ctx.network.holds(coordinator_node, "c0", (m.OffsetCommitResponse,))
    s.tick(1000)
    assert member.heartbeat_deadline > deadline
    assert membership.last_heartbeat == heard
    shared = m.CLASSIC_COORDINATOR_CONNECTION
    while s.cluster.ctx.network.holds(coordinator_node, "c0", shared):
        s.deliver(coordinator_node, "c0")
    s.tick(1000)
    assert membership.last_heartbeat == s.cluster.ctx.now
