"""Known Kafka behaviours, each scripted as an explicit schedule against the model."""

from __future__ import annotations

from model import actions as a
from model import messages as m
from tests.scenario import Scenario


def shrink_isr_to_leader(s: Scenario, p: int) -> None:
    """Followers stay silent past replica.lag.time.max.ms; the leader's next ISR check
    (every replica.lag.time.max.ms / 2) shrinks the ISR."""
    leader = s.leader(p)
    s.tick(31000).tick(15000)
    s.deliver(leader, "ctl")              # AlterPartition
    s.sync_metadata()                     # the answer, and the new ISR in the log
    assert s.isr(p) == (leader,)
    assert s.replica(leader, p).isr == (leader,)


def test_acks_all_is_acknowledged_only_once_every_isr_member_has_the_record() -> None:
    s = Scenario(acks="all")
    p = s.partition()
    leader = s.leader(p)
    f1, f2 = s.followers(p)
    s.send().deliver("p0", leader)
    assert s.values(leader, p) == [1]
    assert not s.cluster.ctx.network.queues.get((leader, "p0")), "answered too early"
    s.fetch_round(f1, p).fetch_round(f1, p)          # f1 has it, and says so
    assert s.log(leader, p).hw == 0, "HW must wait for f2, still in the ISR"
    s.fetch_round(f2, p).fetch_round(f2, p)          # f2 has it
    assert s.log(leader, p).hw == 1
    s.deliver(leader, "p0")
    assert [e.value for e in s.ops("send", "ok")] == [[["send", p, [0, 1]]]]


def test_a_follower_learns_the_high_watermark_from_the_fetch_after_the_one_that_moved_it() -> None:
    """Partition.fetchRecords reads the HW for the response before the fetch updates the
    follower's state, so the fetch that lets the leader advance the HW still carries the
    old one; the next fetch, with nothing new to read, is held (DelayedFetch) until
    replica.fetch.wait.max.ms and then brings the HW."""
    s = Scenario(acks="1", **{"kafkacheck.replication.factor": "2"})
    p = s.partition()
    leader = s.leader(p)
    (follower,) = s.followers(p)
    s.send().deliver("p0", leader)
    s.fetch_round(follower, p)                              # copies offset 0
    assert s.log(follower, p).leo == 1
    s.fetch_round(follower, p)                              # fetch at 1: leader HW -> 1
    assert s.log(leader, p).hw == 1
    assert s.log(follower, p).hw == 0, "the answer carried the HW from before the fetch"
    corr = s.replica(follower, p).fetch_corr
    s.fetch_round(follower, p)
    assert s.replica(follower, p).fetch_corr == corr, "answered although nothing was new"
    s.tick(500)                                             # replica.fetch.wait.max.ms
    s.fetch_round(follower, p) if False else s.deliver(leader, follower)
    assert s.log(follower, p).hw == 1


def test_min_insync_replicas_refuses_acks_all_writes_when_the_isr_is_too_small() -> None:
    s = Scenario(acks="all", retries=0, **{"min.insync.replicas": "2"})
    p = s.partition()
    shrink_isr_to_leader(s, p)
    s.send().deliver("p0", s.leader(p)).deliver(s.leader(p), "p0")
    (failed,) = s.ops("send", "fail")
    assert failed.meta["error"] == m.NOT_ENOUGH_REPLICAS
    assert s.values(s.leader(p), p) == [], "NOT_ENOUGH_REPLICAS is raised before appending"


def test_min_insync_replicas_does_not_refuse_acks_1_but_holds_the_high_watermark() -> None:
    """acks=1 is acknowledged whatever the ISR; since KAFKA-15583 (3.7) the HW does not
    advance while the ISR is below min.insync.replicas, so consumers do not see it yet."""
    s = Scenario(acks="1", **{"min.insync.replicas": "2"})
    p = s.partition()
    shrink_isr_to_leader(s, p)
    s.send().deliver("p0", s.leader(p)).deliver(s.leader(p), "p0")
    assert len(s.ops("send", "ok")) == 1
    assert s.log(s.leader(p), p).hw == 0


def test_a_lagging_follower_leaves_the_isr_and_rejoins_once_caught_up() -> None:
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    shrink_isr_to_leader(s, p)
    s.flush(6).tick(500).flush(6)          # one ISR change in flight at a time
    assert set(s.isr(p)) == {leader, *s.followers(p)}
    assert [e.value["isr"] for e in s.internal("isr") if e.value["partition"] == p][-1][0] \
        == leader


def test_acks_1_loses_an_acknowledged_write_when_the_leader_dies_before_replication() -> None:
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.send().deliver("p0", leader).deliver(leader, "p0")
    assert len(s.ops("send", "ok")) == 1
    s.do(a.Crash(leader)).tick(10000)
    assert s.leader(p) in s.followers(p) or s.leader(p) != leader
    s.finish()
    lost = s.anomalies()["lost-write"]
    assert [d["value"] for d in lost] == [1]


def test_a_deposed_leader_keeps_accepting_writes_until_it_learns_and_then_truncates() -> None:
    s = Scenario(acks="1")
    p = s.partition()
    zombie = s.leader(p)
    s.do(a.Partition((zombie, "p0", "c0")))
    s.tick(10000)                                   # controller fences it, elects another
    assert s.leader(p) != zombie
    assert s.replica(zombie, p).is_leader           # ...which it does not know yet
    s.send().deliver("p0", zombie).deliver(zombie, "p0")
    assert len(s.ops("send", "ok")) == 1, "the zombie acknowledged the write"
    s.finish()
    assert s.internal("truncate"), "the deposed leader must truncate its divergent suffix"
    assert [d["value"] for d in s.anomalies()["lost-write"]] == [1]


def test_a_returning_leader_truncates_its_divergent_suffix_by_leader_epoch() -> None:
    """KIP-101/KIP-279: truncation follows the new leader's epoch boundaries, not the HW."""
    s = Scenario(acks="1", retries=0)     # m1 gives up with the old leader
    p = s.partition()
    old = s.leader(p)
    s.send().deliver("p0", old)                     # m1 only on the old leader, epoch 0
    s.do(a.Crash(old)).tick(10000)
    new = s.leader(p)
    s.sync_metadata()                               # the new leader learns it leads
    s.send().tick(100).flush(3)                     # m2, to the new leader
    assert s.values(new, p)[:1] == [2]
    s.restart(old).flush(8)
    assert s.values(old, p) == s.values(new, p) == [2]
    (cut,) = [e.value for e in s.internal("truncate") if e.process == old]
    assert cut["offset"] == 0


def test_unclean_election_disabled_leaves_the_partition_offline() -> None:
    s = Scenario(acks="all")
    p = s.partition()
    leader = s.leader(p)
    shrink_isr_to_leader(s, p)
    s.do(a.Crash(leader)).tick(10000)
    assert s.leader(p) is None
    assert s.isr(p) == (leader,), "the ISR never empties"


def test_unclean_election_loses_committed_records() -> None:
    s = Scenario(acks="all", **{"unclean.leader.election.enable": "true"})
    p = s.partition()
    leader = s.leader(p)
    shrink_isr_to_leader(s, p)
    s.send().deliver("p0", leader).deliver(leader, "p0")   # committed with ISR = {leader}
    assert len(s.ops("send", "ok")) == 1
    s.do(a.Crash(leader)).tick(10000)
    assert s.leader(p) not in (None, leader)
    assert any(e.value["unclean"] for e in s.internal("election"))
    s.finish()
    found = s.anomalies()
    assert "committed-prefix-changed" in found
    assert [d["value"] for d in found["lost-write"]] == [1]


def start_consumer(s: Scenario) -> Scenario:
    """FindCoordinator, OffsetFetch, ListOffsets: until the consumer has a position."""
    consumer = s.cluster.consumers["c0"]
    for _ in range(10):
        if all(pos is not None for pos in consumer.positions.values()):
            return s
        s.flush()
    raise AssertionError("the consumer never learnt where to start")


def test_consumers_see_only_records_below_the_high_watermark() -> None:
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    start_consumer(s)
    s.send().deliver("p0", leader)                     # appended, not replicated: HW 0
    s.do(a.Poll("c0"))
    while s.cluster.ctx.network.queues.get(("c0", leader)):
        s.deliver("c0", leader)                        # the fetch: nothing below the HW
    assert s.log(leader, p).hw == 0
    assert not [m for _, m in s.cluster.ctx.network.queues.get((leader, "c0"), ())
                if getattr(m, "records", ())], "served a record above the HW"
    s.flush(4)                                         # replicated; HW 1: the held fetch
    assert s.log(leader, p).hw == 1                    # is answered with the record
    s.poll_records()
    assert s.ops("poll", "ok")[-1].value == [["poll", {p: [[0, 1]]}]]


def test_a_restarted_consumer_resumes_from_its_committed_offset() -> None:
    s = Scenario(acks="all")
    start_consumer(s).send().flush(4)
    s.poll_records()
    s.do(a.Process("c0")).do(a.Commit("c0")).flush(6)
    assert s.ops("commit", "ok")
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0")).finish()
    assert s.anomalies() == {}
    assert len(s.ops("process")) == 1


def test_commit_before_processing_loses_the_batch_when_the_consumer_crashes() -> None:
    s = Scenario(acks="all", **{"kafkacheck.commit.strategy": "before-processing"})
    start_consumer(s).send().flush(4)
    s.poll_records()
    s.do(a.Commit("c0")).flush(6)
    assert s.ops("commit", "ok")
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0")).finish()
    assert [d["value"] for d in s.anomalies()["processed-zero-times"]] == [1]


def test_commit_after_processing_reprocesses_when_the_consumer_crashes_before_committing() -> None:
    s = Scenario(acks="all")
    start_consumer(s).send().flush(4)
    s.poll_records()
    s.do(a.Process("c0"))
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0")).finish()
    found = s.anomalies()
    assert [d["value"] for d in found["processed-more-than-once"]] == [1]
    assert "processed-zero-times" not in found


def test_a_lost_response_and_a_retry_write_the_record_twice() -> None:
    """Without idempotence, a retried batch whose first attempt landed is a duplicate."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.send().deliver("p0", leader)                 # appended; the response is queued
    s.tick(30000)                                  # request.timeout.ms: connection closed
    assert not s.cluster.ctx.network.queues.get((leader, "p0")), "late response dropped"
    s.tick(100).deliver("p0", leader).deliver(leader, "p0")
    assert s.values(leader, p) == [1, 1]
    s.finish()
    assert s.anomalies()["duplicate"][0]["offsets"] == [0, 1]


def test_a_stale_leader_epoch_is_fenced_not_served() -> None:
    """KIP-320: a fetch naming an older leader epoch gets FENCED_LEADER_EPOCH."""
    s = Scenario()
    p = s.partition()
    leader = s.leader(p)
    s.replica(leader, p).leader_epoch = 3
    s.cluster.broker_actors[leader].receive("c0", 0, m.FetchRequest(99, p, None, 0, -1, 2))
    ((_, response),) = list(s.cluster.ctx.network.queues[(leader, "c0")])[-1:]
    assert response.error == m.FENCED_LEADER_EPOCH


def test_clean_elections_never_make_an_in_sync_follower_truncate_a_committed_record() -> None:
    """A leader that assigned an epoch and appended nothing must not leave a stale epoch
    entry behind (Kafka's LeaderEpochFileCache.assign / truncateFromEnd); with one, an
    in-sync follower was told to truncate a committed record, over and over."""
    from kafkacheck.runner import Run
    from model.config import Config

    run = Run(Config.from_settings({"acks": "1", "auto.offset.reset": "earliest"}))
    net = run.cluster.ctx.network          # partition 1: replicas (b1, b2, b0)

    def drain(block: tuple = ()) -> None:
        for _ in range(40):
            links = [link for link in net.ready_links() if link not in block]
            if not links:
                return
            for link in links:
                if net.queues.get(link):
                    run.apply(a.Deliver(*link))

    def step(*actions: object, block: tuple = ()) -> None:
        for action in actions:
            run.apply(action)
            drain(block)

    step(a.Send("p0", "k0"), a.Tick(100))
    step(a.Crash("b1"), a.Tick(10000))                           # b2 leads epoch 1
    step(a.Restart("b1"), a.Tick(100), a.Tick(100))
    step(a.Send("p0", "k0"), a.Tick(100), a.Tick(100), a.Tick(100), block=(("b2", "b1"),))
    step(a.Crash("b2"), a.Tick(10000), block=(("ctl", "b0"),))   # b1 leads epoch 2, empty
    step(a.Crash("b1"), a.Tick(10000))                           # b0 leads epoch 3
    step(a.Restart("b1"), a.Tick(100), a.Tick(100))              # b1 copies r1 (epoch 1)
    step(a.Restart("b2"), a.Tick(100), a.Tick(100))
    step(a.Crash("b0"), a.Tick(10000))                           # b1 leads epoch 4, clean
    run.finish()
    assert not [e for e in run.cluster.history if e.f == "truncate" and e.process == "b2"]
    assert run.verdict().valid, run.verdict().anomalies


def test_a_refusal_of_an_older_isr_request_does_not_cancel_a_newer_one() -> None:
    """Responses are matched to their AlterPartition request, as in Kafka."""
    s = Scenario(acks="all")
    p = s.partition()
    partition = s.replica(s.leader(p), p)
    partition.pending_isr, partition.pending_corr = ("b0", "b1"), 7
    partition.on_alter_partition_response(m.AlterPartitionResponse(6, p, m.INELIGIBLE_REPLICA))
    assert partition.pending_isr == ("b0", "b1"), "a stale refusal cleared the pending change"
    partition.on_alter_partition_response(m.AlterPartitionResponse(7, p, m.INELIGIBLE_REPLICA))
    assert partition.pending_isr is None


def test_an_isr_expansion_whose_answer_is_lost_still_bounds_the_high_watermark() -> None:
    """The controller applied an expansion but the leader never heard back: the leader
    keeps counting the new member (maximal ISR), resends, and learns the outcome."""
    s = Scenario(acks="all", **{"kafkacheck.replication.factor": "2"})
    p = s.partition()
    leader = s.leader(p)
    (follower,) = s.followers(p)
    shrink_isr_to_leader(s, p)
    s.deliver(follower, leader)                 # caught up: leader proposes the expansion
    assert s.replica(leader, p).pending_isr == (leader, follower)
    s.deliver(leader, "ctl")                    # applied by the controller...
    assert s.isr(p) == (leader, follower)
    s.do(a.Partition((leader, "p0", "c0")))     # ...but the answer never arrives
    s.send().deliver("p0", leader)
    assert s.log(leader, p).hw == 0, "the HW passed an ISR member it must wait for"
    s.do(a.Heal()).tick(100).sync_metadata()
    assert s.replica(leader, p).isr == (leader, follower)
    assert s.replica(leader, p).pending_isr is None


def test_a_commit_request_timeout_closes_the_connection_and_forgets_fetches_queued_on_it() -> None:
    """The coordinator also leads the partition being fetched: closing the connection
    after the commit's request.timeout.ms drops the queued fetch too, and the consumer
    must resend it; commitSync itself retries and succeeds."""
    s = Scenario(acks="all", **{"kafkacheck.partitions": "2"})
    coordinator = s.leader("__consumer_offsets-40")
    p = next(p for p in (0, 1) if s.leader(p) == coordinator)
    start_consumer(s).do(a.Send("p0", "k0", partition=p)).flush(8)
    assert s.log(coordinator, p).hw == 1
    s.poll_records()       # records returned, next fetch queued
    s.do(a.Process("c0")).do(a.Commit("c0"))            # the commit queues behind it
    consumer = s.cluster.consumers["c0"]
    assert p in consumer.fetching
    s.tick(30000)                                       # the request times out
    assert not s.cluster.ctx.network.queues.get(("c0", coordinator))
    assert p not in consumer.fetching, "a fetch lost with the connection is still awaited"
    assert not s.ops("commit", "info") and not s.ops("commit", "fail"), \
        "commitSync retries a timed-out request until default.api.timeout.ms"
    s.finish()
    assert s.ops("commit", "ok")
    assert "unsettled" not in s.anomalies()


def test_a_record_with_an_explicit_partition_bypasses_the_partitioner() -> None:
    s = Scenario(acks="1", **{"kafkacheck.partitions": "2"})
    other = 1 - s.partition("k0")
    s.do(a.Send("p0", "k0", partition=other)).flush(2)
    assert s.values(s.leader(other), other) == [1]
    assert s.ops("send", "ok")[0].value == [["send", other, [0, 1]]]
    assert not s.cluster.is_enabled(a.Send("p0", "k0", partition=2))
