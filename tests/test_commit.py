"""Offset commits through the group coordinator, as Kafka stores and the Java client
sends them.

* The coordinator of a group is the leader of ``__consumer_offsets`` partition
  ``Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions``
  (``GroupCoordinatorService.partitionFor``); other brokers answer ``NOT_COORDINATOR``.
* Commits are records in that partition, answered once replicated to its ISR
  (``offsets.commit.required.acks=-1``), so they survive a coordinator failover.
* ``KafkaConsumer.commitSync`` (``ConsumerCoordinator.commitOffsetsSync``) retries
  retriable errors, rediscovering the coordinator (``FindCoordinator``), until
  ``default.api.timeout.ms``.
"""

from __future__ import annotations

from model import actions as a
from model import messages as m
from model.broker.group_coordinator import coordinator_partition, java_abs, java_string_hash
from tests.scenario import Scenario
from tests.test_scenarios import start_consumer

OFFSETS = "__consumer_offsets-40"   # abs("kafkacheck".hashCode()) % 50


def test_java_string_hash_and_utils_abs_match_java() -> None:
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112
    assert java_string_hash("") == 0
    assert java_string_hash("polygenelubricants") == -(1 << 31)   # Integer.MIN_VALUE
    assert java_abs(java_string_hash("polygenelubricants")) == 0    # Utils.abs, not Math.abs
    assert coordinator_partition("kafkacheck", 50) == OFFSETS
    assert coordinator_partition("polygenelubricants", 50) == "__consumer_offsets-0"


def test_only_the_leader_of_the_groups_offsets_partition_coordinates_it() -> None:
    s = Scenario(acks="all")
    coordinator = s.leader(OFFSETS)
    other = next(b for b in s.cluster.brokers if b != coordinator)
    s.cluster.broker_actors[other].receive(
        "c0", 0, m.OffsetCommitRequest(99, "kafkacheck", ((0, 1),)))
    (_, response), = [x for x in s.cluster.ctx.network.queues[(other, "c0")]
                      if isinstance(x[1], m.OffsetCommitResponse)]
    assert response.error == m.NOT_COORDINATOR


def committed_once(s: Scenario) -> Scenario:
    start_consumer(s).send().flush(4)
    s.poll_records().do(a.Process("c0")).do(a.Commit("c0"))
    return s


def test_commit_sync_follows_the_coordinator_when_it_moves() -> None:
    """The coordinator dies with the commit in flight: commitSync rediscovers the new
    coordinator and commits there, within default.api.timeout.ms."""
    s = Scenario(acks="all")
    coordinator = s.leader(OFFSETS)
    committed_once(s)
    s.do(a.Crash(coordinator))                         # the commit request is lost
    assert not s.ops("commit", "ok") and not s.ops("commit", "fail")
    s.tick(10000).sync_metadata().tick(100).flush(8)
    assert s.leader(OFFSETS) != coordinator
    assert len(s.ops("commit", "ok")) == 1
    assert s.cluster.consumers["c0"].coordinator.coordinator == s.leader(OFFSETS)


def test_commit_sync_gives_up_at_default_api_timeout_ms() -> None:
    s = Scenario(acks="all", **{"default.api.timeout.ms": "40000"})
    committed_once(s)
    s.do(a.Partition(("c0",)))                          # no broker reachable
    s.tick(30000)
    assert not s.ops("commit", "fail") and not s.ops("commit", "info"), "gave up early"
    s.tick(10000)
    (gave_up,) = s.ops("commit", "info")               # the first attempt may have landed
    assert gave_up.meta["error"] == "TimeoutException"


def test_committed_offsets_survive_a_coordinator_failover() -> None:
    """Stored in the replicated __consumer_offsets partition: a restarted consumer
    resumes from the committed offset after the coordinator changed."""
    s = Scenario(acks="all")
    coordinator = s.leader(OFFSETS)
    committed_once(s).flush(8)
    assert len(s.ops("commit", "ok")) == 1
    s.do(a.Crash(coordinator)).tick(10000).sync_metadata()
    s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0")).finish()
    assert s.leader(OFFSETS) != coordinator or s.internal("election")
    assert len(s.ops("process")) == 1, "the restarted consumer processed the record again"
    positions = [e.value for e in s.internal("position") if e.process == "c0"]
    assert {"partition": 0, "offset": 1, "reason": "committed"} in positions
