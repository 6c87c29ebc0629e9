"""Consume-transform-produce (``kafkacheck.processing=transform``), each test written from
Kafka's behaviour: the loop of Kafka's ``ExactlyOnceMessageProcessor`` example, KIP-447's
fencing of a former group member's ``sendOffsetsToTransaction``
(``ClassicGroup.validateOffsetCommit`` for a transactional commit, the client's
``TxnOffsetCommitHandler``), the deprecated group-id-only form that nothing fences, and
KAFKA-17582 (an abort does not move the consumer back).

Each scenario makes one consumer a zombie or breaks one transaction, lets the cluster
settle, and reads the verdict the pipeline checker (``invariants.pipeline``) gives on
the output as its downstream reader sees it.
"""

from __future__ import annotations

from typing import Any

from model import actions as a
from model.broker.group_coordinator import committed_offsets
from model.clients.partitioner import partition_for_key
from tests.scenario import Scenario
from tests.test_groups import OFFSETS, flush


def pipeline(**settings: str) -> Scenario:
    """Two group members, two partitions, each member's output transactional."""
    base = {"kafkacheck.consumer.api": "subscribe", "kafkacheck.consumers": "2",
            "kafkacheck.partitions": "2", "enable.auto.commit": "false",
            "kafkacheck.processing": "transform", "kafkacheck.commit.strategy": "transaction",
            "enable.idempotence": "true", "acks": "all", "isolation.level": "read_committed"}
    return Scenario(**{k.replace(".", "_"): v for k, v in {**base, **settings}.items()})


def loop(s: Scenario, names: list[str] | None = None) -> None:
    """One pass of each application loop: poll, process what it returned, commit."""
    cluster = s.cluster
    for name in names or list(cluster.consumers):
        for act in (a.Poll, a.Process, a.Commit):
            while cluster.is_enabled(act(name)):
                s.do(act(name))
                if act is not a.Process:
                    break


def rounds(s: Scenario, count: int, names: list[str] | None = None) -> Scenario:
    for _ in range(count):
        loop(s, names)
        flush(s, 3)
        s.tick(1000)
    return s


def key_of(s: Scenario, partition: int) -> str:
    return next(k for k in s.cluster.keys
                if partition_for_key(k, s.cluster.config.topic.partitions) == partition)


def owner_of(s: Scenario, partition: int) -> str:
    return next(n for n, c in s.cluster.consumers.items() if partition in c.partitions)


def transform_in_flight(s: Scenario, name: str, records: int = 3) -> int:
    """Records for partition 0 are produced; ``name`` polls (those its fetch has
    brought) and sends each transform in its open transaction, then stops before
    sendOffsetsToTransaction.  Returns how many it transformed."""
    for _ in range(records):
        s.do(a.Send("p0", key_of(s, 0)))
    flush(s, 4)
    consumer = s.cluster.consumers[name]
    for _ in range(4):
        if s.cluster.is_enabled(a.Poll(name)):
            s.do(a.Poll(name))
        if consumer.pending:
            break
        flush(s, 2)
    transformed = len(consumer.pending)
    while s.cluster.is_enabled(a.Process(name)):
        s.do(a.Process(name))
    flush(s, 3)
    assert consumer.phase == "commit" and consumer.output.txn.state == "IN_TRANSACTION"
    return transformed


def zombie(strategy: str, heartbeat_first: bool = False,
           **settings: str) -> tuple[Scenario, int]:
    """The owner of partition 0 stops in a long GC pause with its transaction open
    (after sending its transforms, before its offsets): its session runs out, the other
    member takes partition 0 and transforms the same records; then the zombie resumes
    and finishes its transaction."""
    # A session shorter than transaction.timeout.ms (60 s), so that the group, not
    # the transaction coordinator, is what acts on the pause (Kafka 2.x's default).
    s = rounds(pipeline(**{"kafkacheck.commit.strategy": strategy,
                           "session.timeout.ms": "10000", **settings}), 10)
    owner = owner_of(s, 0)
    other = next(n for n in s.cluster.consumers if n != owner)
    transformed = transform_in_flight(s, owner)
    assert transformed >= 1
    s.do(a.Pause(owner))
    rounds(s, 25, [other])           # the session runs out; the other member takes 0
    assert 0 in s.cluster.consumers[other].partitions
    s.do(a.Resume(owner))
    if heartbeat_first:
        # The heartbeat thread runs first: UNKNOWN_MEMBER_ID, and the member resets its
        # generation and member id before the loop reaches sendOffsetsToTransaction.
        s.tick(1000)
        membership = s.cluster.consumers[owner].membership
        assert membership.generation == -1 and membership.member_id == ""
    rounds(s, 30)
    s.finish()
    assert s.cluster.settled_at_finish
    return s, transformed


def events(s: Scenario, f: str, process: str | None = None) -> list[Any]:
    return [e for e in s.cluster.history if e.f == f and process in (None, e.process)]


def test_an_undisturbed_pipeline_outputs_each_record_once_with_its_offsets() -> None:
    """The loop's happy path: each member's transaction holds its transforms and its
    offsets (TxnOffsetCommit, stored at the COMMIT marker): the output has one
    committed transform per input record, and the group's offsets are the positions."""
    s = rounds(pipeline(), 10)
    for partition in (0, 1):
        for _ in range(2):
            s.do(a.Send("p0", key_of(s, partition)))
    rounds(s, 10)
    s.finish()
    assert s.cluster.settled_at_finish
    assert s.run.verdict().invalid == ()
    logs = {e.value["partition"]: e.value["records"] for e in events(s, "output-log")}
    assert sorted(logs) == ["output-0", "output-1"]
    assert all(len(rows) == 2 and {r[5] for r in rows} == {"committed"} for rows in logs.values())
    broker = s.cluster.broker_actors[s.leader(OFFSETS)]
    assert committed_offsets(broker.logs[OFFSETS].records, "kafkacheck")[0] == {0: 2, 1: 2}
    assert {e.process for e in events(s, "txn-committed")} == {"c0", "c1"}
    assert not events(s, "txn-aborted")


def test_kip_447_fences_a_zombie_members_transaction() -> None:
    """KIP-447: sendOffsetsToTransaction(offsets, groupMetadata()) carries the zombie's
    member id and generation; the coordinator has removed the member and answers
    UNKNOWN_MEMBER_ID, an abortable error: the zombie aborts its transaction (its
    transforms are never read_committed), seeks back, and the output holds each record
    once, from the new owner."""
    s, transformed = zombie("transaction")
    owner = next(e.process for e in events(s, "txn-abort"))
    assert [e.value["error"] for e in events(s, "txn-offsets-failed", owner)] == [
        "UNKNOWN_MEMBER_ID"]
    assert events(s, "txn-aborted", owner) and events(s, "rewind", owner)
    assert s.run.verdict().invalid == ()
    aborted = [r for e in events(s, "output-log") for r in e.value["records"]
               if r[5] == "aborted"]
    assert len(aborted) == transformed and {r[3] for r in aborted} == {f"{owner}.output"}


def test_group_metadata_keeps_the_last_joined_generation_after_it_is_lost() -> None:
    """ConsumerCoordinator sets groupMetadata() only in onJoinComplete: a zombie whose
    heartbeat already told it that it was removed (its generation and member id reset
    to -1 and "") still sends the generation and member id it last joined with, and is
    fenced.  Sending -1 and "" would be the group-id-only form, which the coordinator
    accepts."""
    s, _ = zombie("transaction", heartbeat_first=True)
    owner = next(e.process for e in events(s, "txn-abort"))
    sent = [e.value for e in events(s, "txn-offsets", owner)]
    assert sent[-1]["generation"] >= 1 and sent[-1]["member"]
    assert [e.value["error"] for e in events(s, "txn-offsets-failed", owner)] == [
        "UNKNOWN_MEMBER_ID"]
    assert s.run.verdict().invalid == ()


def test_the_group_id_only_form_lets_a_zombie_commit_duplicates() -> None:
    """The deprecated sendOffsetsToTransaction(offsets, groupId) sends no generation
    (-1) and no member id: the coordinator accepts it from anyone, so the zombie's
    transaction commits, and the records the new owner also transformed are in the
    output twice, even for a read_committed reader."""
    s, transformed = zombie("transaction-group-id")
    duplicated = s.anomalies()["output-duplicated"]
    assert len(duplicated) == transformed
    assert all(d["outcomes"] == ["committed", "committed"] and len(set(d["writers"])) == 2
               for d in duplicated)


def test_a_read_uncommitted_reader_sees_the_fenced_transaction() -> None:
    """The same fenced zombie as under KIP-447, read with read_uncommitted: the aborted
    transaction's transforms are below the high watermark, so the downstream reader
    reads them and each record twice."""
    s, transformed = zombie("transaction",
                            **{"kafkacheck.output.isolation.level": "read_uncommitted"})
    duplicated = s.anomalies()["output-duplicated"]
    assert len(duplicated) == transformed
    assert all(sorted(d["outcomes"]) == ["aborted", "committed"] for d in duplicated)


def test_offsets_committed_after_the_transaction_duplicate_after_a_crash() -> None:
    """Offsets committed outside the transaction (commitTransaction, then commitSync):
    a process whose consumer cannot reach its group coordinator (a network cut between
    the two) commits its output transaction, cannot commit its offsets, and dies; the
    partition's next owner starts from the old offset and transforms the records
    again."""
    s = rounds(pipeline(**{"kafkacheck.commit.strategy": "after-processing"}), 10)
    owner = owner_of(s, 0)
    transformed = transform_in_flight(s, owner)
    s.do(a.Partition((owner,), against=(s.leader(OFFSETS),)))
    s.do(a.Commit(owner))
    for _ in range(40):                # until commitTransaction returns
        flush(s, 1)
        if events(s, "txn-committed", owner):
            break
    assert events(s, "txn-committed", owner)
    assert s.cluster.consumers[owner].coordinator.commit is not None   # commitSync waits
    s.do(a.ClientCrash(owner)).do(a.Heal()).do(a.ClientRestart(owner))
    rounds(s, 60)
    s.finish()
    assert s.cluster.settled_at_finish
    duplicated = s.anomalies()["output-duplicated"]
    assert len(duplicated) == transformed
    assert all(d["outcomes"] == ["committed", "committed"] for d in duplicated)


def abort_by_delivery_timeout(seek: str) -> Scenario:
    """The owner's output producer cannot reach partition output-0's leader for longer
    than delivery.timeout.ms (a network cut between the two only): its transforms
    expire, the transaction becomes abortable, commit finds it so and the loop aborts.
    The consumer keeps its partition throughout."""
    s = rounds(pipeline(**{"kafkacheck.abort.seek": seek}), 10)
    owner = owner_of(s, 0)
    output_leader = s.leader("output-0")
    s.do(a.Partition((f"{owner}.output",), against=(output_leader,)))
    transform_in_flight_unsent(s, owner)
    rounds(s, 130, [owner, next(n for n in s.cluster.consumers if n != owner)])
    s.do(a.Heal())
    rounds(s, 30)
    s.finish()
    assert s.cluster.settled_at_finish
    assert owner_of(s, 0) == owner
    return s


def transform_in_flight_unsent(s: Scenario, name: str) -> None:
    for _ in range(3):
        s.do(a.Send("p0", key_of(s, 0)))
    flush(s, 4)


def test_an_abort_that_seeks_back_transforms_the_records_again() -> None:
    """resetToLastCommittedPositions after abortTransaction (Kafka's exactly-once
    example): the consumer fetches its committed offsets and transforms the aborted
    records again: each once in the output."""
    s = abort_by_delivery_timeout("committed")
    assert events(s, "txn-aborted") and events(s, "rewind")
    assert s.run.verdict().invalid == ()


def test_an_abort_without_seeking_back_loses_the_records_kafka_17582() -> None:
    """KAFKA-17582 (intended behaviour): abortTransaction does not move the consumer;
    a loop that polls on after an abort never transforms the aborted records again,
    and the next transaction commits offsets past them."""
    s = abort_by_delivery_timeout("none")
    assert events(s, "txn-aborted") and not events(s, "rewind")
    lost = s.anomalies()["output-lost"]
    assert lost and {d["key"] for d in lost} == {0}
