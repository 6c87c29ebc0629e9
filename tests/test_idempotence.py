"""The idempotent producer, broker and client, each test written from Kafka's behaviour.

Broker: ``UnifiedLog.analyzeAndValidateProducerState``, ``ProducerStateEntry``,
``ProducerAppendInfo``, ``ProducerStateManager``.  Client: ``TransactionManager``,
``Sender``, ``RecordAccumulator`` (KIP-98, KIP-360).
"""

from __future__ import annotations

from model import actions as a
from model import messages as m
from model.broker.log import ReplicaLog
from model.broker.producer_state import ProducerStates
from model.clients.idempotence import IdempotenceManager
from model.clients.producer import Batch, PendingRecord
from tests.scenario import Scenario


def idempotent(**settings: str) -> Scenario:
    return Scenario(**{"enable.idempotence": "true", **settings})


def init_producer_id(s: Scenario) -> Scenario:
    """Deliver the producer's InitProducerId and its answer, if it is waiting for one (a
    producer that started with the cluster already has its id)."""
    pending = s.cluster.producers["p0"].init_pending
    if pending is None:
        assert s.cluster.producers["p0"].idempotence.has_producer_id
        return s
    return s.deliver("p0", pending[1]).deliver(pending[1], "p0")


def new_producer(s: Scenario) -> Scenario:
    """A restarted producer process: it has no producer id yet."""
    return s.do(a.ClientCrash("p0")).do(a.ClientRestart("p0"))


def written_log(*headers: tuple[int, int, int]) -> ReplicaLog:
    log = ReplicaLog()
    for producer_id, epoch, sequence in headers:
        log.append_batch(0, [("k", len(log.records), "p0")], producer_id, epoch, sequence)
    return log


# -- the broker's producer state ------------------------------------------------------


def test_a_retried_batch_is_answered_with_its_original_offset() -> None:
    """ProducerStateEntry.findDuplicateBatch: a batch of the current epoch whose sequence
    one of the last five batches has is not appended again."""
    log = written_log((7, 0, 0), (7, 0, 1))
    check = log.producers.validate(7, 0, 0)
    assert check.duplicate_of == 0 and check.error is None


def test_the_duplicate_window_is_the_last_five_batches() -> None:
    """NUM_BATCHES_TO_RETAIN = 5: the sixth batch pushes the first out of the window, and
    the first's retry is then out of sequence."""
    log = written_log(*[(7, 0, seq) for seq in range(6)])
    assert log.producers.validate(7, 0, 1).duplicate_of == 1
    assert log.producers.validate(7, 0, 0).error == m.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_a_duplicate_of_an_older_epoch_is_not_a_duplicate_but_a_fenced_epoch() -> None:
    """findDuplicateBatch compares the epoch; checkProducerEpoch then refuses it."""
    log = written_log((7, 0, 0), (7, 1, 0))
    assert log.producers.validate(7, 0, 0).error == m.INVALID_PRODUCER_EPOCH


def test_sequences_must_follow_on_within_an_epoch_and_start_at_zero_in_a_new_one() -> None:
    """ProducerAppendInfo.checkSequence."""
    log = written_log((7, 0, 0), (7, 0, 1))
    assert log.producers.validate(7, 0, 3).error == m.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.producers.validate(7, 0, 2).error is None
    assert log.producers.validate(7, 1, 1).error == m.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.producers.validate(7, 1, 0).error is None


def test_a_producer_id_without_state_is_accepted_at_any_sequence() -> None:
    """checkSequence: "accept writes with any sequence number" when the producer has no
    current epoch (since KIP-360, 2.5.0; no UNKNOWN_PRODUCER_ID on produce)."""
    assert ProducerStates().validate(7, 0, 4).error is None
    assert written_log((8, 0, 0)).producers.validate(7, 3, 9).error is None


def test_records_sent_while_their_batch_waits_share_it_and_its_sequence_range() -> None:
    """RecordAccumulator.append adds to the partition's open batch; the broker matches a
    retry against a retained batch's whole sequence range (batchWithSequenceRange)."""
    log = ReplicaLog()
    log.append_batch(0, [("k", 0, "p0"), ("k", 1, "p0")], 7, 0, 0)
    assert log.producers.validate(7, 0, 0, count=2).duplicate_of == 0
    assert log.producers.validate(7, 0, 0, count=1).error == m.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.producers.validate(7, 0, 2).error is None
    s = new_producer(idempotent())
    s.send().send()                                  # both wait for the producer id
    init_producer_id(s)
    leader = s.leader(s.partition())
    (_, produce), = list(s.cluster.ctx.network.queues[("p0", leader)])
    assert [value for _, value in produce.records] == [1, 2]


def test_batch_size_zero_disables_batching() -> None:
    s = new_producer(idempotent(**{"batch.size": "0"}))
    s.send().send()
    init_producer_id(s)
    leader = s.leader(s.partition())
    requests = [msg for _, msg in s.cluster.ctx.network.queues[("p0", leader)]]
    assert [(r.sequence, len(r.records)) for r in requests] == [(0, 1), (1, 1)]


def test_a_truncation_reloads_the_state_from_the_last_snapshot_and_the_log() -> None:
    """ProducerStateManager.truncateAndReload: a snapshot keeps only each producer's last
    batch, so after a reload the duplicate window may be shorter than five batches."""
    log = written_log((7, 0, 0), (7, 0, 1), (7, 0, 2))
    log.reload_producer_state()                       # as a restarted broker does
    assert log.snapshots == [3]
    log.append_batch(0, [("k", 3, "p0")], 7, 0, 3)
    log.append_batch(0, [("k", 4, "p0")], 7, 0, 4)
    log.truncate_to(4)
    assert [b.last_sequence for b in log.producers.entries[7].batches] == [2, 3]
    assert log.producers.validate(7, 0, 1).error == m.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.producers.validate(7, 0, 3).duplicate_of == 3
    assert log.producers.validate(7, 0, 4).error is None


def test_a_retry_after_its_first_attempt_landed_is_not_written_twice() -> None:
    """The point of idempotence: the same lost response that duplicates a record without
    it (test_scenarios) leaves one copy, acknowledged with the original offset."""
    s = idempotent()
    p = s.partition()
    leader = s.leader(p)
    s.send()
    init_producer_id(s)
    s.deliver("p0", leader)                        # appended; the response is queued
    s.tick(30000)                                  # request.timeout.ms: connection closed
    s.tick(100).deliver("p0", leader)
    assert s.values(leader, p) == [1]
    assert s.internal("duplicate")[0].value["offset"] == 0


def test_a_new_leader_knows_the_producers_of_the_records_it_replicated() -> None:
    """Followers build producer state while replicating (origin REPLICATION), so a retry
    that reaches the new leader after a failover is still recognised."""
    s = idempotent(acks="all")
    p = s.partition()
    leader = s.leader(p)
    s.send()
    init_producer_id(s)
    s.deliver("p0", leader)
    for follower in s.followers(p):
        s.fetch_round(follower, p)
    follower = s.followers(p)[0]
    assert s.log(follower, p).producers.validate(0, 0, 0).duplicate_of == 0


def test_a_broker_restarted_after_a_kill_keeps_each_producers_last_batch_only() -> None:
    """LogLoader.recoverLog -> recoverSegment replays the active segment and snapshots
    its end; the load then reads that snapshot (ProducerStateManager.readSnapshot: one
    batch per producer).  So the last batch is still recognised, an earlier one not."""
    s = idempotent(**{"kafkacheck.keys": "1"})
    p = s.partition()
    leader = s.leader(p)
    s.send()
    init_producer_id(s)
    s.deliver("p0", leader)
    for _ in range(2):          # replicated, so the leader answers and reads the next one
        for follower in s.followers(p):
            s.fetch_round(follower, p)
    s.send().deliver("p0", leader)
    assert [r.sequence for r in s.log(leader, p).records] == [0, 1]
    s.do(a.Crash(leader)).do(a.Restart(leader))
    producers = s.log(leader, p).producers
    assert producers.validate(0, 0, 1).duplicate_of == 1
    assert producers.validate(0, 0, 0).error == m.OUT_OF_ORDER_SEQUENCE_NUMBER


# -- producer ids --------------------------------------------------------------------------


def test_nothing_is_sent_before_the_producer_has_an_id() -> None:
    """RecordAccumulator.shouldStopDrainBatchesForPartition: no valid producer id, no
    drain; InitProducerId goes to the least loaded broker."""
    s = new_producer(idempotent())
    s.send()
    queued = list(s.cluster.ctx.network.queues[("p0", "b0")])
    assert [type(msg) for _, msg in queued] == [m.InitProducerIdRequest]
    init_producer_id(s)
    leader = s.leader(s.partition())
    (_, produce), = list(s.cluster.ctx.network.queues[("p0", leader)])
    assert (produce.producer_id, produce.producer_epoch, produce.sequence) == (1, 0, 0)


def test_a_restarted_broker_has_no_producer_ids_until_the_controller_gives_it_a_block() -> None:
    """RPCProducerIdManager: the first InitProducerId after a broker starts is answered
    COORDINATOR_LOAD_IN_PROGRESS (retriable) while it asks for a block; ids are never
    reused (ProducerIdControlManager hands out blocks of 1000)."""
    s = idempotent()
    s.do(a.Crash("b0"))
    s.restart("b0")
    assert s.cluster.broker_actors["b0"].producer_ids == (3000, 4000)  # asked while ticking
    for broker in s.cluster.broker_actors.values():
        broker.producer_ids = None                  # as every broker right after a start
    new_producer(s).send()
    init_producer_id(s)
    assert s.cluster.producers["p0"].idempotence.producer_id == -1
    s.tick(1000)                                    # blocks arrive with the heartbeats
    init_producer_id(s)                             # retried after retry.backoff.ms
    assert s.cluster.producers["p0"].idempotence.producer_id >= 4000


def test_a_restarted_producer_gets_a_new_producer_id() -> None:
    """A new KafkaProducer instance starts without a producer id: its records can never
    be recognised as retries of the old instance's (hence duplicates on resend)."""
    s = idempotent()
    s.send()
    init_producer_id(s)
    s.do(a.ClientCrash("p0")).do(a.ClientRestart("p0")).send()
    init_producer_id(s)
    assert s.cluster.producers["p0"].idempotence.producer_id == 1


# -- the client's sequence bookkeeping -------------------------------------------------


def batch(partition: int = 0, records: int = 1) -> Batch:
    return Batch(partition, 0, [PendingRecord("k", i, "p0:0:0") for i in range(records)])


def manager() -> IdempotenceManager:
    idem = IdempotenceManager()
    idem.set_producer_id(7, 0)
    return idem


def test_a_sequence_is_assigned_once_at_the_first_drain() -> None:
    idem = manager()
    first, second = batch(), batch()
    idem.assign(first)
    idem.assign(second)
    idem.assign(first)                               # a retry keeps its sequence
    assert (first.sequence, second.sequence) == (0, 1)


def test_a_retry_goes_only_as_the_lowest_sequence_in_flight() -> None:
    """shouldStopDrainBatchesForPartition: "effectively reduces our in flight request
    count to 1" while retrying."""
    idem = manager()
    first, second = batch(), batch()
    idem.assign(first)
    idem.assign(second)
    assert not idem.may_drain(second) and idem.may_drain(first)
    assert idem.may_drain(batch())                   # new batches still may go


def test_out_of_order_on_the_next_batch_bumps_the_epoch_and_renumbers_in_flight() -> None:
    """TransactionManager.canRetry / bumpIdempotentProducerEpoch (KIP-360): the batch
    right after the last acknowledged one was refused (a real gap): epoch + 1, and the
    partition's in-flight batches start again at sequence 0."""
    idem = manager()
    first, second = batch(), batch()
    idem.assign(first)
    idem.assign(second)
    assert idem.can_retry(first, m.OUT_OF_ORDER_SEQUENCE_NUMBER)
    idem.bump_epoch_if_needed()
    assert idem.producer_epoch == 1
    assert [(b.producer_epoch, b.sequence, b.reopened) for b in (first, second)] == [
        (1, 0, True), (1, 1, True)]


def test_out_of_order_behind_an_unacknowledged_batch_is_retried_without_a_bump() -> None:
    idem = manager()
    first, second = batch(), batch()
    idem.assign(first)
    idem.assign(second)
    assert idem.can_retry(second, m.OUT_OF_ORDER_SEQUENCE_NUMBER)
    assert not idem.epoch_bump_required


def test_an_expired_retried_batch_blocks_new_batches_until_resolved() -> None:
    """Sender.sendProducerData: an expired batch that was retried marks its partition
    unresolved; once nothing is in flight, the epoch is bumped unless everything sent
    was acknowledged (maybeResolveSequences)."""
    idem = manager()
    expired, queued = batch(), batch()
    idem.assign(expired)
    expired.in_retry = True
    idem.expired(expired)
    assert not idem.may_drain(queued)
    idem.resolve_sequences()
    assert idem.epoch_bump_required
    idem.bump_epoch_if_needed()
    assert idem.may_drain(queued)
    idem.assign(queued)
    assert (queued.producer_epoch, queued.sequence) == (1, 0)


def test_an_older_epoch_is_not_retriable() -> None:
    assert not manager().can_retry(batch(), m.INVALID_PRODUCER_EPOCH)


# -- the application's resend loop -----------------------------------------------------


def test_an_application_resend_after_a_producer_restart_is_a_duplicate_even_when_idempotent() -> None:
    """Idempotence deduplicates the producer's own retries only: a restarted producer is
    a new producer id, so the application's resend of a record whose acknowledgement it
    never saw is a new record (KIP-98: only transactions carry identity across
    producer instances)."""
    s = idempotent(**{"kafkacheck.producer.loop": "resend-after-restart"})
    p = s.partition()
    leader = s.leader(p)
    s.send()
    init_producer_id(s)
    s.deliver("p0", leader)                            # appended, not yet acknowledged
    s.do(a.ClientCrash("p0")).do(a.ClientRestart("p0"))
    assert s.cluster.is_enabled(a.Resend("p0"))
    s.do(a.Resend("p0"))
    init_producer_id(s)
    s.deliver("p0", leader)
    assert s.values(leader, p) == [1, 2]            # the resend is value 2, a copy of 1
    (resend,) = [op for op in s.ops("send", "invoke") if op.meta.get("resend-of")]
    assert resend.meta == {"key": "k0", "resend-of": 1}
    assert not s.cluster.is_enabled(a.Resend("p0"))
    s.finish()
    (duplicate,) = s.anomalies()["duplicate"]
    assert (duplicate["value"], duplicate["values"], duplicate["offsets"]) == (1, [1, 2], [0, 1])
    assert "G1a" not in s.anomalies()


def test_send_and_forget_never_resends() -> None:
    s = idempotent()
    s.send().do(a.ClientCrash("p0")).do(a.ClientRestart("p0"))
    assert not s.cluster.is_enabled(a.Resend("p0"))


def test_a_new_producer_that_reaches_no_broker_cannot_send() -> None:
    """KafkaProducer.waitOnMetadata: a producer that has never had the topic's metadata
    blocks for max.block.ms and throws; the send never reaches the accumulator."""
    s = idempotent()
    s.do(a.ClientCrash("p0"))
    for broker in ("b0", "b1", "b2"):
        s.do(a.Crash(broker))
    s.do(a.ClientRestart("p0")).send()
    (failed,) = s.ops("send", "fail")
    assert failed.meta["error"] == "METADATA_TIMEOUT"
    assert not any(s.cluster.producers["p0"].queues.values())


def test_an_expired_batch_and_its_epoch_bump_write_a_late_request_twice() -> None:
    """Sender.getExpiredInflightBatches and TransactionManager.canRetry (KIP-91, KIP-360):
    a batch in flight past delivery.timeout.ms fails with its sequence unresolved
    (markSequenceUnresolved).  The next batch's retry, on a new connection, overtakes the
    requests still travelling on the old ones and gets OUT_OF_ORDER_SEQUENCE_NUMBER; being
    the next sequence after the unresolved one, it bumps the producer epoch and restarts
    its sequence at 0 (startSequencesAtBeginning).  The old requests land first, at the
    old epoch, each read only once the one ahead of it on its connection is answered
    (SocketServer muting: the followers fetch in between), so the broker has no way to
    see the rewritten batch as their duplicate: one acknowledged send, two records.  No
    broker dies, no network is cut."""
    import json
    from pathlib import Path

    from kafkacheck.runner import Run
    from model.actions import action_from_json
    from model.config import Config

    data = json.loads((Path(__file__).parent / "data" / "expired_batch_epoch_bump.json")
                      .read_text())
    run = Run(Config.from_settings(data["config"]))
    for action in data["schedule"]:
        run.apply(action_from_json(action))
    run.finish()
    duplicates = run.verdict().anomalies["duplicate"]
    assert len(duplicates) == 1
    value = duplicates[0]["value"]
    acknowledged = [e for e in run.cluster.history
                    if e.f == "send" and e.type == "ok" and e.value[0][2][1] == value]
    assert len(acknowledged) == 1
    leader = run.cluster.controller.partitions[1].leader
    copies = [r for r in run.cluster.broker_actors[leader].logs[1].records if r.value == value]
    assert len(copies) == 2
    assert copies[0].producer_epoch < copies[1].producer_epoch
    assert copies[1].sequence == 0


def test_a_new_leader_without_the_producers_state_lets_a_failover_duplicate_and_reorder() -> None:
    """``ProducerAppendInfo.checkSequence`` and ``TransactionManager.canRetry`` (KIP-360):
    a leader with no state for a producer accepts its batch at any sequence.  Around a
    leader change the producer's earlier batch of a partition goes to the old leader
    (NOT_LEADER_OR_FOLLOWER) and the later one to the new leader, which takes it at
    sequence 1; a network cut loses that answer.  The earlier batch's retry is then out
    of order, and being the next sequence after the last acknowledged one it bumps the
    epoch and renumbers both in-flight batches from 0 (``bumpIdempotentProducerEpoch``):
    the later record is written again after the earlier one, a duplicate and a reorder
    with no broker killed and no batch expired."""
    import json
    from pathlib import Path

    from kafkacheck.runner import Run
    from model.actions import action_from_json
    from model.config import Config

    data = json.loads((Path(__file__).parent / "data"
                       / "failover_unknown_producer_duplicate.json").read_text())
    run = Run(Config.from_settings(data["config"]))
    for action in data["schedule"]:
        run.apply(action_from_json(action))
    assert not any(e.f == "crash" for e in run.cluster.history)
    run.finish()
    anomalies = run.verdict().anomalies
    assert {"duplicate", "reorder"} <= anomalies.keys()
    (duplicate,) = anomalies["duplicate"]
    partition = duplicate["key"]
    leader = run.cluster.controller.partitions[partition].leader
    records = [r for r in run.cluster.broker_actors[leader].logs[partition].records
               if r.producer_id is not None]
    later = [r for r in records if r.value == duplicate["value"]]
    assert [(r.producer_epoch, r.sequence) for r in later] == [(0, 1), (1, 1)]
    (earlier,) = [r for r in records if r.value != duplicate["value"]]
    assert (earlier.producer_epoch, earlier.sequence) == (1, 0)
    assert records.index(later[0]) < records.index(earlier) < records.index(later[1])
    acknowledged = [e for e in run.cluster.history if e.f == "send" and e.type == "ok"
                    and e.value[0][2][1] == duplicate["value"]]
    assert len(acknowledged) == 1
