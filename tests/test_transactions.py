"""Transactions, broker and client, each test written from Kafka's behaviour.

Broker: ``ProducerStateManager`` / ``ProducerAppendInfo`` (open transactions, markers,
last stable offset, aborted transactions), ``TransactionCoordinator`` and
``TransactionMetadata`` (states, epoch fencing, EndTxn per transaction version),
``AddPartitionsToTxnManager`` (KIP-890 verification).  Client: ``CompletedFetch``
(read_committed filtering) and ``TransactionManager``.
"""

from __future__ import annotations

from typing import Any

from model import actions as a
from model import messages as m
from model.broker.log import ReplicaLog
from model.broker.transaction_coordinator import (COMPLETE_ABORT, COMPLETE_COMMIT, ONGOING,
                                                  PREPARE_ABORT)
from model.clients.consumer import returned_records
from tests.scenario import Scenario

TXN = {"transactional.id": "app", "enable.idempotence": "true"}


def transactional(**settings: str) -> Scenario:
    return Scenario(**{**TXN, **settings})


def settle(s: Scenario, rounds: int = 12) -> Scenario:
    """Deliver everything, with the clock stepping past retry backoffs, ``rounds`` times."""
    for _ in range(rounds):
        s.flush(4)
        s.do(a.Tick(100))
    return s


def coordinator_state(s: Scenario, tid: str = "app") -> Any:
    for broker in s.cluster.broker_actors.values():
        for _, entries in broker.transactions.loaded.values():
            if tid in entries:
                return entries[tid].metadata
    raise AssertionError("no coordinator has the transactional id loaded")


def final(s: Scenario) -> dict[str, Any]:
    s.run.finish()
    return s.run.verdict().anomalies


# -- the broker's transaction state ----------------------------------------------------


def txn_log() -> ReplicaLog:
    """Producer 7 writes a transactional batch at 0, producer 8 one at 1."""
    log = ReplicaLog()
    log.append_batch(0, [("k", 0, "p0")], 7, 0, 0, transactional=True)
    log.append_batch(0, [("k", 1, "p1")], 8, 0, 0, transactional=True)
    return log


def test_the_last_stable_offset_stops_at_the_oldest_open_transaction() -> None:
    """ProducerStateManager.firstUnstableOffset: the first offset of the oldest open
    transaction, capped by the high watermark; a closed one whose marker is not yet
    below the HW still counts."""
    log = txn_log()
    log.hw = 2
    assert log.last_stable_offset() == 0
    log.append_marker(0, 7, 0, commit=True, coordinator_epoch=0)
    assert log.last_stable_offset() == 0          # marker at 2, HW 2: not replicated
    log.hw = 3
    assert log.last_stable_offset() == 1          # producer 8's transaction still open
    log.append_marker(0, 8, 0, commit=False, coordinator_epoch=0)
    log.hw = 4
    assert log.last_stable_offset() == 4


def test_aborted_transactions_are_listed_for_read_committed_fetches() -> None:
    """``collectAbortedTxns``: an aborted transaction overlapping the fetched range is
    returned with its producer id and first offset; committed ones are not."""
    log = txn_log()
    log.append_marker(0, 7, 0, commit=True, coordinator_epoch=0)
    log.append_marker(0, 8, 0, commit=False, coordinator_epoch=0)
    assert log.producers.aborted_transactions(0, 4) == ((8, 1),)
    assert log.producers.aborted_transactions(4, 4) == ()


def test_a_marker_from_an_older_epoch_or_coordinator_is_refused() -> None:
    """``ProducerAppendInfo.appendEndTxnMarker``: INVALID_PRODUCER_EPOCH for an older
    producer epoch, TRANSACTION_COORDINATOR_FENCED for an older coordinator epoch."""
    log = txn_log()
    log.append_marker(0, 7, 1, commit=False, coordinator_epoch=3)
    assert log.producers.validate_marker(7, 0, 3) == m.INVALID_PRODUCER_EPOCH
    assert log.producers.validate_marker(7, 1, 2) == m.TRANSACTION_COORDINATOR_FENCED
    assert log.producers.validate_marker(7, 1, 3) is None


def test_a_non_transactional_batch_inside_an_open_transaction_is_refused() -> None:
    """``ProducerAppendInfo.append``: INVALID_TXN_STATE."""
    log = txn_log()
    assert log.producers.validate(7, 0, 1, 1, transactional=False).error == m.INVALID_TXN_STATE
    assert log.producers.validate(7, 0, 1, 1, transactional=True).error is None


def test_read_committed_skips_aborted_batches_and_every_control_record() -> None:
    """``CompletedFetch``: a producer joins the aborted set when the range reaches its
    aborted transaction's first offset and leaves it at its ABORT marker; control
    records are never returned, whatever the isolation level."""
    log = txn_log()
    log.append_marker(0, 8, 0, commit=False, coordinator_epoch=0)
    log.append_marker(0, 7, 0, commit=True, coordinator_epoch=0)
    log.append_batch(0, [("k", 4, "p1")], 8, 0, 0, transactional=True)
    records = tuple(log.records)
    aborted = log.producers.aborted_transactions(0, len(records))
    assert [r.value for r in returned_records(records, True, aborted)] == [0, 4]
    assert [r.value for r in returned_records(records, False, aborted)] == [0, 1, 4]


# -- the coordinator and the client ----------------------------------------------------


def test_a_committed_transaction_is_read_by_a_read_committed_consumer() -> None:
    """The whole flow: AddPartitionsToTxn, produce, EndTxn(commit), markers,
    CompleteCommit; the consumer reads past the marker to the high watermark."""
    s = transactional(**{"isolation.level": "read_committed", "kafka.version": "3.9"})
    s.do(a.Send("p0", "k0")).do(a.Send("p0", "k1"))
    settle(s)
    s.do(a.CommitTransaction("p0"))
    settle(s)
    assert coordinator_state(s).state == COMPLETE_COMMIT
    assert final(s) == {}
    sends = [e for e in s.cluster.history if e.f == "send" and e.type == "ok"]
    assert len(sends) == 2


def test_an_aborted_transaction_fails_its_sends_and_only_read_uncommitted_sees_it() -> None:
    """read_uncommitted returns aborted records (Jepsen's G1a); read_committed does not."""
    for isolation, expected in (("read_uncommitted", {"G1a"}), ("read_committed", set())):
        s = transactional(**{"isolation.level": isolation})
        s.do(a.Send("p0", "k0"))
        settle(s)
        s.do(a.AbortTransaction("p0"))
        settle(s)
        assert coordinator_state(s).state == COMPLETE_ABORT
        assert [e.type for e in s.cluster.history if e.f == "send"] == ["invoke", "fail"]
        assert set(final(s)) == expected, isolation


def test_transaction_version_2_bumps_the_epoch_at_every_end() -> None:
    """KIP-890 part 2: EndTxn v5 answers with the bumped epoch, and the markers carry
    it; under the classic protocol the epoch stays."""
    for version, epochs in (("4.0", [1, 2]), ("3.9", [0, 0])):
        s = transactional(**{"kafka.version": version})
        seen = []
        for _ in range(2):
            s.do(a.Send("p0", "k0"))
            settle(s)
            s.do(a.CommitTransaction("p0"))
            settle(s)
            seen.append(s.cluster.producers["p0"].idempotence.producer_epoch)
        assert seen == epochs, version
        markers = [e.value["producer_epoch"] for e in s.cluster.history if e.f == "marker"]
        assert markers == epochs, version


def test_a_new_instance_fences_the_old_one_and_aborts_its_open_transaction() -> None:
    """``prepareInitProducerIdTransit`` for an Ongoing transaction: PrepareEpochFence,
    then the abort at epoch + 1; the old instance's produce gets INVALID_PRODUCER_EPOCH
    and its EndTxn PRODUCER_FENCED, so nothing it sent becomes visible."""
    s = transactional(**{"kafkacheck.producers": "2", "kafkacheck.transactional.id.shared":
                         "true", "isolation.level": "read_committed", "kafka.version": "3.9"})
    # p1 initialised last at bootstrap: p0 is already fenced; a new p0 instance fences p1.
    s.do(a.ClientCrash("p0")).do(a.ClientRestart("p0"))
    settle(s)
    s.do(a.Send("p0", "k0"))
    settle(s)
    assert coordinator_state(s).state == ONGOING
    s.do(a.Pause("p0"))
    s.do(a.ClientCrash("p1")).do(a.ClientRestart("p1"))    # the successor's InitProducerId
    settle(s)
    fence = next(i for i, e in enumerate(s.cluster.history) if e.f == "txn-fence")
    assert any(e.f == "txn-state" and e.value["state"] == PREPARE_ABORT
               for e in s.cluster.history[fence:])
    s.do(a.Resume("p0"))
    if s.cluster.producers["p0"].can_send():
        s.do(a.Send("p0", "k1"))
    if s.cluster.producers["p0"].txn.can_commit():
        s.do(a.CommitTransaction("p0"))
    settle(s)
    assert s.cluster.producers["p0"].txn.state in ("FATAL_ERROR", "ABORTABLE_ERROR")
    zombie = {e.value[0][2] for e in s.cluster.history
              if e.f == "send" and e.type == "invoke" and e.process.startswith("p0:1")}
    anomalies = final(s)
    log_values = {row[1] for e in s.cluster.history if e.f == "final-log"
                  for row in e.value["records"] if len(row) < 6 or row[5] == "committed"}
    assert not zombie & log_values
    assert "G1a" not in anomalies and "lost-write" not in anomalies


def test_the_coordinator_aborts_a_transaction_open_longer_than_its_timeout() -> None:
    """``abortTimedOutTransactions`` every
    transaction.abort.timed.out.transaction.cleanup.interval.ms: epoch bump (KAFKA-6119),
    then PrepareAbort and the markers."""
    s = transactional(**{"transaction.timeout.ms": "5000"})
    s.do(a.Send("p0", "k0"))
    settle(s)
    epoch = coordinator_state(s).producer_epoch
    s.do(a.Tick(10000)).do(a.Tick(10000))
    settle(s)
    meta = coordinator_state(s)
    assert meta.state == COMPLETE_ABORT and meta.producer_epoch == epoch + 1
    assert any(e.f == "txn-timeout" for e in s.cluster.history)


def test_verification_refuses_a_produce_that_arrives_after_its_abort() -> None:
    """KIP-890 part 1 (3.6+): a transactional batch that would open a transaction the
    coordinator does not know is refused (INVALID_TXN_STATE in 3.6, TRANSACTION_ABORTABLE
    from 3.8); before 3.6 it opens a transaction nothing closes: a hanging transaction.
    The produce is one ``delivery.timeout.ms`` failed while its request was still out:
    the batch is then complete (``RecordAccumulator.hasIncomplete``), so the abort's
    EndTxn overtakes the request."""
    for version, hanging in (("3.5", True), ("3.6", False)):
        s = transactional(**{"kafka.version": version, "request.timeout.ms": "5000",
                             "delivery.timeout.ms": "10000"})
        producer = s.cluster.producers["p0"]
        s.do(a.Send("p0", "k0"))
        hold_back(s, m.ProduceRequest, rounds=6)     # AddPartitionsToTxn done, produce held
        s.do(a.Tick(5000))                           # request timeout: retried, original late
        hold_back(s, m.ProduceRequest, rounds=6)     # the retry is held too
        s.do(a.Tick(5000))                           # delivery timeout: the batch fails
        assert producer.txn.state == "ABORTABLE_ERROR"
        s.do(a.AbortTransaction("p0"))
        hold_back(s, m.ProduceRequest, rounds=40)
        assert producer.txn.state == "READY" and coordinator_state(s).state == "Empty"
        for src, dst in s.cluster.ctx.network.late_links():
            while s.cluster.ctx.network.late_deliverable(src, dst):
                s.do(a.DeliverLate(src, dst))
        anomalies = final(s)
        assert ("hanging-transaction" in anomalies) == hanging, (version, anomalies)



def hold_back(s: Scenario, kind: type, rounds: int = 30) -> None:
    """Deliver everything except requests of ``kind`` (and what queues behind them)."""
    network = s.cluster.ctx.network
    for _ in range(rounds):
        for src, dst in network.ready_links():
            queue = network.queues[(src, dst)]
            if not any(isinstance(msg, kind) for _, msg in queue):
                for _ in range(len(queue)):
                    if network.deliverable(src, dst):
                        s.deliver(src, dst)
        s.do(a.Tick(100))


def test_an_add_partitions_lost_before_an_abort_is_resent_and_the_abort_ends_it() -> None:
    """``TransactionManager``: an AddPartitionsToTxn whose connection closes
    (``request.timeout.ms``) is put back as the same request (``reenqueue``), and
    ``beginAbort`` clears only the partitions not yet sent.  The coordinator did add the
    partition, so the resent request succeeds (``transactionStarted``) and the abort
    sends EndTxn(ABORT): the coordinator ends the transaction at once instead of holding
    it Ongoing until ``transaction.timeout.ms``."""
    s = transactional(**{"kafka.version": "3.9", "request.timeout.ms": "5000",
                         "transaction.timeout.ms": "900000"})
    producer = s.cluster.producers["p0"]
    s.do(a.Send("p0", "k0"))
    hold_back(s, m.AddPartitionsToTxnResponse, rounds=10)   # added, answer held
    assert coordinator_state(s).state == ONGOING
    s.do(a.Tick(5000))                     # request timeout: the connection closes
    s.do(a.AbortTransaction("p0"))
    settle(s)
    assert producer.txn.state == "READY"
    assert coordinator_state(s).state == COMPLETE_ABORT
    assert s.cluster.ctx.now < 900000


def test_a_delayed_end_txn_lands_in_the_next_transaction_before_transaction_version_2() -> None:
    """KAFKA-17754, KIP-890 part 2: an EndTxn(COMMIT) that outlives its timeout is retried
    and completes its transaction; the late original then commits the producer's next
    transaction (same epoch under the classic protocol) half way, so a transaction the
    application aborts is partly visible.  With transaction version 2 the next
    transaction has epoch + 1 and the late request is fenced."""
    for version, torn in (("3.9", True), ("4.0", False)):
        s = transactional(**{"kafka.version": version, "kafkacheck.partitions": "2",
                             "request.timeout.ms": "5000", "isolation.level": "read_committed"})
        producer = s.cluster.producers["p0"]
        s.do(a.Send("p0", "k0", partition=0))
        settle(s)
        s.do(a.CommitTransaction("p0"))
        hold_back(s, m.EndTxnRequest, rounds=1)
        s.do(a.Tick(5000))                      # the EndTxn times out: retried, late
        assert s.cluster.ctx.network.late_links()
        settle(s)
        assert producer.txn.state == "READY"    # the retry committed the transaction
        s.do(a.Send("p0", "k0", partition=0))
        settle(s)
        (src, dst), = s.cluster.ctx.network.late_links()
        s.do(a.DeliverLate(src, dst))
        settle(s)
        s.do(a.Send("p0", "k0", partition=1))
        settle(s)
        if producer.txn.can_abort():
            s.do(a.AbortTransaction("p0"))
        settle(s)
        anomalies = final(s)
        assert ("torn-transaction" in anomalies) == torn, (version, anomalies)
        assert ("G1a" in anomalies) == torn, (version, anomalies)


def test_a_transactional_resend_after_an_unseen_commit_duplicates() -> None:
    """A commit is decided once the coordinator has logged PrepareCommit: a producer that
    dies before the EndTxn answer reaches it cannot know, and an application that resends
    what it did not see committed writes it twice.  Transactions make the producer's own
    retries safe, not the application's (exactly-once needs the record of what was sent
    inside the transaction, as consume-transform-produce keeps its input offsets)."""
    s = transactional(**{"kafkacheck.producer.loop": "resend-after-restart",
                         "isolation.level": "read_committed"})
    s.do(a.Send("p0", "k0"))
    settle(s)
    s.do(a.CommitTransaction("p0"))
    network = s.cluster.ctx.network
    for _ in range(30):
        for src, dst in network.ready_links():
            if dst != "p0":
                s.deliver(src, dst, len(network.queues[(src, dst)]))
        if any(e.f == "txn-state" and e.value["state"] == "PrepareCommit"
               for e in s.cluster.history):
            break
    s.do(a.ClientCrash("p0")).do(a.ClientRestart("p0"))
    settle(s)
    s.do(a.Resend("p0"))
    settle(s)
    s.do(a.CommitTransaction("p0"))
    settle(s)
    assert "duplicate" in final(s)



def test_the_settle_phase_waits_out_the_transaction_timeout() -> None:
    """TransactionCoordinator.abortTimedOutTransactions ends a transaction nobody ends
    after transaction.timeout.ms (checked every cleanup interval); the settle phase must
    last that long before it calls a run unsettled, or a 15-minute transaction would be
    reported stuck at ten minutes."""
    from model.settle import MAX_SETTLE_ROUNDS, SETTLE_TICK_MS, settle_rounds

    long_txn = transactional(**{"transaction.timeout.ms": "900000"}).cluster
    assert settle_rounds(long_txn) * SETTLE_TICK_MS >= 900000 + 10000
    assert settle_rounds(transactional().cluster) == MAX_SETTLE_ROUNDS
    assert settle_rounds(Scenario().cluster) == MAX_SETTLE_ROUNDS


def queued_requests(s: Scenario, client: str = "p0") -> list[Any]:
    network = s.cluster.ctx.network
    return [msg for (src, _), queue in sorted(network.queues.items()) if src == client
            for _, msg in queue]


def test_no_produce_goes_out_while_an_add_partitions_to_txn_is_due() -> None:
    """``Sender.runOnce`` sends no produce data while a transactional request is queued,
    in flight or sleeping out its retry backoff (``maybeSendAndPollTransactionalRequest``
    returns true): a batch for a partition already in the transaction waits behind the
    next partition's AddPartitionsToTxn, and ``KafkaProducer.send`` queues that partition
    at once (``TransactionManager.maybeAddPartition``)."""
    s = transactional(**{"kafka.version": "3.9", "kafkacheck.partitions": "2"})
    producer = s.cluster.producers["p0"]
    txn = producer.txn
    s.do(a.Send("p0", "k0", partition=0))
    settle(s)
    assert txn.added == {0}
    s.do(a.Send("p0", "k0", partition=1))
    (request,) = queued_requests(s)
    assert isinstance(request, m.AddPartitionsToTxnRequest) and request.partitions == (1,)
    s.cluster.ctx.network.reset("p0", txn.request[1])     # answered by hand below
    txn.receive(m.AddPartitionsToTxnResponse(txn.request[0], m.CONCURRENT_TRANSACTIONS))
    s.do(a.Send("p0", "k0", partition=0))         # during the backoff
    assert not any(isinstance(msg, m.ProduceRequest) for msg in queued_requests(s))
    settle(s)
    assert txn.added == {0, 1} and not producer.has_incomplete_batches()


def add_answered_concurrent_transactions(abortable_before_backoff: bool) -> Any:
    """An AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS, with the transaction
    becoming abortable before the answer or during the retry backoff."""
    s = transactional(**{"kafka.version": "3.9"})
    txn = s.cluster.producers["p0"].txn
    s.do(a.Send("p0", "k0"))
    (request,) = queued_requests(s)
    assert isinstance(request, m.AddPartitionsToTxnRequest)
    if abortable_before_backoff:
        txn.batch_failed(m.NETWORK_EXCEPTION)
    txn.receive(m.AddPartitionsToTxnResponse(txn.request[0], m.CONCURRENT_TRANSACTIONS))
    if not abortable_before_backoff:
        txn.batch_failed(m.NETWORK_EXCEPTION)
    assert txn.state == "ABORTABLE_ERROR"
    return txn


def test_a_requeued_add_partitions_is_failed_only_if_abortable_when_dequeued() -> None:
    """``TxnRequestHandler.reenqueue`` after CONCURRENT_TRANSACTIONS: the Sender takes
    the request from the queue on its next loop, failing it if the transaction is in an
    error state then (``maybeTerminateRequestWithError``), and otherwise sleeps out
    ``retry.backoff.ms`` and sends it whatever happened meanwhile."""
    assert isinstance(add_answered_concurrent_transactions(False).next_request(),
                      m.AddPartitionsToTxnRequest)
    assert add_answered_concurrent_transactions(True).next_request() is None
