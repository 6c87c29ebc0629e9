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
