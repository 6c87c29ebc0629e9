"""One test (or a few) per anomaly, each a small history adapted from Jepsen's own tests
(jepsen/test/jepsen/tests/kafka_test.clj) with Jepsen's expected findings."""

from __future__ import annotations

from invariants.jepsen import analyze

from .conftest import hist, o


def found(events, name, **kw):
    return analyze(events, **kw).anomalies.get(name)


# --- version orders: inconsistent offsets and duplicates ------------------------------

def test_inconsistent_offsets_ignore_unproven_info_send():
    send_1 = (0, "invoke", "send", [["send", "x", 1], ["send", "y", 1]])
    send_1c = (0, "info", "send", [["send", "x", [0, 1]], ["send", "y", 1]])
    send_2 = (1, "invoke", "send", [["send", "x", 2]])
    send_2c = (1, "ok", "send", [["send", "x", [0, 2]]])
    assert found(hist(send_1, send_1c, send_2, send_2c), "inconsistent-offsets") is None
    # A poll of send-1's value on y proves it committed: now offset 0 of x has two values.
    poll = (2, "invoke", "poll", [["poll"]])
    poll_c = (2, "ok", "poll", [["poll", {"y": [[5, 1]]}]])
    assert found(hist(send_1, send_1c, send_2, send_2c, poll, poll_c),
                 "inconsistent-offsets") == [{"key": "x", "offset": 0, "index": 0,
                                              "values": [1, 2]}]


def test_inconsistent_offsets_real_world_example():
    events = hist((379, "invoke", "send", [["send", 11, 641]]),
                  (379, "ok", "send", [["send", 11, [537, 641]]]),
                  (363, "invoke", "send", [["send", 11, 645]]),
                  (363, "ok", "send", [["send", 11, [537, 645]]]))
    assert found(events, "inconsistent-offsets") == [
        {"key": 11, "index": 0, "offset": 537, "values": [641, 645]}]


def test_duplicate_basic():
    events = hist((0, "invoke", "send", [["send", "x", "a"]]),
                  (0, "ok", "send", [["send", "x", [1, "a"]]]),
                  (1, "invoke", "send", [["send", "x", "b"]]),
                  (1, "info", "send", [["send", "x", "b"]]),
                  (2, "invoke", "poll", [["poll"]]),
                  (2, "ok", "poll", [["poll", {"x": [[2, "b"], [3, "a"]]}]]))
    assert found(events, "duplicate") == [
        {"key": "x", "value": "a", "count": 2, "offsets": [1, 3]}]


def test_duplicate_detection_is_hash_insensitive():
    ops = []
    for value in range(10):
        ops += [(0, "invoke", "send", [["send", "x", value]]),
                (0, "ok", "send", [["send", "x", [0, value]]]),
                (1, "invoke", "poll", [["poll"]]),
                (1, "ok", "poll", [["poll", {"x": [[1, value]]}]])]
    a = analyze(hist(*ops))
    assert sorted(d["value"] for d in a.anomalies["duplicate"]) == list(range(10))
    assert a.anomalies["inconsistent-offsets"] == [
        {"key": "x", "offset": 0, "index": 0, "values": list(range(10))},
        {"key": "x", "offset": 1, "index": 1, "values": list(range(10))}]


def test_duplicate_in_aborted_poll_but_not_of_failed_send():
    events = hist((0, "invoke", "send", [["send", "x", 0]]),
                  (0, "ok", "send", [["send", "x", [1, 0]]]),
                  (0, "invoke", "send", [["send", "x", 1]]),
                  (0, "fail", "send", [["send", "x", [2, 1]]]),
                  (1, "invoke", "poll", [["poll"]]),
                  (1, "fail", "poll", [["poll", {"x": [[11, 0], [12, 1]]}]]))
    assert found(events, "duplicate") == [
        {"key": "x", "value": 0, "count": 2, "offsets": [1, 11]}]


# --- G1a, lost writes, precommitted reads, unseen --------------------------------------

def test_g1a_aborted_read():
    events = hist((0, "invoke", "send", [["send", "x", 2], ["send", "y", 3]]),
                  (0, "fail", "send", [["send", "x", 2], ["send", "y", 3]]),
                  (1, "invoke", "poll", [["poll"]]),
                  (1, "ok", "poll", [["poll", {"x": [[0, 2]]}]]))
    a = analyze(events)
    assert a.anomalies["G1a"] == [{"key": "x", "value": 2, "writer": 1, "reader": 3}]
    assert not a.valid


def test_lost_write_consistent_offsets():
    events = hist((0, "invoke", "send", [["send", "x", "a"]]),
                  (0, "ok", "send", [["send", "x", [0, "a"]]]),
                  (0, "invoke", "send", [["send", "x", "b"], ["send", "x", "d"]]),
                  (0, "ok", "send", [["send", "x", [1, "b"]], ["send", "x", [3, "d"]]]),
                  (1, "invoke", "send", [["send", "x", "c"]]),
                  (1, "info", "send", [["send", "x", "c"]]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[2, "c"]]}]]))
    assert found(events, "lost-write") == [
        {"key": "x", "value": "a", "index": 0, "max-read-index": 2, "writer": 1,
         "max-read": 7},
        {"key": "x", "value": "b", "index": 1, "max-read-index": 2, "writer": 3,
         "max-read": 7}]


def test_lost_write_with_inconsistent_offsets():
    events = hist((0, "invoke", "send", [["send", "x", "a"]]),
                  (0, "ok", "send", [["send", "x", [0, "a"]]]),
                  (0, "invoke", "send", [["send", "x", "b"], ["send", "x", "c"]]),
                  (0, "ok", "send", [["send", "x", [0, "b"]], ["send", "x", [2, "c"]]]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[0, "b"], [2, "c"]]}]]))
    assert found(events, "lost-write") == [
        {"key": "x", "value": "a", "index": 0, "max-read-index": 1, "writer": 1,
         "max-read": 5}]


def test_lost_write_needs_info_send_proven_committed():
    send_ab = (0, "invoke", "send", [["send", "x", "a"], ["send", "y", "b"]])
    send_ab_c = (0, "info", "send", [["send", "x", "a"], ["send", "y", [0, "b"]]])
    send_c = (1, "invoke", "send", [["send", "y", "c"]])
    send_c_c = (1, "info", "send", [["send", "y", "c"]])
    poll_a = (2, "invoke", "poll", [["poll"]])
    poll_a_c = (2, "ok", "poll", [["poll", {"x": [[0, "a"]]}]])
    poll_c = (3, "invoke", "poll", [["poll"]])
    poll_c_c = (3, "ok", "poll", [["poll", {"y": [[1, "c"]]}]])
    assert found(hist(send_ab, send_ab_c, send_c, send_c_c, poll_c, poll_c_c),
                 "lost-write") is None
    assert found(hist(send_ab, send_ab_c, send_c, send_c_c, poll_a, poll_a_c, poll_c,
                      poll_c_c), "lost-write") == [
        {"key": "y", "value": "b", "index": 0, "max-read-index": 1, "writer": 1,
         "max-read": 7}]


def test_precommitted_read():
    events = hist((0, "invoke", "txn", [["send", "x", "a"], ["poll"]]),
                  (0, "ok", "txn", [["send", "x", [0, "a"]], ["poll", {"x": [[0, "a"]]}]]))
    a = analyze(events)
    assert a.anomalies["precommitted-read"] == [{"op": 1, "key": "x", "value": "a"}]
    assert not a.valid


def test_unseen_at_end():
    events = hist((0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {}]]),
                  (0, "invoke", "send", [["send", "x", "a"], ["send", "x", "b"]]),
                  (0, "ok", "send", [["send", "x", [0, "a"]], ["send", "x", [1, "b"]]]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[0, "a"]]}]]))
    a = analyze(events)
    assert a.anomalies["unseen"] == [{"key": "x", "count": 1, "values": ["b"], "time": 5}]
    assert not a.valid
    caught_up = events + hist(*[(0, "invoke", "poll", [["poll"]]),
                                (0, "ok", "poll", [["poll", {"x": [[1, "b"]]}]])])
    caught_up = [o(i, e.process, e.type, e.f, e.value) for i, e in enumerate(caught_up)]
    assert "unseen" not in analyze(caught_up).anomalies


# --- polls ----------------------------------------------------------------------------

def _poll_skip_history(extra=()):
    ops = [(0, "invoke", "poll", [["poll"]]),
           (0, "ok", "poll", [["poll", {"x": [[1, "a"], [2, "b"]]}]]),
           (1, "invoke", "poll", [["poll"]]),
           (1, "ok", "poll", [["poll", {"x": [[3, "c"]]}]]),
           *extra[:2],
           (0, "invoke", "poll", [["poll"]]),
           (0, "ok", "poll", [["poll", {"x": [[4, "d"]]}]]),
           *extra[2:],
           (2, "invoke", "send", [["send", "x", "f"]]),
           (2, "ok", "send", [["send", "x", [6, "f"]]]),
           (0, "invoke", "poll", [["poll"]]),
           (0, "ok", "poll", [["poll", {"x": [[7, "g"]]}]]),
           (3, "invoke", "send", [["send", "x", v] for v in "abcdg"]),
           (3, "info", "send", [["send", "x", v] for v in "abcdg"])]
    return hist(*ops)


def _strip_ops(cases):
    return [{k: v for k, v in c.items() if k != "ops"} for c in cases or []]


def test_poll_skip():
    cases = found(_poll_skip_history(), "poll-skip")
    assert _strip_ops(cases) == [{"key": "x", "delta": 2, "skipped": ["c"]},
                                 {"key": "x", "delta": 2, "skipped": ["f"]}]
    assert [c["ops"] for c in cases] == [[1, 5], [5, 9]]


def test_poll_skip_exempt_after_reassignment_dropping_the_key():
    sub_y = [(0, "invoke", "subscribe", ["y"]), (0, "ok", "subscribe", ["y"]),
             (0, "invoke", "assign", ["y"]), (0, "info", "assign", ["y"])]
    assert found(_poll_skip_history(sub_y), "poll-skip") is None
    keep_x = [(0, "invoke", "subscribe", ["x", "y"]), (0, "ok", "subscribe", ["x", "y"]),
              (0, "invoke", "assign", ["x", "y"]), (0, "ok", "assign", ["x", "y"])]
    assert len(found(_poll_skip_history(keep_x), "poll-skip")) == 2


def test_poll_skip_allowed_only_with_subscribe():
    events = hist((2, "invoke", "send", [["send", "x", v] for v in "abc"]),
                  (2, "ok", "send", [["send", "x", [i, v]] for i, v in enumerate("abc")]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[0, "a"]]}]]),
                  (1, "invoke", "poll", [["poll"]]),
                  (1, "ok", "poll", [["poll", {"x": [[1, "b"]]}]]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[2, "c"]]}]]))
    assert analyze(events).stats["bad-anomaly-types"] == ["poll-skip"]
    assert not analyze(events, sub_via="assign").valid
    assert analyze(events, sub_via="subscribe").valid


def _send_0_to(n):
    return [(0, "invoke", "send", [["send", "x", i] for i in range(n)]),
            (0, "ok", "send", [["send", "x", [i, i]] for i in range(n)])]


def test_aborted_polls_must_rewind():
    good = hist(*_send_0_to(3),
                (1, "invoke", "txn", [["poll"]]), (1, "ok", "txn", [["poll", {"x": [[0, 0]]}]]),
                (1, "invoke", "txn", [["poll"]]),
                (1, "fail", "txn", [["poll", {"x": [[1, 1], [2, 2]]}]]),
                (1, "invoke", "txn", [["poll"]]),
                (1, "info", "txn", [["poll", {"x": [[1, 1], [2, 2]]}]]),
                (1, "invoke", "txn", [["poll"]]),
                (1, "ok", "txn", [["poll", {"x": [[1, 1], [2, 2]]}]]))
    a = analyze(good)
    # Jepsen: (is (empty? (:errors a))); reading only a prefix of op 1's three sends
    # (offset 0) is not an anomaly of any kind in a log.
    assert a.anomalies == {}
    assert a.valid
    bad = hist(*_send_0_to(6),
               (1, "invoke", "txn", [["poll"]]), (1, "ok", "txn", [["poll", {"x": [[0, 0]]}]]),
               (1, "invoke", "txn", [["poll"]]),
               (1, "fail", "txn", [["poll", {"x": [[1, 1], [2, 2]]}]]),
               (1, "invoke", "txn", [["poll"]]),
               (1, "fail", "txn", [["poll", {"x": [[3, 3], [4, 4]]}]]),
               (1, "invoke", "txn", [["poll"]]),
               (1, "ok", "txn", [["poll", {"x": [[5, 5]]}]]))
    assert found(bad, "poll-skip") == [
        {"key": "x", "delta": 3, "skipped": [1, 2], "ops": [3, 7]},
        {"key": "x", "delta": 5, "skipped": [1, 2, 3, 4], "ops": [3, 9]}]


def test_nonmonotonic_poll():
    base = [(0, "invoke", "send", [["send", "x", v] for v in "abcd"]),
            (0, "ok", "send", [["send", "x", v] for v in "abcd"])]
    p123 = [(0, "invoke", "poll", [["poll"]]),
            (0, "ok", "poll", [["poll", {"x": [[1, "a"], [2, "b"], [3, "c"]]}]])]
    p234 = [(0, "invoke", "poll", [["poll"]]),
            (0, "ok", "poll", [["poll", {"x": [[2, "b"], [3, "c"], [4, "d"]]}]])]
    expected = [{"key": "x", "values": ["c", "b"], "delta": -1, "ops": [3, 5]}]
    assert found(hist(*base, *p123, *p234), "nonmonotonic-poll") == expected
    for f in ("subscribe", "assign"):
        drop = [(0, "invoke", f, ["y"]), (0, "ok", f, ["y"])]
        assert found(hist(*base, *p123, *drop, *p234), "nonmonotonic-poll") is None
        keep = [(0, "invoke", f, ["x", "y"]), (0, "ok", f, ["x", "y"])]
        cases = found(hist(*base, *p123, *keep, *p234), "nonmonotonic-poll")
        assert [c["values"] for c in cases] == [["c", "b"]]


def test_int_poll_skip():
    events = hist((1, "invoke", "send", [["send", "x", v] for v in "abd"]),
                  (1, "info", "send", [["send", "x", v] for v in "abd"]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[1, "a"], [4, "d"]]}]]),
                  (0, "invoke", "poll", [["poll"], ["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[1, "a"]]}], ["poll", {"x": [[4, "d"]]}]]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[2, "b"]]}]]))
    assert found(events, "int-poll-skip") == [
        {"key": "x", "values": ["a", "d"], "skipped": ["b"], "delta": 2, "op": 3},
        {"key": "x", "values": ["a", "d"], "skipped": ["b"], "delta": 2, "op": 5}]


def test_int_poll_skip_exempt_when_rebalance_log_names_the_key():
    events = hist((1, "invoke", "send", [["send", "x", v] for v in "abd"]),
                  (1, "info", "send", [["send", "x", v] for v in "abd"]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[1, "a"], [4, "d"]]}]],
                   {"rebalance-log": [{"keys": ["x"]}]}),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[2, "b"]]}]]))
    assert found(events, "int-poll-skip") is None


def test_int_nonmonotonic_poll():
    events = hist((0, "invoke", "send", [["send", "x", v] for v in "abc"]),
                  (0, "info", "send", [["send", "x", v] for v in "abc"]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[3, "c"], [1, "a"]]}]]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"x": [[2, "b"], [3, "c"]]}],
                                     ["poll", {"x": [[3, "c"]]}]]))
    assert found(events, "int-nonmonotonic-poll") == [
        {"key": "x", "values": ["c", "a"], "delta": -2, "op": 3},
        {"key": "x", "values": ["c", "c"], "delta": 0, "op": 5}]


# --- sends ----------------------------------------------------------------------------

def test_int_send_skip_is_found_but_allowed():
    events = hist((0, "invoke", "send", [["send", "x", "a"], ["send", "x", "c"]]),
                  (0, "ok", "send", [["send", "x", [1, "a"]], ["send", "x", "c"]]),
                  (1, "invoke", "send", [["send", "x", "b"]]),
                  (1, "info", "send", [["send", "x", "b"]]),
                  (2, "invoke", "poll", [["poll"]]),
                  (2, "ok", "poll", [["poll", {"x": [[2, "b"], [3, "c"]]}]]))
    a = analyze(events)
    assert a.anomalies["int-send-skip"] == [
        {"key": "x", "values": ["a", "c"], "skipped": ["b"], "delta": 2, "op": 1}]
    assert "int-send-skip" not in a.stats["bad-anomaly-types"]
    read_all = hist((3, "invoke", "poll", [["poll"]]),
                    (3, "ok", "poll", [["poll", {"x": [[1, "a"], [2, "b"], [3, "c"]]}]]))
    read_all = [o(i + 6, e.process, e.type, e.f, e.value) for i, e in enumerate(read_all)]
    a = analyze(events + read_all)
    assert "int-send-skip" in a.anomalies
    assert a.valid, a.stats["bad-anomaly-types"]


def test_int_nonmonotonic_send():
    events = hist((0, "invoke", "send", [["send", "x", 3], ["send", "x", 1]]),
                  (0, "ok", "send", [["send", "x", [3, "c"]], ["send", "x", [1, "a"]]]),
                  (0, "invoke", "send", [["send", "y", "d"], ["send", "y", "b"]]),
                  (0, "info", "send", [["send", "y", "d"], ["send", "y", "b"]]),
                  (1, "invoke", "send", [["send", "y", "c"]]),
                  (1, "info", "send", [["send", "y", "c"]]),
                  (0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {"y": [[2, "b"], [3, "c"], [4, "d"]]}]]))
    assert found(events, "int-nonmonotonic-send") == [
        {"key": "x", "values": ["c", "a"], "delta": -1, "op": 1},
        {"key": "y", "values": ["d", "b"], "delta": -2, "op": 3}]


def test_nonmonotonic_send():
    s34 = [(0, "invoke", "send", [["send", "x", "c"], ["send", "x", "d"]]),
           (0, "ok", "send", [["send", "x", [3, "c"]], ["send", "x", [4, "d"]]])]
    s12 = [(0, "invoke", "send", [["send", "x", 1], ["send", "x", 2]]),
           (0, "ok", "send", [["send", "x", [1, "a"]], ["send", "x", [2, "b"]]])]
    expected = [{"key": "x", "values": ["d", "a"], "delta": -3, "ops": [1, 3]}]
    assert found(hist(*s34, *s12), "nonmonotonic-send") == expected
    sub_y = [(0, "invoke", "subscribe", ["y"]), (0, "ok", "subscribe", ["y"])]
    assert found(hist(*s34, *sub_y, *s12), "nonmonotonic-send") is None
    assign_y = [(0, "invoke", "assign", ["y"]), (0, "info", "assign", ["y"])]
    assert found(hist(*s34, *assign_y, *s12), "nonmonotonic-send") is None
    keep = [(0, "invoke", "assign", ["x", "y"]), (0, "ok", "assign", ["x", "y"])]
    assert [c["values"] for c in found(hist(*s34, *keep, *s12), "nonmonotonic-send")] == [
        ["d", "a"]]


# --- realtime lag (Jepsen's realtime-lag-test) ----------------------------------------

def test_realtime_lag_matches_jepsen():
    from invariants.jepsen.ops import client_ops
    from invariants.jepsen.polls import realtime_lag

    ops = [(0, 0, "invoke", "assign", ["x"]), (1, 0, "ok", "assign", ["x"]),
           (2, 0, "invoke", "poll", [["poll"]]), (3, 0, "ok", "poll", [["poll", {"x": []}]]),
           (4, 0, "invoke", "send", [["send", "x", "a"]]),
           (5, 0, "ok", "send", [["send", "x", [0, "a"]]]),
           (6, 0, "invoke", "poll", [["poll"]]), (7, 0, "ok", "poll", [["poll", {"x": []}]]),
           (8, 1, "invoke", "send", [["send", "x", "c"], ["send", "x", "d"]]),
           (9, 1, "ok", "send", [["send", "x", [2, "c"]], ["send", "x", [3, "d"]]]),
           (10, 0, "invoke", "poll", [["poll"]]), (11, 0, "ok", "poll", [["poll"]]),
           (12, 0, "invoke", "poll", [["poll"]]),
           (13, 0, "ok", "poll", [["poll", {"x": [[0, "a"], [1, "b"]]}]]),
           (14, 0, "invoke", "assign", ["x", "y"]), (15, 0, "ok", "assign", ["x", "y"]),
           (16, 0, "invoke", "poll", [["poll"]]), (17, 0, "ok", "poll", [["poll", {}]]),
           (18, 0, "invoke", "assign", ["y"]), (19, 0, "ok", "assign", ["y"]),
           (20, 0, "invoke", "assign", ["x"]), (21, 0, "ok", "assign", ["x"]),
           (22, 0, "invoke", "poll", [["poll"]]), (23, 0, "ok", "poll", [["poll", {}]]),
           (24, 0, "invoke", "poll", [["poll"], ["poll"]]),
           (25, 0, "ok", "poll", [["poll", {"x": [[0, "a"], [1, "b"]]}],
                                  ["poll", {"x": [[2, "c"], [3, "d"]]}]]),
           (26, 1, "invoke", "send", [["send", "x", "b"]]),
           (27, 1, "info", "send", [["send", "x", "b"]])]
    events = [o(i, p, t, f, v, time=time) for i, (time, p, t, f, v) in enumerate(ops)]
    lags = [(t, p, k, lag) for t, p, k, lag in realtime_lag(client_ops(events))]
    assert lags == [(2, "0", "x", 0), (6, "0", "x", 1), (10, "0", "x", 5), (12, "0", "x", 3),
                    (16, "0", "x", 7), (16, "0", "y", 0), (22, "0", "x", 17),
                    (24, "0", "x", 0)]
    stats = analyze(events).stats
    assert stats["worst-realtime-lag"] == {"time": 22, "process": "0", "key": "x", "lag": 17}
    assert [(e["key"], e["lag"]) for e in stats["realtime-lag-by-key"]] == [("x", 17),
                                                                           ("y", 0)]


# --- version orders (Jepsen's version-orders-test) ------------------------------------

def test_version_orders_with_gap_and_conflict():
    from invariants.jepsen.ops import client_ops
    from invariants.jepsen.versions import VersionOrders, ok_reads

    events = hist((0, "ok", "txn", [["poll", {"x": [[0, "a"], [1, "b"]]}]]),
                  # Crashed, but reading b proves it committed: c at 1 conflicts with b.
                  (1, "info", "txn", [["send", "x", [1, "c"]], ["send", "x", [3, "b"]],
                                      ["send", "x", [4, "d"]]]))
    h = client_ops(events)
    orders = VersionOrders(h, ok_reads(h))
    x = orders.get("x")
    assert x.offsets == [0, 1, 3, 4]  # offset 2 is a gap
    assert x.by_index == ["a", "b", "b", "d"]  # Jepsen picks either of {b c} at offset 1
    assert x.by_value == {"a": 0, "b": 2, "d": 3}
    assert orders.inconsistent_offsets() == [
        {"key": "x", "offset": 1, "index": 1, "values": ["b", "c"]}]
    # Without the proof of commit, only the poll counts.
    h2 = client_ops(events[1:])
    assert VersionOrders(h2, ok_reads(h2)).get("x") is None
