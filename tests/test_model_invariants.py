"""The model polices itself: every model-state invariant fails loudly when broken.

Each test builds the broken state the invariant names (directly, or by planting the bug
in the model that would produce it) and checks that the monitor raises
:class:`ModelBugError`, a bug in kafkacheck, never an anomaly about Kafka.  The one
exception, committed data lost after an unclean election, is a finding.
"""

from __future__ import annotations

import pytest

from invariants.model_state import ModelBugError, ModelStateMonitor
from model import actions as a
from model.broker.broker import Broker
from model.broker.log import Record
from model.metadata import PartitionRecord, PartitionState, RegisterBrokerRecord
from model.views import BrokerView, ClusterView, PartitionView, ReplicaView
from tests.scenario import Scenario

R1, R2 = Record(0, 0, "k", 1, "p0"), Record(0, 1, "k", 2, "p0")


def replica(name: str, *, leader: bool, epoch: int = 1, hw: int = 0, records=(),
            maximal: tuple = ("b0", "b1"), committed: tuple = ("b0",)) -> ReplicaView:
    return ReplicaView(name, True, leader, epoch, hw, list(records),
                       maximal if leader else (), "b0", epoch, committed if leader else ())


def cluster(leader_records=(), follower_records=(), hw=0, *, log=(), epoch=1,
            active=True, maximal: tuple = ("b0", "b1")) -> ClusterView:
    partition = PartitionView(0, "b0", epoch, ("b0", "b1"), {
        "b0": replica("b0", leader=True, epoch=epoch, hw=hw, records=leader_records,
                      maximal=maximal),
        "b1": replica("b1", leader=False, epoch=epoch, records=follower_records)})
    return ClusterView([partition], list(log), {"b0": active, "b1": True})


def state(leader: str | None, isr: tuple, epoch: int, partition_epoch: int) -> PartitionState:
    return PartitionState(0, ("b0", "b1", "b2"), isr, leader, epoch, partition_epoch)


def test_a_high_watermark_beyond_a_maximal_isr_member_is_a_model_bug() -> None:
    with pytest.raises(ModelBugError, match="hw-exceeds-isr-leo"):
        ModelStateMonitor().check(cluster([R1], [], hw=1))


def test_a_replica_joining_the_isr_below_the_high_watermark_is_a_model_bug() -> None:
    """Kafka's Partition.isFollowerInSync admits a follower to the ISR only once its log
    end reaches the leader's HW: b1 joins with nothing while the HW is 1."""
    monitor = ModelStateMonitor()
    monitor.check(cluster([R1], [], hw=1, maximal=("b0",)))
    with pytest.raises(ModelBugError, match="isr-joined-behind-hw"):
        monitor.check(cluster([R1], [], hw=1, maximal=("b0", "b1")))


def test_a_replica_back_through_the_committed_isr_is_not_an_expansion() -> None:
    """Partition.makeLeader may replay a same-epoch partition state whose ISR names a
    replica the leader had stopped counting (test below): that is Kafka's race, so only
    the leader's own expansions in flight are held to the HW."""
    monitor = ModelStateMonitor()
    monitor.check(cluster([R1], [], hw=1, maximal=("b0",)))
    view = cluster([R1], [], hw=1)
    view.partitions[0].replicas["b0"] = replica("b0", leader=True, hw=1, records=[R1],
                                                committed=("b0", "b1"))
    monitor.check(view)


def test_a_replica_joining_the_isr_at_the_high_watermark_is_fine() -> None:
    monitor = ModelStateMonitor()
    monitor.check(cluster([R1], [], hw=1, maximal=("b0",)))
    assert monitor.check(cluster([R1], [R1], hw=1, maximal=("b0", "b1"))) == []


def test_isr_members_that_disagree_below_the_high_watermark_are_a_model_bug() -> None:
    with pytest.raises(ModelBugError, match="isr-log-mismatch"):
        ModelStateMonitor().check(cluster([R1], [R2], hw=1))


def test_a_fenced_leader_is_a_model_bug() -> None:
    with pytest.raises(ModelBugError, match="fenced-leader"):
        ModelStateMonitor().check(cluster(active=False))


def test_a_clean_election_from_outside_the_isr_is_a_model_bug() -> None:
    log = [PartitionRecord(state("b0", ("b0", "b1"), 0, 0)),
           PartitionRecord(state("b2", ("b2",), 1, 1))]
    with pytest.raises(ModelBugError, match="clean-election-outside-isr"):
        ModelStateMonitor().check(cluster(log=log))
    log[1] = PartitionRecord(state("b2", ("b2",), 1, 1), unclean=True)
    ModelStateMonitor().check(cluster(log=log))


def test_an_unclean_election_the_topic_does_not_allow_is_a_model_bug() -> None:
    """PartitionChangeBuilder elects outside the ISR only when the topic's
    unclean.leader.election.enable is true; otherwise the partition stays leaderless."""
    log = [PartitionRecord(state("b0", ("b0",), 0, 0)),
           PartitionRecord(state("b1", ("b1",), 1, 1), unclean=True)]
    with pytest.raises(ModelBugError, match="unclean-election-disabled"):
        ModelStateMonitor(unclean_allowed=lambda p: False).check(cluster(log=log, epoch=1))
    ModelStateMonitor(unclean_allowed=lambda p: True).check(cluster(log=log, epoch=1))


def test_a_broken_run_keeps_reporting_its_first_violation() -> None:
    """Later checks (a teardown settling the run) must not replace the first model bug
    with one that only follows from it (the metadata log read twice)."""
    monitor = ModelStateMonitor(unclean_allowed=lambda p: False)
    log = [PartitionRecord(state("b0", ("b0",), 0, 0)),
           PartitionRecord(state("b1", ("b1",), 1, 1), unclean=True)]
    for _ in range(2):
        with pytest.raises(ModelBugError, match="unclean-election-disabled"):
            monitor.check(cluster(log=log, epoch=1))


def test_a_leader_epoch_going_backwards_in_the_metadata_log_is_a_model_bug() -> None:
    log = [PartitionRecord(state("b0", ("b0",), 2, 2)),
           PartitionRecord(state("b1", ("b1",), 1, 3))]
    with pytest.raises(ModelBugError, match="metadata-epoch-regressed"):
        ModelStateMonitor().check(cluster(log=log))


def test_a_broker_acting_on_an_older_epoch_than_before_is_a_model_bug() -> None:
    monitor = ModelStateMonitor()
    monitor.check(cluster(epoch=3))
    with pytest.raises(ModelBugError, match="leader-epoch-regressed"):
        monitor.check(cluster(epoch=2))


def test_a_leader_its_own_metadata_does_not_name_is_a_model_bug() -> None:
    view = cluster()
    view.partitions[0].replicas["b0"] = ReplicaView(          # its metadata names b1
        "b0", True, True, 1, 0, [], ("b0",), "b1", 1)
    with pytest.raises(ModelBugError, match="leader-without-metadata"):
        ModelStateMonitor().check(view)


def test_a_leader_for_an_epoch_superseded_before_its_registration_is_a_model_bug() -> None:
    log = [PartitionRecord(state("b1", ("b1",), 2, 2)), RegisterBrokerRecord("b0", 1, 1)]
    with pytest.raises(ModelBugError, match="stale-leader-after-restart"):
        ModelStateMonitor().check(cluster(log=log, epoch=1))


def test_roles_taken_before_registering_and_catching_up_are_a_model_bug() -> None:
    log = [PartitionRecord(state("b0", ("b0",), 0, 0)), RegisterBrokerRecord("b0", 1, 0)]
    view = cluster(log=log)
    early = ClusterView(view.partitions, log, view.active,
                        [BrokerView("b0", True, 1, 5, has_roles=True)])
    with pytest.raises(ModelBugError, match="role-before-registration"):
        ModelStateMonitor().check(early)
    log.append(RegisterBrokerRecord("b0", 2, 1))
    behind = ClusterView(view.partitions, log, view.active,
                         [BrokerView("b0", True, 1, 2, has_roles=True)])
    with pytest.raises(ModelBugError, match="role-before-registration"):
        ModelStateMonitor().check(behind)
    caught_up = ClusterView(view.partitions, log, view.active,
                            [BrokerView("b0", True, 1, 3, has_roles=True)])
    ModelStateMonitor().check(caught_up)


def test_committed_data_lost_under_clean_elections_is_a_model_bug() -> None:
    monitor = ModelStateMonitor()
    monitor.check(cluster([R1], [R1], hw=1))
    with pytest.raises(ModelBugError, match="committed-prefix-changed"):
        monitor.check(cluster([R2], [R2], hw=1))


def test_committed_data_lost_after_an_unclean_election_is_a_finding() -> None:
    monitor = ModelStateMonitor()
    log = [PartitionRecord(state("b0", ("b0", "b1"), 1, 1))]
    monitor.check(cluster([R1], [R1], hw=1, log=log))
    log.append(PartitionRecord(state("b0", ("b0",), 2, 2), unclean=True))
    found = monitor.check(cluster([R2], [R2], hw=1, log=log, epoch=2))
    assert [f["name"] for f in found] == ["committed-prefix-changed"]


def test_the_monitor_catches_a_broker_that_publishes_before_catching_up(monkeypatch) -> None:
    """Plant the reviewed bug: a restarted broker takes roles from the metadata it had
    before its restart.  The monitor must stop the run, whatever the schedule does next."""
    def eager_restart(self: Broker) -> None:
        self.alive = True
        self.incarnation += 1
        self._start()
        self._publish(set(self.logs))        # before registering or catching up
        self._fetch_metadata()

    monkeypatch.setattr(Broker, "restart", eager_restart)
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.do(a.Crash(leader)).tick(10000)                 # epoch 1 elsewhere
    with pytest.raises(ModelBugError, match="role-before-registration"):
        s.do(a.Restart(leader))


def test_a_replayed_metadata_update_can_discard_an_isr_expansion_in_flight() -> None:
    """Kafka's Partition.makeLeader re-applies a partition state whose partition epoch
    equals the leader's ("allowed because the partition epoch is also updated by the
    AlterPartition response"), and so replaces a pending ISR expansion with the committed
    ISR; the expansion's answer is then ignored.  With the metadata log slow to arrive, the
    controller counts a replica the leader no longer does, and the leader commits records
    that replica lacks.  The model reproduces this as Kafka's code does: it is not a model
    bug, and data lost through it would be a finding (committed-prefix-changed with its
    cause), not a stopped hunt.  The schedule is one a hunt found (minimised)."""
    import json
    from pathlib import Path

    from kafkacheck.runner import Run
    from model.actions import action_from_json
    from model.config import Config

    data = json.loads((Path(__file__).parent / "data" / "isr_view_race.json").read_text())
    run = Run(Config.from_settings(data["config"]))
    for action in data["schedule"]:
        run.apply(action_from_json(action))
    cluster = run.cluster
    raced = []
    for p, state in cluster.controller.partitions.items():
        leader = cluster.broker_actors[state.leader].partitions[p]
        for replica in state.isr:
            if (replica not in leader.maximal_isr()
                    and cluster.broker_actors[replica].logs[p].leo < leader.log.hw):
                raced.append((p, replica))
    assert raced, "the controller's ISR should hold a replica behind the leader's HW"
    run.finish()


def test_a_run_knows_its_topic_forbids_unclean_elections() -> None:
    """The run's monitor reads unclean.leader.election.enable from the configuration, so
    a controller electing outside the ISR anyway (a planted bug) stops the run."""
    from tests.seeded import seeded_bugs
    from tests.test_scenarios import shrink_isr_to_leader
    with seeded_bugs().BY_NAME["unclean-when-disabled"].plant():
        s = Scenario(acks="all")
        p = s.partition()
        shrink_isr_to_leader(s, p)
        with pytest.raises(ModelBugError, match="unclean-election-disabled"):
            s.do(a.Crash(s.leader(p))).tick(10000)


def test_a_request_a_broker_reads_and_never_finishes_is_a_model_bug(monkeypatch) -> None:
    """``request-never-answered``: SocketServer unmutes a channel only once its request
    is answered, so a run that settles with a producer connection still muted means the
    model read a request and dropped it; that must fail loudly, not pass as a finding."""
    import pytest

    from invariants.model_state import ModelBugError
    from model.broker.broker import Broker
    from tests.scenario import Scenario

    s = Scenario(acks="all")
    leader = s.leader(s.partition())
    monkeypatch.setattr(Broker, "_on_produce", lambda self, src, generation, req: None)
    s.send().deliver("p0", leader)
    monkeypatch.undo()
    with pytest.raises(ModelBugError, match="request-never-answered"):
        s.finish()
