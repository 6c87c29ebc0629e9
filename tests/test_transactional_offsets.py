"""Offsets committed inside a transaction (KIP-98's ``sendOffsetsToTransaction``, with
KIP-447's group fencing and stable offset fetches), each test written from Kafka's
behaviour.

Broker: ``OffsetMetadataManager`` (pending transactional offsets, their replay at the
transaction marker, ``fetchOffsets`` with ``requireStable``), ``ClassicGroup.
validateOffsetCommit`` for transactional commits, ``KafkaApis.handleAddOffsetsToTxnRequest``.
Client: ``TransactionManager``'s ``AddOffsetsToTxnHandler`` and ``TxnOffsetCommitHandler``,
``ConsumerCoordinator``'s OffsetFetch with ``requireStable``.
"""

from __future__ import annotations

from typing import Any

from model import actions as a
from model import messages as m
from model.broker.group_coordinator import committed_offsets
from model.broker.log import ReplicaLog
from model.broker.transaction_coordinator import TransactionCoordinator
from model.clients.transactions import ABORTABLE_ERROR
from tests.scenario import Scenario
from tests.test_groups import OFFSETS, coordinator, poll_all

GROUP = "kafkacheck"


def offsets_log() -> ReplicaLog:
    """Producer 7 commits partition 0 at 5 inside its transaction (offset 1 of the
    log), after a plain commit of partition 0 at 2 (offset 0)."""
    log = ReplicaLog()
    log.append_batch(0, [(f"{GROUP}/0", 2, "c0")])
    log.append_batch(0, [(f"{GROUP}/0", 5, "p0")], 7, 0, -1, transactional=True)
    return log


def test_a_transactional_offset_is_stored_only_at_its_commit_marker() -> None:
    """OffsetMetadataManager.replayEndTransactionMarker: a TxnOffsetCommit's offsets wait
    in the producer's pending offsets; COMMIT stores them, ABORT drops them."""
    log = offsets_log()
    assert committed_offsets(log.records, GROUP) == ({0: 2}, {0})
    committed = offsets_log()
    committed.append_marker(0, 7, 0, True, 0)
    assert committed_offsets(committed.records, GROUP) == ({0: 5}, set())
    aborted = offsets_log()
    aborted.append_marker(0, 7, 0, False, 0)
    assert committed_offsets(aborted.records, GROUP) == ({0: 2}, set())


def test_a_plain_commit_written_before_the_marker_wins_over_the_transaction() -> None:
    """KAFKA-5247: at the COMMIT marker a pending offset replaces the stored one only if
    it was written after it; a plain commit appended between the TxnOffsetCommit and the
    marker stays."""
    log = offsets_log()
    log.append_batch(0, [(f"{GROUP}/0", 3, "c0")])
    log.append_marker(0, 7, 0, True, 0)
    assert committed_offsets(log.records, GROUP) == ({0: 3}, set())


# -- end to end: a transactional producer sends a group member's offsets ------------------


def pipeline(**settings: str) -> Scenario:
    """One subscribing consumer (read_committed) and one transactional producer."""
    base = {"kafkacheck.consumer.api": "subscribe", "kafkacheck.consumers": "1",
            "kafkacheck.partitions": "2", "enable.auto.commit": "false",
            "transactional.id": "app", "enable.idempotence": "true",
            "isolation.level": "read_committed"}
    return form(Scenario(**{k.replace(".", "_"): v
                            for k, v in {**base, **settings}.items()}))


def form(s: Scenario, rounds: int = 40) -> Scenario:
    """Poll and deliver everything (replica fetches of three internal partitions share
    the links) each second, until c0 holds a stable generation with its partitions."""
    for _ in range(rounds):
        poll_all(s)
        s.flush(4)
        consumer = s.cluster.consumers["c0"]
        if consumer.membership.stable and consumer.partitions:
            return s
        s.tick(1000)
    raise AssertionError("the group did not form")


def settle(s: Scenario, rounds: int = 12) -> Scenario:
    for _ in range(rounds):
        s.flush(4)
        s.do(a.Tick(100))
    return s


def send_offsets(s: Scenario, offsets: dict[int, int], generation: int | None = None,
                 member_id: str | None = None) -> list[str | None]:
    """``beginTransaction`` and ``sendOffsetsToTransaction`` by p0 with c0's group
    metadata (or the generation and member id given); returns what the call gives."""
    membership = s.cluster.consumers["c0"].membership
    producer = s.cluster.producers["p0"]
    txn = producer.txn
    txn.begin_if_needed()
    outcome: list[str | None] = []
    txn.send_offsets(offsets, GROUP,
                     membership.generation if generation is None else generation,
                     membership.member_id if member_id is None else member_id,
                     outcome.append)
    producer.drain()
    settle(s)
    return outcome


def fetch(s: Scenario, require_stable: bool) -> m.OffsetFetchResponse:
    """What c0's coordinator answers an OffsetFetch of both partitions now, once what
    it waits for is replicated."""
    answers: list[Any] = []
    broker = coordinator(s)
    original = broker.broker.reply

    def reply(src: str, gen: int, resp: Any) -> None:
        if isinstance(resp, m.OffsetFetchResponse) and resp.corr == -1:
            answers.append(resp)
        else:
            original(src, gen, resp)

    broker.broker.reply = reply
    try:
        broker.fetch_offsets("c0", 0, m.OffsetFetchRequest(-1, GROUP, require_stable, (0, 1)))
        settle(s, 4)
    finally:
        broker.broker.reply = original
    assert len(answers) == 1
    return answers[0]


def test_offsets_sent_in_a_transaction_are_pending_until_it_commits() -> None:
    """AddOffsetsToTxn puts the group's __consumer_offsets partition in the transaction
    (handleAddOffsetsToTxnRequest); TxnOffsetCommit writes the offsets as the
    producer's transactional batch; a stable OffsetFetch (KIP-447) answers
    UNSTABLE_OFFSET_COMMIT for the partition until the COMMIT marker, a plain one
    answers the offset stored before; after the marker both see the new offset."""
    s = pipeline()
    assert send_offsets(s, {0: 4}) == [None]
    producer = s.cluster.producers["p0"]
    assert producer.txn.offsets_added
    state = [b.transactions for b in s.cluster.broker_actors.values()]
    assert any(OFFSETS in entry.metadata.partitions
               for t in state for _, entries in t.loaded.values() for entry in entries.values())
    stable = fetch(s, require_stable=True)
    assert stable.unstable == (0,) and dict(stable.offsets).get(0) is None
    assert 0 not in dict(fetch(s, require_stable=False).offsets)
    producer.commit_transaction()
    settle(s)
    assert [e.value["control"] for e in s.internal("marker")
            if e.value["partition"] == OFFSETS] == ["COMMIT"]
    assert fetch(s, require_stable=True) == m.OffsetFetchResponse(-1, None, ((0, 4),))
    assert dict(fetch(s, require_stable=False).offsets) == {0: 4}


def test_aborted_transactional_offsets_are_never_stored() -> None:
    """An ABORT marker drops the producer's pending offsets: the group's committed
    offset stays what it was."""
    s = pipeline()
    send_offsets(s, {0: 4})
    s.cluster.producers["p0"].abort_transaction()
    settle(s)
    assert fetch(s, require_stable=True) == m.OffsetFetchResponse(-1, None, ())


def test_a_stale_generation_is_fenced_and_the_transaction_must_abort() -> None:
    """KIP-447: TxnOffsetCommit v3 carries the consumer's generation; the coordinator
    refuses an old one with ILLEGAL_GENERATION (ClassicGroup.validateOffsetCommit,
    transactional), and TxnOffsetCommitHandler makes that an abortable error: the
    application's sendOffsetsToTransaction throws and it must abort."""
    s = pipeline()
    generation = s.cluster.consumers["c0"].membership.generation
    assert send_offsets(s, {0: 4}, generation=generation - 1) == [m.ILLEGAL_GENERATION]
    assert s.cluster.producers["p0"].txn.state == ABORTABLE_ERROR
    refused = s.internal("commit-refused")
    assert refused and refused[-1].value["transactional_id"] == "app"


def test_the_group_id_only_form_is_accepted_whatever_the_group() -> None:
    """The deprecated ``sendOffsetsToTransaction(offsets, groupId)`` sends generation -1
    and no member id: accepted while the group has members and is rebalancing
    (validateOffsetCommit checks neither for a transactional commit), so nothing fences
    a former owner's offsets."""
    s = pipeline()
    group = coordinator(s)._group(GROUP)
    assert group.members
    assert coordinator(s)._validate_commit(GROUP, -1, "", transactional=True) is None
    assert coordinator(s)._validate_commit(GROUP, -1, "") == m.UNKNOWN_MEMBER_ID
    assert send_offsets(s, {0: 4}, generation=-1, member_id="") == [None]


def test_a_restarted_consumer_waits_for_the_offsets_a_transaction_holds() -> None:
    """ConsumerCoordinator asks for stable offsets (OffsetFetch requireStable, always
    true since KIP-447 in 2.5.0, whatever isolation.level) and retries
    UNSTABLE_OFFSET_COMMIT: a member restarted while a transaction holds offsets for
    its partitions starts from the offsets the transaction commits, not from what was
    committed before (nothing: it would reset to 0)."""
    for isolation in ("read_committed", "read_uncommitted"):
        # A transaction open longer than the rejoin takes (the coordinator would abort
        # it after the default 60 s transaction.timeout.ms).
        s = pipeline(**{"isolation.level": isolation, "transaction.timeout.ms": "300000"})
        send_offsets(s, {0: 4, 1: 4})
        restarted = len(s.cluster.history)
        s.do(a.ClientCrash("c0")).do(a.ClientRestart("c0"))
        for _ in range(90):             # the old member's session runs out, then a rebalance
            poll_all(s)
            settle(s, 1)
            s.tick(1000)
        s.cluster.producers["p0"].commit_transaction()
        settle(s)
        form(s)
        events = s.cluster.history[restarted:]
        positions = [(e.value["offset"], e.value["reason"]) for e in events
                     if e.f == "position" and e.process == "c0"]
        unstable = [e for e in events if e.f == "offsets-unstable" and e.process == "c0"]
        assert positions[:2] == [(4, "committed"), (4, "committed")], isolation
        assert unstable, isolation


def test_transaction_version_2_sends_the_offsets_without_add_offsets_to_txn(
        monkeypatch: Any) -> None:
    """KIP-890 part 2 (4.0, transaction.version=2): the client sends TxnOffsetCommit
    without AddOffsetsToTxn and the group coordinator adds the offsets partition to the
    transaction before appending; the commit stores the offsets."""
    s = pipeline(**{"transaction.version": "2"})
    handled = []
    for name in ("add_offsets", "add_partitions"):
        original = getattr(TransactionCoordinator, name)

        def counting(self: Any, src: str, *args: Any, _name: str = name,
                     _original: Any = original, **kwargs: Any) -> None:
            handled.append((_name, src))
            _original(self, src, *args, **kwargs)

        monkeypatch.setattr(TransactionCoordinator, name, counting)
    assert send_offsets(s, {0: 4}) == [None]
    assert [name for name, _ in handled] == ["add_partitions"]     # from the coordinator
    assert handled[0][1] != "p0"
    producer = s.cluster.producers["p0"]
    producer.commit_transaction()
    settle(s)
    assert [e.value["control"] for e in s.internal("marker")
            if e.value["partition"] == OFFSETS] == ["COMMIT"]
    assert fetch(s, require_stable=True) == m.OffsetFetchResponse(-1, None, ((0, 4),))


def test_an_abort_still_sends_the_offsets_already_queued_and_ends_the_transaction() -> None:
    """TransactionManager: beginAbort does not fail queued requests (only an error state
    does, maybeTerminateRequestWithError); AddOffsetsToTxn's answer marks the
    transaction started whatever the state, so the abort sends EndTxn(ABORT) and the
    coordinator does not keep the transaction open."""
    s = pipeline()
    membership = s.cluster.consumers["c0"].membership
    producer = s.cluster.producers["p0"]
    producer.txn.begin_if_needed()
    outcome: list[str | None] = []
    producer.txn.send_offsets({0: 4}, GROUP, membership.generation, membership.member_id,
                              outcome.append)
    producer.drain()
    producer.abort_transaction()
    settle(s)
    assert [e.value["control"] for e in s.internal("marker")
            if e.value["partition"] == OFFSETS] == ["ABORT"]
    assert producer.txn.state == "READY"
    assert fetch(s, require_stable=True) == m.OffsetFetchResponse(-1, None, ())


def test_a_stable_offset_fetch_is_answered_only_once_what_was_written_is_replicated(
        ) -> None:
    """GroupCoordinatorService.fetchOffsets with requireStable is a write operation: it
    reads everything written (Long.MAX_VALUE) and its answer waits, like an append with
    no records, until the high watermark reaches the log end as it was then.  A plain
    OffsetFetch reads at the high watermark and is answered at once."""
    s = pipeline()
    broker = coordinator(s)
    partition = broker.leading_partition(GROUP)
    # A commit the leader has appended and no follower has fetched yet.
    partition.log.append_batch(partition.leader_epoch, [(f"{GROUP}/0", 3, "c0")])
    assert partition.log.hw < partition.log.leo
    answers: list[m.OffsetFetchResponse] = []
    original = broker.broker.reply

    def reply(src: str, gen: int, resp: Any) -> None:
        if isinstance(resp, m.OffsetFetchResponse) and resp.corr < 0:
            answers.append(resp)
        else:
            original(src, gen, resp)

    broker.broker.reply = reply
    try:
        broker.fetch_offsets("c0", 0, m.OffsetFetchRequest(-2, GROUP, False, (0,)))
        assert answers == [m.OffsetFetchResponse(-2, None, ())]
        broker.fetch_offsets("c0", 0, m.OffsetFetchRequest(-1, GROUP, True, (0,)))
        assert len(answers) == 1                  # held: the write is not replicated
        settle(s, 4)
        assert partition.log.hw == partition.log.leo
        assert answers[1:] == [m.OffsetFetchResponse(-1, None, ((0, 3),))]
    finally:
        broker.broker.reply = original


def test_txn_offset_commit_finds_the_group_coordinator_again_after_not_coordinator(
        monkeypatch: Any) -> None:
    """TxnOffsetCommitHandler: NOT_COORDINATOR (and COORDINATOR_NOT_AVAILABLE) is
    retriable after looking the group coordinator up again (``lookupCoordinator
    (FindCoordinatorRequest.CoordinatorType.GROUP)``): a second FindCoordinator for
    the group, a second TxnOffsetCommit, and sendOffsetsToTransaction succeeds."""
    from model.broker.group_coordinator import GroupCoordinator

    s = pipeline()
    original = GroupCoordinator.txn_commit
    calls: list[int] = []

    def txn_commit(self: Any, src: str, generation: int,
                   req: m.TxnOffsetCommitRequest) -> None:
        calls.append(req.corr)
        if len(calls) == 1:
            self.broker.reply(src, generation, m.TxnOffsetCommitResponse(
                req.corr, m.NOT_COORDINATOR))
            return
        original(self, src, generation, req)

    monkeypatch.setattr(GroupCoordinator, "txn_commit", txn_commit)
    network = type(s.cluster.ctx.network)
    send = network.send
    lookups: list[str] = []

    def counting(self: Any, src: str, dst: str, message: Any, *args: Any) -> Any:
        if (src == "p0" and isinstance(message, m.FindCoordinatorRequest)
                and message.key_type == "group"):
            lookups.append(message.group)
        return send(self, src, dst, message, *args)

    monkeypatch.setattr(network, "send", counting)
    outcome = send_offsets(s, {0: 4})
    for _ in range(10):
        if outcome:
            break
        s.tick(100)
        s.cluster.producers["p0"].drain()
        settle(s, 2)
    assert outcome == [None]
    assert len(calls) == 2 and lookups == [GROUP, GROUP]
    s.cluster.producers["p0"].commit_transaction()
    settle(s)
    assert fetch(s, require_stable=True) == m.OffsetFetchResponse(-1, None, ((0, 4),))
