"""Time passing over a message its link could deliver is a network delay, and the history
says so (``network-delay``; docs/model.md, "Network and time").

The model's network is asynchronous, as Jepsen's is: a message may wait on its link as
long as the schedule lets time pass, as it may on a congested or lossy path where TCP
backs off.  Real Kafka meets such delays, so the model keeps them, but a counterexample
that needs one must show it: each tick records the links it held, and only those, since
cuts, crashes, pauses and late requests are faults with names of their own.
"""

from __future__ import annotations

from model import actions as a
from tests.scenario import Scenario


def _held_links(s: Scenario) -> dict[tuple[str, str], list]:
    (last,) = s.internal("network-delay")[-1:]
    return {(src, dst): rest for src, dst, *rest in last.value["links"]}


def test_a_tick_over_a_waiting_produce_request_records_the_delay() -> None:
    """A produce request on a healthy connection (``NetworkClient`` would have it read
    within a round trip) waits through a one-second tick: that is a delay of the network,
    named with the message, how many wait and when the oldest was sent."""
    s = Scenario(acks="1")
    leader = s.leader(s.partition())
    sent_at = s.cluster.ctx.now
    s.send().tick(1000)
    delay = s.internal("network-delay")[-1]
    assert delay.value["ms"] == 1000
    assert _held_links(s)[("p0", leader)] == [1, sent_at, "ProduceRequest"]


def test_a_request_waiting_behind_one_in_purgatory_is_not_a_network_delay() -> None:
    """``SocketServer`` reads a connection's next request only once the one before is
    answered: a producer's second batch waiting behind an ``acks=all`` batch parked in
    produce purgatory waits for the broker, not the network, so no delay is recorded
    for its connection."""
    s = Scenario(acks="all")
    leader = s.leader(s.partition())
    s.send().deliver("p0", leader).send()
    assert len(s.cluster.ctx.network.queues[("p0", leader)]) == 1
    s.tick(1000)
    assert ("p0", leader) not in _held_links(s)


def test_a_paused_consumer_s_unread_answers_are_the_pause_not_a_delay() -> None:
    """A paused client (a long GC pause) reads nothing: what waits for it is the pause's
    doing, which the history names already (``pause``)."""
    s = Scenario(acks="1")
    leader = s.leader(s.partition())
    s.flush(5)
    assert s.cluster.ctx.network.queues[(leader, "c0")], "a fetch answer waits for c0"
    s.tick(1000)
    assert (leader, "c0") in _held_links(s)
    s.do(a.Pause("c0")).tick(1000)
    assert (leader, "c0") not in _held_links(s)


def test_a_cut_holds_nothing_the_delay_could_name() -> None:
    """A network cut loses what was in flight across it and refuses new requests, so no
    link to or from the isolated leader appears in the delay: the cut is the fault,
    named by its own ``partition`` event."""
    s = Scenario(acks="1")
    leader = s.leader(s.partition())
    s.send().tick(1000)
    assert any(leader in link for link in _held_links(s))
    s.do(a.Partition((leader,))).tick(1000)
    assert not any(leader in link for link in _held_links(s))
