"""The search's aimed rules (``kafkacheck.machine``), driven by hand on a scripted run.

A hunt test only shows that a rule helps find something; these pin down what each aimed
rule does, so a change that quietly breaks one fails here rather than as a slower hunt:
a stall lasts one ``request.timeout.ms`` or up to four (never past
``delivery.timeout.ms``), and a late transactional request is delivered at KIP-890's
moment and not before.
"""

from __future__ import annotations

from typing import Any

from kafkacheck.machine import KafkaMachine, machine_for
from model import actions as a
from model import messages as m
from tests.scenario import Scenario
from tests.test_transactions import TXN, coordinator_state, final, hold_back, settle


class Choose:
    """Hypothesis's ``data`` stand-in: every ``sampled_from`` draw takes element ``index``."""

    def __init__(self, index: int = 0, by_label: dict[str, int] | None = None) -> None:
        self.index = index
        self.by_label = by_label or {}

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return strategy.elements[self.by_label.get(label, self.index)]


def machine_on(s: Scenario, faults: set[str]) -> KafkaMachine:
    """A machine for the scenario's configuration, driving the scenario's own run."""
    machine = machine_for(s.run.config)()
    machine.run = s.run
    machine.choose_faults(faults)
    return machine


def stalled_for(settings: dict[str, str], index: int) -> int:
    s = Scenario(**settings)
    machine = machine_on(s, {"late-request"})
    s.do(a.Send("p0", "k0"))
    links = machine._client_links()
    assert links, "a queued produce request makes its connection stallable"
    before = s.cluster.ctx.now
    machine._stall(Choose(index), links)
    return s.cluster.ctx.now - before


def test_a_stall_lasts_a_request_timeout_or_up_to_four_within_the_delivery_timeout() -> None:
    """``stall_connection``: one ``request.timeout.ms`` (NetworkClient times the request
    out and closes the connection) or long enough for the batch to run out of
    ``delivery.timeout.ms`` (Sender.getExpiredInflightBatches), capped at four request
    timeouts so unbounded delivery timeouts do not stall a run for days."""
    short = {"request.timeout.ms": "10000"}
    assert stalled_for(short, 0) == 10000
    assert stalled_for(short, 1) == 40000                  # 4 x 10 s < 120 s default
    assert stalled_for({**short, "delivery.timeout.ms": "25000"}, 1) == 25000
    assert stalled_for({**short, "delivery.timeout.ms": "2147483647"}, 1) == 40000


def test_no_client_connection_stalls_without_the_late_request_family() -> None:
    """Swarm testing: a run that did not draw ``late-request`` has no stall to make."""
    s = Scenario()
    machine = machine_on(s, {"broker-crash"})
    s.do(a.Send("p0", "k0"))
    assert not machine._client_links()


def test_a_late_end_txn_is_aimed_at_the_next_open_transaction_only() -> None:
    """``deliver_late_transactional`` and KAFKA-17754: an EndTxn(COMMIT) that outlived
    its request timeout matters once the producer's next transaction is open at the
    coordinator with a partition in it (same epoch under the classic protocol); while
    the producer is READY it would only meet its own completed transaction.  Delivered
    then, it commits the next transaction (``TransactionCoordinator.handleEndTransaction``
    takes it as the current transaction's)."""
    s = Scenario(**{**TXN, "kafka.version": "3.9", "kafkacheck.partitions": "2",
                    "request.timeout.ms": "5000", "isolation.level": "read_committed"})
    machine = machine_on(s, {"late-request"})
    producer = s.cluster.producers["p0"]
    s.do(a.Send("p0", "k0", partition=0))
    settle(s)
    s.do(a.CommitTransaction("p0"))
    hold_back(s, m.EndTxnRequest, rounds=1)
    s.do(a.Tick(5000))                          # timed out: retried, the original late
    settle(s)
    assert producer.txn.state == "READY" and s.cluster.ctx.network.late_links()
    assert not machine._late_transactional_links()        # not yet the moment
    s.do(a.Send("p0", "k0", partition=0))
    settle(s)
    assert coordinator_state(s).state == "Ongoing"
    assert [src for src, _ in machine._late_transactional_links()] == ["p0"]
    machine.deliver_late_transactional(Choose())
    assert not s.cluster.ctx.network.links_with_late()
    settle(s)
    assert coordinator_state(s).state == "CompleteCommit"
    assert producer.txn.state == "IN_TRANSACTION"          # the client never asked


def late_commit_behind(version: str, answered: bool = True) -> tuple[Scenario, KafkaMachine]:
    """A committed transaction whose first EndTxn is still travelling late (with the
    retried EndTxn not yet answered, unless ``answered``)."""
    s = Scenario(**{**TXN, "kafka.version": version, "kafkacheck.partitions": "2",
                    "request.timeout.ms": "5000", "isolation.level": "read_committed"})
    machine = machine_on(s, {"late-request"})
    s.do(a.Send("p0", "k0", partition=0))
    settle(s)
    s.do(a.CommitTransaction("p0"))
    hold_back(s, m.EndTxnRequest, rounds=1)
    s.do(a.Tick(5000))
    if not answered:
        assert s.cluster.producers["p0"].txn.state == "COMMITTING_TRANSACTION"
        return s, machine
    settle(s)
    assert s.cluster.producers["p0"].txn.state == "READY"
    return s, machine


def test_the_plain_late_step_leaves_a_late_end_txn_to_the_aimed_rule() -> None:
    """While its producer is READY, a late EndTxn would meet its own completed
    transaction; the plain ``deliver-late`` step leaves it, the aimed rule takes it."""
    s, machine = late_commit_behind("3.9")
    assert s.cluster.ctx.network.late_links()
    assert not machine._plain_late_links()
    assert machine._ended_behind_late_end_txn() == ["p0"]


def test_a_write_across_a_late_end_txn_tears_the_transaction_only_before_version_2() -> None:
    """``write_across_a_late_end_txn``: the next transaction writes one partition, the
    late EndTxn(COMMIT) lands, the transaction writes the other partition; an
    application that then aborts sees its first write committed (KAFKA-17754) under the
    classic protocol, and nothing of it with transaction version 2, whose epoch bump
    fences the late request.  A commit still waiting for its retried EndTxn's answer is
    carried through first."""
    for version, answered, torn in (("3.9", True, True), ("3.9", False, True),
                                     ("4.0", True, False)):
        s, machine = late_commit_behind(version, answered)
        assert machine._ended_behind_late_end_txn() == ["p0"]
        machine.write_across_a_late_end_txn(Choose())
        producer = s.cluster.producers["p0"]
        assert not s.cluster.ctx.network.links_with_late(), version
        assert len({partition for partition, _ in producer.txn_sends}) == 2, version
        if producer.txn.can_abort():
            s.do(a.AbortTransaction("p0"))
        settle(s)
        anomalies = final(s)
        assert ("torn-transaction" in anomalies) == torn, (version, anomalies)


def test_the_plain_late_step_delivers_a_late_end_txn_once_a_stray_add_opened_a_transaction() -> None:
    """The plain step holds a READY producer's late EndTxn back only while no
    transaction of its is open.  A late AddPartitionsToTxn of the same epoch, landing
    after the commit, opens one at the coordinator the client knows nothing of
    (``TransactionCoordinator.handleAddPartitionsToTransaction`` from CompleteCommit,
    classic protocol); the late EndTxn behind it then ends that transaction, so the plain
    step must be free to deliver it."""
    s = Scenario(**{**TXN, "kafka.version": "3.9", "kafkacheck.partitions": "2",
                    "request.timeout.ms": "5000", "isolation.level": "read_committed"})
    machine = machine_on(s, {"late-request"})
    producer = s.cluster.producers["p0"]
    s.do(a.Send("p0", "k0", partition=0))
    hold_back(s, m.AddPartitionsToTxnRequest, rounds=1)
    s.do(a.Tick(5000))                          # the Add times out, resent, the first late
    settle(s)
    s.do(a.CommitTransaction("p0"))
    hold_back(s, m.EndTxnRequest, rounds=1)
    s.do(a.Tick(5000))                          # the EndTxn too
    settle(s)
    assert producer.txn.state == "READY"
    (link,) = s.cluster.ctx.network.late_links()
    assert [type(msg) for _, msg in s.cluster.ctx.network.late[link]] == [
        m.AddPartitionsToTxnRequest, m.EndTxnRequest]
    assert machine._plain_late_links() == [link]
    s.do(a.DeliverLate(*link))                  # the stray Add opens a transaction
    settle(s)                                   # (once __transaction_state has it)
    assert coordinator_state(s).state == "Ongoing" and producer.txn.state == "READY"
    assert machine._plain_late_links() == [link]


def test_a_late_end_txn_the_kernel_gave_up_on_is_nobodys_to_aim() -> None:
    """``net.ipv4.tcp_orphan_retries``: 102.2 s after the late EndTxn was first sent
    its client's kernel resets the orphaned connection, the request never arrives, the
    history says so (``orphan-reset``), and no rule can land it any more."""
    s, machine = late_commit_behind("3.9")
    assert machine._ended_behind_late_end_txn() == ["p0"]
    s.do(a.Tick(102_200))
    assert not s.cluster.ctx.network.links_with_late()
    assert not machine._ended_behind_late_end_txn()
    assert not machine._late_transactional_links() and not machine._plain_late_links()
    resets = [e for e in s.cluster.history if e.f == "orphan-reset"]
    assert [(e.process, e.value["lost"]) for e in resets] == [("p0", 1)]


def test_an_abort_ahead_of_a_late_produce_hangs_the_transaction_only_before_3_6() -> None:
    """``abort_ahead_of_a_late_produce``: a produce stalled until its batch expired
    (``delivery.timeout.ms``) is still travelling late; the application aborts, the
    markers are written, and the produce lands after them.  Before 3.6 the leader
    appends it and opens a transaction nothing will end (KAFKA-14402); 3.6's
    verification (KIP-890 part 1, ``AddPartitionsToTxnManager``) refuses it."""
    for version, hangs in (("3.5", True), ("3.6", False)):
        s = Scenario(**{**TXN, "kafka.version": version, "request.timeout.ms": "5000",
                        "delivery.timeout.ms": "20000", "transaction.timeout.ms": "900000",
                        "isolation.level": "read_committed"})
        machine = machine_on(s, {"late-request"})
        s.do(a.Send("p0", "k0"))
        settle(s, rounds=1)                         # added to the transaction, produce out
        machine._stall(Choose(0, {"stall": 1}), machine._client_links(
            lambda msg: isinstance(msg, m.ProduceRequest)))
        assert machine._aborting_ahead_of_a_late_produce() == ["p0"], version
        network = s.cluster.ctx.network
        late = sum(len(queue) for queue in network.late.values())
        machine.abort_ahead_of_a_late_produce(Choose())
        assert s.cluster.producers["p0"].txn.state == "READY", version
        # The batch expired (an abortable error), so the client bumped its epoch after
        # the abort's markers (KIP-360): the late produce still lands, at the old epoch.
        assert s.cluster.producers["p0"].idempotence.producer_epoch == 1, version
        assert sum(len(queue) for queue in network.late.values()) < late, \
            "the rule itself landed the late produce"
        anomalies = final(s)
        assert ("hanging-transaction" in anomalies) == hangs, (version, anomalies)


# -- the cooperative group machine ----------------------------------------------------------

COOPERATIVE_GROUP = {"min.insync.replicas": "2", "kafkacheck.consumer.api": "subscribe",
                     "kafkacheck.consumers": "3", "kafkacheck.partitions": "4",
                     "partition.assignment.strategy": "cooperative-sticky"}


def cooperative_machine(version: str) -> Any:
    from kafkacheck.matrix import hunt_config
    machine = machine_for(hunt_config({**COOPERATIVE_GROUP, "kafka.version": version}),
                          target=frozenset({"group-overlap"}))()
    machine.choose_faults({"client-crash", "late-request"})
    machine.form_group(20)
    return machine


class Take:
    """``data`` stand-in drawing one given value."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return self.value


def test_cooperative_members_get_their_own_machine_and_start_from_a_formed_group() -> None:
    """CooperativeGroupMachine is chosen by the rebalance protocol the assignors give
    (ConsumerCoordinator, KIP-429); ``form_group``'s twenty heartbeat rounds leave every
    member stable with partitions."""
    machine = cooperative_machine("4.4")
    assert type(machine).__mro__[1].__name__ == "CooperativeGroupMachine"
    consumers = machine.run.cluster.consumers.values()
    assert all(c.membership.stable and c.partitions for c in consumers)


def test_a_slow_member_connection_delivers_each_message_after_its_latency() -> None:
    """``slow_member_connection``: a message to or from the slow member is delivered by
    ``flush`` only once it has been in flight for the latency; the others' move at once."""
    machine = cooperative_machine("4.4")
    network = machine.run.cluster.ctx.network
    machine.slow_member_connection(Take("c1"), 5000, 1)
    machine._apply(a.Tick(3000))            # heartbeats and fetches go out
    slow = [link for link, q in network.queues.items() if q and "c1" in link]
    others = [link for link, q in network.queues.items()
              if q and ("c0" in link or "c2" in link)]
    assert slow and others
    machine.flush()
    assert all(network.queues[link] for link in slow)          # 0 ms in flight < 5000
    assert not any(network.queues[link] for link in others)
    machine._apply(a.Tick(5000))
    machine.flush()
    now = machine.run.cluster.ctx.now
    assert not any(network.queues[link] and network.sent_at[link][0] <= now - 5000
                   for link in slow)


def test_a_rolling_restart_with_a_slow_member_reaches_kafka_14639_only_before_the_fix() -> None:
    """The two rules compose into KAFKA-13419's sequence: c0 is down for a minute (the
    group rebalances without it), c2's host is slow (5 s each way) when c0 comes back;
    c1 revokes a partition for c0 and rejoins at once, c2's late SyncGroup meets that
    rebalance, and c2 rejoins claiming its old generation's partition.  On 3.3
    (AbstractStickyAssignor ignores claims below the highest generation) the partition
    goes to another member while c2 still owns it; on 4.4 (KAFKA-14639) never."""
    found = {}
    for version in ("3.3", "4.4"):
        machine = cooperative_machine(version)
        machine.slow_member_connection(Take("c2"), 5000, 5)
        machine.bounce_member(Take("c0"), 60000)
        machine.pass_time(1000, 40)
        machine.run.finish()
        found[version] = "group-overlap" in machine.run.verdict().invalid
    assert found == {"3.3": True, "4.4": False}
