"""Network: FIFO links, cuts, connection generations and crashed nodes."""

import pytest

from model.network import Network

NODES = ["a", "b", "c"]


def drain(net: Network, src: str, dst: str) -> list:
    out = []
    while (src, dst) in net.ready_links():
        out.append(net.pop(src, dst)[1])
    return out


def test_each_link_is_fifo():
    net = Network()
    for i in range(5):
        assert net.send("a", "b", f"ab{i}")
        assert net.send("b", "a", f"ba{i}")
    assert net.ready_links() == [("a", "b"), ("b", "a")]
    assert net.queued() == 10
    assert drain(net, "a", "b") == [f"ab{i}" for i in range(5)]
    assert drain(net, "b", "a") == [f"ba{i}" for i in range(5)]
    assert net.queued() == 0


def test_links_are_independent():
    net = Network()
    net.send("a", "b", 1)
    net.send("c", "b", 2)
    net.send("a", "b", 3)
    assert net.pop("c", "b") == (0, 2)
    assert net.pop("a", "b") == (0, 1)


def test_pop_on_an_empty_link_raises():
    net = Network()
    with pytest.raises(KeyError):
        net.pop("a", "b")
    net.send("a", "b", 1)
    net.pop("a", "b")
    with pytest.raises(KeyError):
        net.pop("a", "b")


def test_cut_drops_queued_messages_both_ways_and_refuses_new_ones_until_heal():
    net = Network()
    net.send("a", "b", "to-b")
    net.send("b", "a", "to-a")
    net.send("b", "c", "unrelated")
    assert net.cut({"a"}, NODES) == [("a", "b"), ("a", "c")]
    assert not net.connected("a", "b") and not net.connected("b", "a")
    assert net.connected("b", "c")
    assert net.ready_links() == [("b", "c")]
    assert not net.send("a", "b", "late")
    assert not net.send("b", "a", "late")
    assert not net.send("c", "a", "late")
    assert net.queued() == 1
    net.heal()
    assert net.connected("a", "b")
    assert net.send("b", "a", "after-heal")
    assert drain(net, "b", "a") == ["after-heal"]


def test_cutting_an_already_cut_pair_reports_nothing_new():
    net = Network()
    net.cut({"a"}, NODES)
    assert net.cut({"a"}, NODES) == []
    assert net.cut({"b"}, NODES) == [("b", "c")]


def test_a_cut_starts_a_new_connection_generation():
    net = Network()
    assert net.generation("a", "b") == 0
    net.cut({"a"}, NODES)
    net.heal()
    assert net.generation("a", "b") == net.generation("b", "a") == 1
    assert net.generation("b", "c") == 0
    net.send("a", "b", "x")
    assert net.pop("a", "b") == (1, "x")


def test_reset_drops_queued_messages_and_bumps_the_generation():
    net = Network()
    old = net.generation("a", "b")
    net.send("a", "b", 1)
    net.send("b", "a", 2)
    net.send("a", "c", 3)
    net.reset("b", "a")
    assert net.generation("a", "b") == old + 1
    assert net.ready_links() == [("a", "c")]
    # A response sent on the old connection is discarded, not delivered.
    assert not net.send("b", "a", "late response", generation=old)
    assert net.ready_links() == [("a", "c")]
    assert net.send("b", "a", "fresh", generation=old + 1)
    assert net.pop("b", "a") == (old + 1, "fresh")


def test_a_killed_process_bytes_still_leave_its_machine_then_the_connection_closes():
    """Process kill: what the process sent is still delivered, followed by the end of
    the connection; what was on its way to it is lost; peers with nothing in flight from
    it are told at once."""
    net = Network()
    for src, dst in [("a", "b"), ("b", "a"), ("c", "a"), ("b", "c")]:
        net.send(src, dst, f"{src}{dst}")
    assert net.kill("a", NODES) == ["c"]
    assert net.ready_links() == [("a", "b"), ("b", "c")]
    assert drain(net, "a", "b")[0] == "ab"
    assert not net.send("a", "b", "x")
    assert not net.send("b", "a", "x") and not net.send("c", "a", "x")
    assert net.generation("a", "b") == net.generation("a", "c") == 1
    assert net.generation("b", "c") == 0


def test_the_end_of_a_killed_connection_follows_its_last_bytes():
    from model.messages import ConnectionClosed

    net = Network()
    net.send("a", "b", "last words")
    net.kill("a", NODES)
    assert net.pop("a", "b") == (0, "last words")
    generation, closed = net.pop("a", "b")
    assert isinstance(closed, ConnectionClosed) and generation == 0
    net.set_up("a")
    assert net.send("b", "a", "back")
    assert net.pop("b", "a") == (1, "back")


def test_a_node_not_listening_refuses_requests_but_gets_answers():
    """A broker opens its listeners only once unfenced (BrokerServer.startup): new
    requests to it are refused, answers on connections it opened still arrive."""
    net = Network()
    net.listen("a", False)
    assert not net.accepts("b", "a") and not net.send("b", "a", "request")
    assert net.send("b", "a", "answer", generation=0)
    net.listen("a", True)
    assert net.send("b", "a", "request")

def test_a_closed_connections_requests_travel_on_late_in_order():
    """``Selector.close`` closes the socket without SO_LINGER: what the client had sent
    is still the kernel's to deliver, on the old connection, in order."""
    net = Network()
    net.send("a", "b", "first")
    net.send("a", "b", "second")
    net.send("b", "a", "answer")
    net.close("a", "b")
    assert net.ready_links() == []
    assert net.late_links() == [("a", "b")]
    assert [net.pop_late("a", "b")[1] for _ in range(2)] == ["first", "second"]


def test_an_orphaned_connection_is_reset_a_window_after_its_oldest_bytes_were_sent():
    """Linux retransmits an orphaned socket's data ``tcp_orphan_retries`` times
    (``tcp_write_timeout`` with ``tcp_orphan_retries``, 8 by default: about 102 s after
    the oldest unacknowledged bytes were first sent), then resets it: whatever is still
    late on that connection never arrives.  A later connection's late bytes live on."""
    net = Network(orphan_window_ms=102_200)
    net.send("a", "b", "old")              # sent at 0
    net.advance(30_000)
    net.send("a", "b", "queued behind")    # sent at 30 s, same connection
    net.close("a", "b")                    # request.timeout.ms: the client gives up
    net.send("a", "b", "retry")            # the new connection, sent at 30 s
    net.advance(60_000)
    net.close("a", "b")                    # the retry times out too
    assert net.advance(102_199) == []
    assert len(net.late[("a", "b")]) == 3, "still retransmitted until the window is over"
    assert net.advance(102_200) == [(("a", "b"), 2)], "the first connection's bytes die together"
    assert [message for _, message in net.late[("a", "b")]] == ["retry"]
    assert net.advance(132_200) == [(("a", "b"), 1)]
    assert net.late_links() == [] and net.queued() == 0


def test_closing_after_the_window_loses_the_bytes_at_once():
    """An open connection retransmits for ``tcp_retries2`` (longer); once closed, the
    orphan timer finds the window spent at its next firing and resets it."""
    net = Network(orphan_window_ms=1_000)
    net.send("a", "b", "stuck")
    net.advance(1_000)
    net.close("a", "b")
    assert net.late_links() == [] and net.queued() == 0


def test_delivering_the_oldest_late_request_keeps_the_connection_alive():
    """The window runs from the oldest *unacknowledged* bytes: once the first late
    request is delivered, the connection lives by its next one's send time."""
    net = Network(orphan_window_ms=10_000)
    net.send("a", "b", "one")
    net.advance(5_000)
    net.send("a", "b", "two")
    net.close("a", "b")
    assert net.pop_late("a", "b") == (0, "one")
    assert net.advance(12_000) == []
    assert net.pop_late("a", "b") == (0, "two")


# -- SocketServer: one request at a time per producer connection ------------------------


def test_a_read_request_mutes_its_connection_until_answered():
    """``SocketServer``'s processor mutes a channel once it has read a request and
    unmutes it when the answer is sent: the next request waits, unread."""
    net = Network()
    net.read_one_at_a_time(["a"])
    net.send("a", "b", "first")
    net.send("a", "b", "second")
    generation, _ = net.pop("a", "b")
    assert not net.deliverable("a", "b") and net.ready_links() == []
    with pytest.raises(KeyError):
        net.pop("a", "b")
    net.send("b", "a", "answer", generation)
    assert net.pop("a", "b") == (generation, "second")


def test_only_the_named_sources_are_read_one_at_a_time():
    net = Network()
    net.read_one_at_a_time(["a"])
    net.send("c", "b", 1)
    net.send("c", "b", 2)
    net.pop("c", "b")
    assert net.deliverable("c", "b")


def test_an_answer_that_cannot_be_carried_still_unmutes():
    """The broker finished the request; its answer to a closed connection is dropped,
    and the requests the client sent before closing are read in turn, late."""
    net = Network()
    net.read_one_at_a_time(["a"])
    net.send("a", "b", "first")
    net.send("a", "b", "second")
    old, _ = net.pop("a", "b")
    net.close("a", "b")
    assert net.links_with_late() == [("a", "b")] and net.late_links() == []
    assert not net.late_deliverable("a", "b")
    net.send("a", "b", "on the new connection")
    assert net.pop("a", "b")[1] == "on the new connection"   # a new connection is not muted
    assert not net.send("b", "a", "answer", old)
    assert net.pop_late("a", "b") == (old, "second")


def test_a_request_with_no_answer_is_unmuted_explicitly():
    """``acks=0``: ``KafkaApis`` sends a no-op response, which only unmutes."""
    net = Network()
    net.read_one_at_a_time(["a"])
    net.send("a", "b", "first")
    net.send("a", "b", "second")
    generation, _ = net.pop("a", "b")
    net.unmute("a", "b", generation)
    assert net.pop("a", "b")[1] == "second"


def test_a_killed_reader_takes_its_mutes_with_it():
    net = Network()
    net.read_one_at_a_time(["a"])
    net.send("a", "b", "first")
    net.pop("a", "b")
    net.kill("b", NODES)
    assert not net.muted


def test_orphaned_unread_requests_travel_late():
    """A killed producer's requests its broker has not read yet do not hold back the
    connection of the process that replaces it."""
    net = Network()
    net.read_one_at_a_time(["a"])
    net.send("a", "b", "first")
    net.send("a", "b", "second")
    old, _ = net.pop("a", "b")
    net.kill("a", NODES)
    net.orphan("a", "b")
    net.set_up("a")
    assert net.send("a", "b", "new")
    assert net.pop("a", "b")[1] == "new"
    net.send("b", "a", "answer", old)
    assert net.pop_late("a", "b") == (old, "second")
