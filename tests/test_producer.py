"""The producer's Sender: batches go only to ready nodes (Kafka's ``Sender``,
``RecordAccumulator.ready`` / ``drain``, ``NetworkClient.ready``).

A refused connection is not an attempt: the batch stays in the accumulator while the
client refreshes its metadata, until it can be sent or ``delivery.timeout.ms`` expires
it; a batch in flight expires at ``delivery.timeout.ms`` too
(``Sender.getExpiredInflightBatches``).
"""

from __future__ import annotations

from model import actions as a
from tests.scenario import Scenario


def test_a_batch_for_an_unreachable_leader_waits_instead_of_failing() -> None:
    """With retries=0, counting the refused connection as an attempt would fail the send
    at once; Kafka keeps it and sends it to the new leader."""
    s = Scenario(acks="1", retries=0)
    p = s.partition()
    old = s.leader(p)
    s.do(a.Crash(old))
    s.send()
    assert not s.ops("send", "fail") and not s.ops("send", "info")
    assert s.cluster.producers["p0"].queues[p], "the batch waits in the accumulator"
    s.tick(10000).sync_metadata().tick(100).flush(3)
    new = s.leader(p)
    assert new != old and s.values(new, p) == [1]
    assert len(s.ops("send", "ok")) == 1


def test_acks_0_is_not_complete_until_the_record_is_written_to_a_socket() -> None:
    s = Scenario(acks="0")
    p = s.partition()
    s.do(a.Crash(s.leader(p)))
    s.send()
    assert not s.ops("send", "ok") and not s.ops("send", "fail")
    s.tick(10000).sync_metadata().tick(100)
    assert len(s.ops("send", "ok")) == 1


def test_a_batch_no_leader_can_take_fails_at_the_delivery_timeout() -> None:
    """Never sent, so definitely not written: ``fail``, with Kafka's timeout."""
    s = Scenario(acks="1", **{"delivery.timeout.ms": "40000"})
    p = s.partition()
    s.do(a.Partition(("p0",)))
    s.send().tick(30000)
    assert not s.ops("send", "fail")
    s.tick(10000)
    (failed,) = s.ops("send", "fail")
    assert failed.meta["error"] == "DELIVERY_TIMEOUT"
    assert s.values(s.leader(p), p) == []


def test_a_batch_in_flight_expires_at_the_delivery_timeout() -> None:
    s = Scenario(acks="all", **{"delivery.timeout.ms": "30000", "request.timeout.ms": "30000"})
    p = s.partition()
    s.send().deliver("p0", s.leader(p))             # appended, waiting for the ISR
    s.tick(30000)
    (expired,) = s.ops("send", "info")
    assert expired.meta["error"] == "DELIVERY_TIMEOUT"


def test_a_request_lost_with_its_connection_may_have_been_written() -> None:
    """``Sender.handleProduceResponse`` with a disconnection: Kafka's client cannot know
    whether the broker appended the batch, so an exhausted send is reported as uncertain
    (an ``info`` in the history), never as a definite failure: the record is in the log."""
    s = Scenario(acks="1", retries=0, **{"request.timeout.ms": "5000"})
    p = s.partition()
    leader = s.leader(p)
    s.send().deliver("p0", leader)                      # appended, answer on its way
    s.do(a.Partition(("p0",)))                          # cut the client off: answer lost
    s.tick(10000)
    assert not s.ops("send", "fail")
    (uncertain,) = s.ops("send", "info")
    assert uncertain.meta["error"] == "NETWORK_EXCEPTION"
    assert s.values(leader, p) == [1]


def test_a_broker_reads_a_producer_connections_next_request_only_after_answering() -> None:
    """``SocketServer`` mutes a channel from reading a request until its response is
    sent (``Processor.processCompletedSends`` unmutes): a producer's second pipelined
    batch (``max.in.flight.requests.per.connection=5``) waits, unread, while the first is
    parked in produce purgatory for its followers, and is appended once it is answered."""
    s = Scenario(acks="all")
    p = s.partition()
    leader = s.leader(p)
    s.send().deliver("p0", leader).send()
    network = s.cluster.ctx.network
    assert len(network.queues[("p0", leader)]) == 1, "the second batch is on the wire"
    assert not s.cluster.is_enabled(a.Deliver("p0", leader))
    assert s.values(leader, p) == [1]
    for _ in range(2):                      # the followers fetch: the first is answered
        for follower in s.followers(p):
            s.fetch_round(follower, p)
    assert [type(msg).__name__ for _, msg in network.queues[(leader, "p0")]] == [
        "ProduceResponse"]
    s.deliver("p0", leader)
    assert s.values(leader, p) == [1, 2]


def test_an_acks_0_produce_does_not_hold_its_connection() -> None:
    """``acks=0``: ``KafkaApis`` answers with a no-op response that only unmutes the
    channel, so the next request is read at once."""
    s = Scenario(acks="0")
    p = s.partition()
    leader = s.leader(p)
    s.send().send()
    s.deliver("p0", leader).deliver("p0", leader)
    assert s.values(leader, p) == [1, 2]


def test_a_send_expired_in_flight_is_not_reported_again_when_the_process_dies() -> None:
    """Sender.getExpiredInflightBatches completes a batch at delivery.timeout.ms while
    its request is still out; the request keeps its place in flight.  If the process
    then dies, that send already has its outcome: the crash reports only sends still
    unresolved (a second completion would be a Jepsen nonmonotonic-send of one value
    against itself, and a second resend)."""
    s = Scenario(acks="all")
    s.send()        # and nothing is delivered: each attempt times out after 30 s
    producer = s.cluster.producers["p0"]
    for _ in range(200):
        s.tick(1000)
        if s.ops("send", "info"):
            break
    (expired,) = s.ops("send", "info")
    assert expired.meta["error"] == "DELIVERY_TIMEOUT"
    assert any(f.expired for f in producer.in_flight.values()), "still in flight"
    s.do(a.ClientCrash("p0"))
    assert len(s.ops("send", "info")) == 1
