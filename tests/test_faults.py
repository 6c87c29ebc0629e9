"""What each fault loses, as the real event would (docs/model.md, "Faults").

A process kill (``kill -9``) ends the process but not its machine: bytes it had already
written to its sockets still leave the machine, so its peers receive them and then see
the connection close.  A network cut loses what is in flight in both directions.
"""

from __future__ import annotations

from model import actions as a
from model import messages as m
from tests.scenario import Scenario


def test_a_killed_producer_s_request_still_reaches_the_leader() -> None:
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.send()                                         # the request is on the wire
    s.do(a.ClientCrash("p0"))
    assert [e.meta["error"] for e in s.ops("send", "info")] == ["CLIENT_CRASHED"]
    s.deliver("p0", leader)
    assert s.values(leader, p) == [1], "the kill lost bytes that had left the process"
    s.finish()
    assert "lost-write" not in s.anomalies()


def test_a_killed_leader_s_acknowledgement_still_reaches_the_producer() -> None:
    """The leader acknowledged, then died: the producer reads the answer before it sees
    the connection close (NetworkClient handles completed receives first)."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.send().deliver("p0", leader)
    s.do(a.Crash(leader))
    queued = [type(msg).__name__ for _, msg in s.cluster.ctx.network.queues[(leader, "p0")]]
    assert queued == ["ProduceResponse", "ConnectionClosed"]
    s.deliver(leader, "p0")
    assert len(s.ops("send", "ok")) == 1
    s.deliver(leader, "p0")                           # then the connection closes
    assert not s.cluster.producers["p0"].in_flight


def test_a_network_cut_loses_what_was_in_flight_both_ways() -> None:
    s = Scenario(acks="1", retries=0)
    p = s.partition()
    leader = s.leader(p)
    s.send()
    s.do(a.Partition((leader,)))
    assert not s.cluster.ctx.network.queues.get(("p0", leader))
    assert s.values(leader, p) == []
    (failed,) = s.ops("send", "fail") or s.ops("send", "info")
    assert failed.meta["error"] == m.NETWORK_EXCEPTION


def test_a_killed_follower_s_last_fetch_still_reaches_the_leader() -> None:
    """A fetch the follower sent before dying is served (and answered into the void);
    the leader learns its log end from it, as Kafka would."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    follower = s.followers(p)[0]
    s.do(a.Crash(follower))
    assert s.cluster.ctx.network.queues.get((follower, leader))
    s.deliver(follower, leader)
    assert s.replica(leader, p).followers[follower].log_end_offset == 0
    assert not s.cluster.ctx.network.queues.get((leader, follower)), "answered a dead node"


def test_restarting_a_killed_node_first_delivers_what_it_had_sent() -> None:
    """A restart takes far longer than the kernel needs to flush a dead process's
    sockets: the old bytes arrive before the new process starts."""
    s = Scenario(acks="1")
    p = s.partition()
    leader = s.leader(p)
    s.send().do(a.ClientCrash("p0")).do(a.ClientRestart("p0"))
    assert s.values(leader, p) == [1]
    assert not s.cluster.ctx.network.queues.get(("p0", leader))
