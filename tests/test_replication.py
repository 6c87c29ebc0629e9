"""The leader's ISR and high-watermark rules, from Kafka's ``Partition`` and ``Replica``.

* ``Partition.checkEnoughReplicasReachOffset`` completes an ``acks=all`` append against
  the *maximal* ISR; ``maybeIncrementLeaderHW`` bounds the HW by the maximal ISR and by
  caught-up eligible replicas about to join it (KAFKA-15021), and holds it while the ISR
  is below ``min.insync.replicas`` (KAFKA-15583).
* ``Replica.isCaughtUp``: a follower at the leader's log end offset is in sync however
  long ago it fetched; otherwise it must have caught up within
  ``replica.lag.time.max.ms``.  ``ReplicaManager`` checks this every
  ``replica.lag.time.max.ms / 2``, not continuously.
"""

from __future__ import annotations

from model import actions as a
from model import messages as m
from model.broker.partition import DelayedAppend, FollowerState
from tests.scenario import Scenario


def alter_partitions(s: Scenario, leader: str) -> list:
    return [msg for _, msg in s.cluster.ctx.network.queues.get((leader, "ctl"), ())
            if isinstance(msg, m.AlterPartition)]


def test_an_acks_all_append_completes_against_the_maximal_isr() -> None:
    """Committed ISR {leader} plus an expansion in flight: the maximal ISR has two
    members, so with min.insync.replicas=2 the append succeeds once the HW passes it
    (the committed ISR alone would give NOT_ENOUGH_REPLICAS_AFTER_APPEND)."""
    s = Scenario(acks="all", **{"min.insync.replicas": "2"})
    p = s.partition()
    leader = s.replica(s.leader(p), p)
    follower = s.followers(p)[0]
    outcomes: list = []
    leader.isr, leader.pending_isr = (leader.name,), (leader.name, follower)
    leader.log.append(leader.leader_epoch, "k0", 1, "p0")
    leader.delayed.append(DelayedAppend(0, 1, 10**9, lambda e, o: outcomes.append((e, o))))
    leader.log.hw = 1
    leader._complete_delayed()
    assert outcomes == [(None, 0)]


def test_an_acks_all_append_fails_after_append_when_even_the_maximal_isr_is_too_small() -> None:
    s = Scenario(acks="all", **{"min.insync.replicas": "2"})
    p = s.partition()
    leader = s.replica(s.leader(p), p)
    outcomes: list = []
    leader.isr, leader.pending_isr = (leader.name,), None
    leader.log.append(leader.leader_epoch, "k0", 1, "p0")
    leader.delayed.append(DelayedAppend(0, 1, 10**9, lambda e, o: outcomes.append((e, o))))
    leader.log.hw = 1
    leader._complete_delayed()
    assert outcomes == [(m.NOT_ENOUGH_REPLICAS_AFTER_APPEND, None)]


def test_the_high_watermark_waits_for_a_caught_up_replica_about_to_join_the_isr() -> None:
    """KAFKA-15021: a replica outside the ISR that caught up recently and is eligible
    bounds the HW, so that it is never added to the ISR without records below the HW."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.replica(s.leader(p), p)
    f1, f2 = s.followers(p)
    s.send().deliver("p0", leader.name)
    leader.isr = (leader.name, f1)
    epoch_of = s.cluster.broker_actors[leader.name].metadata.broker_epoch
    leader.followers[f1] = FollowerState(1, 1, 0, 0, epoch_of(f1))
    leader.followers[f2] = FollowerState(0, 1, 0, 0, epoch_of(f2))   # caught up at t=0
    leader.maybe_increment_hw()
    assert leader.log.hw == 0, "the HW passed a replica about to join the ISR"
    leader.followers[f2].last_caught_up_time = -10**6                # long ago: not joining
    leader.maybe_increment_hw()
    assert leader.log.hw == 1


def test_the_high_watermark_holds_while_the_isr_is_below_min_insync_replicas() -> None:
    """KAFKA-15583 (3.7): acks=1 writes are acknowledged but not exposed to consumers
    while the ISR is smaller than min.insync.replicas."""
    s = Scenario(acks="1", **{"min.insync.replicas": "2"})
    p = s.partition()
    leader = s.replica(s.leader(p), p)
    s.send().deliver("p0", leader.name)
    leader.isr = (leader.name,)
    leader.maybe_increment_hw()
    assert leader.log.hw == 0
    leader.isr = (leader.name, *s.followers(p))
    for f in s.followers(p):
        leader.followers[f] = FollowerState(1, 1, 0, 0, None)
    leader.maybe_increment_hw()
    assert leader.log.hw == 1


def test_a_follower_at_the_leaders_log_end_stays_in_sync_however_long_it_is_silent() -> None:
    """``Replica.isCaughtUp``'s first clause: leaderEndOffset == logEndOffset."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    for f in s.followers(p):
        s.fetch_round(f, p)                  # they report LEO 0 = the leader's LEO
    s.tick(30000).tick(30000).tick(30000)    # silent for 90 s; checks at 15 s intervals
    assert s.isr(p) == (leader, *s.followers(p))
    assert not [r for r in alter_partitions(s, leader) if r.partition == p], "proposed a shrink"


def test_a_lagging_follower_is_removed_at_the_next_scheduled_isr_check_not_at_once() -> None:
    """The ISR check runs every replica.lag.time.max.ms / 2 (15 s): a follower last
    caught up at 0 is still within 30 s at the 30 s check and is removed at 45 s."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.send().deliver("p0", leader)           # the followers are now behind the leader
    s.tick(31000)                            # past 30 s, but the last check ran at 30 s
    assert not [r for r in alter_partitions(s, leader) if r.partition == p]
    assert s.replica(leader, p).pending_isr is None
    s.tick(14000)                            # 45 s: the next check
    assert s.replica(leader, p).pending_isr == (leader,)


def test_a_fetch_response_for_an_abandoned_fetch_is_ignored() -> None:
    """AbstractFetcherThread drops a response whose partition it no longer fetches in
    that state: here the answer of a leader that died (its bytes still arrive) after
    the follower moved to the next leader epoch."""
    s = Scenario(acks="1")
    p = s.partition()
    old = s.leader(p)
    follower = s.followers(p)[0]
    s.send().deliver("p0", old)                        # m1, only on the old leader
    s.deliver(follower, old)                           # the follower's fetch; answer queued
    s.do(a.Crash(old)).tick(10000).sync_metadata()     # a new epoch; the follower refetches
    assert s.replica(follower, p).leader_epoch == 1
    late = [msg for _, msg in s.cluster.ctx.network.queues[(old, follower)]
            if isinstance(msg, m.FetchResponse) and msg.partition == p]
    assert late and late[0].records, "the old leader's answer is still on its way"
    while s.cluster.ctx.network.queues.get((old, follower)):
        s.deliver(old, follower)
    assert s.values(follower, p) == [], "applied an answer to a fetch it had abandoned"


def test_a_follower_rejoins_the_isr_only_once_it_reaches_the_high_watermark() -> None:
    """Partition.isFollowerInSync: its log end must reach the HW (and this epoch's start)
    before the leader proposes it for the ISR."""
    s = Scenario(acks="1", **{"kafkacheck.replication.factor": "2"})
    p = s.partition()
    leader = s.leader(p)
    (follower,) = s.followers(p)
    s.tick(31000).tick(15000).deliver(leader, "ctl").sync_metadata()   # ISR = {leader}
    s.send().deliver("p0", leader).send().deliver("p0", leader)
    assert s.log(leader, p).hw == 2
    s.fetch_round(follower, p)                         # fetched at 0: behind the HW
    assert s.replica(leader, p).pending_isr is None
    s.fetch_round(follower, p)                         # fetched at 2 = the HW
    assert s.replica(leader, p).pending_isr == (leader, follower)


def test_an_isr_exactly_min_insync_replicas_large_accepts_acks_all_writes() -> None:
    """The refusal is for an ISR *smaller* than min.insync.replicas (inSyncSize < minIsr)."""
    s = Scenario(acks="all", retries=0, **{"min.insync.replicas": "3"})
    p = s.partition()
    assert len(s.replica(s.leader(p), p).isr) == 3
    s.send().flush(6)
    assert len(s.ops("send", "ok")) == 1


def test_every_leader_change_bumps_the_leader_epoch_and_starts_a_new_epoch_in_the_log() -> None:
    """A new leader epoch per election (PartitionChangeBuilder), recorded by the new
    leader at its log end (Partition.makeLeader -> LeaderEpochFileCache.assign)."""
    s = Scenario(acks="1")
    p = s.partition()
    s.send().flush(4)
    epochs = []
    for _ in range(2):
        leader = s.leader(p)
        s.do(a.Crash(leader)).tick(10000).sync_metadata()
        new = s.leader(p)
        epochs.append(s.cluster.controller.partitions[p].leader_epoch)
        assert s.log(new, p).latest_epoch() == epochs[-1]
        s.restart(leader).flush(4)
    assert epochs == [1, 2]
