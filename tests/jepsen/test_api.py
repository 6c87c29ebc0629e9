"""The API contract: options, JSON output, kafkacheck-only events, graph export."""

from __future__ import annotations

import json

import pytest

from invariants.jepsen import analyze
from invariants.jepsen import cycles as cycles_mod
from invariants.jepsen.graph import DependencyGraph
from invariants.jepsen.ops import client_ops
from invariants.jepsen.rules import bad_anomaly_types, parse_sub_via
from invariants.jepsen.versions import VersionOrders, ok_reads, writer_of
from model.history import Event

from .conftest import hist
from .test_cycles import _read_skew


def test_sub_via_is_validated():
    assert parse_sub_via("assign,subscribe") == {"assign", "subscribe"}
    assert parse_sub_via(["subscribe"]) == {"subscribe"}
    with pytest.raises(ValueError, match="sub_via"):
        analyze([], sub_via="poll")
    with pytest.raises(ValueError, match="sub_via"):
        parse_sub_via("")


def test_internal_events_and_kafkacheck_ops_are_ignored():
    base = hist((0, "invoke", "send", [["send", 0, "a"]]),
                (0, "ok", "send", [["send", 0, [0, "a"]]]),
                (1, "invoke", "poll", [["poll"]]),
                (1, "ok", "poll", [["poll", {0: [[0, "a"]]}]]))
    noise = [Event(10, 0, 0, "n1", "internal", "append", {"partition": 0}),
             Event(11, 0, 0, "1", "ok", "process", [0, 0, "a"]),
             Event(12, 0, 0, "1", "ok", "commit", {0: 1}),
             # would be a poll skip / G1a if it were read as a client op
             Event(13, 0, 0, "1", "internal", "poll", [["poll", {0: [[5, "zz"]]}]])]
    clean = analyze(base)
    noisy = analyze(base[:2] + noise + base[2:])
    assert clean.valid and noisy.valid
    assert noisy.anomalies == clean.anomalies
    assert noisy.stats["ops"] == 4


def test_to_json_is_plain_json_with_indices():
    events = hist((0, "invoke", "send", [["send", 0, [1, 2]]]),  # a list value...
                  (0, "ok", "send", [["send", 0, [0, [1, 2]]]]),
                  (1, "invoke", "send", [["send", 0, [3]]]),
                  (1, "ok", "send", [["send", 0, [0, [3]]]]))  # ...at the same offset
    a = analyze(events)
    out = a.to_json()
    assert json.loads(json.dumps(out)) == out
    assert out["valid"] is False
    assert out["anomalies"]["inconsistent-offsets"] == [
        {"key": 0, "offset": 0, "index": 0, "values": [[1, 2], [3]]}]
    assert set(out["anomalies"]["unseen"][0]) == {"key", "count", "values", "time"}


def test_timeout_in_an_informational_search_does_not_invalidate():
    allowed = frozenset({"G-single", "G2"})
    timeout = {"cycle-search-timeout": [{"anomaly-spec-type": "G-single",
                                         "not-searched": ["G2"]}]}
    assert bad_anomaly_types(timeout, allowed) == []
    timeout["cycle-search-timeout"].append({"anomaly-spec-type": "G1c", "not-searched": []})
    assert bad_anomaly_types(timeout, allowed) == ["cycle-search-timeout"]


def test_timeout_searching_g_single_keeps_the_history_valid(monkeypatch):
    real = cycles_mod.find_cycle

    def stuck_on_g_single(g, spec, clock):
        if spec.name == "G-single":
            raise cycles_mod._TimedOut
        return real(g, spec, clock)

    monkeypatch.setattr(cycles_mod, "find_cycle", stuck_on_g_single)
    a = analyze(_read_skew())
    (t,) = a.anomalies["cycle-search-timeout"]
    assert t["anomaly-spec-type"] == "G-single" and t["not-searched"] == ["G2"]
    assert a.valid


def test_dependency_graph_exports_to_networkx():
    events = hist((0, "invoke", "txn", [["send", "x", "a"], ["poll"]]),
                  (1, "invoke", "txn", [["send", "y", "b"], ["poll"]]),
                  (0, "ok", "txn", [["send", "x", [0, "a"]], ["poll", {"y": [[0, "b"]]}]]),
                  (1, "ok", "txn", [["send", "y", [0, "b"]], ["poll", {"x": [[0, "a"]]}]]),
                  (2, "invoke", "poll", [["poll"]]),
                  (2, "ok", "poll", [["poll", {"x": [[0, "a"]]}]]))
    h = client_ops(events)
    reads = ok_reads(h)
    orders = VersionOrders(h, reads)
    g = DependencyGraph(h, orders, writer_of(h), False, {}).to_networkx()
    assert g.edges[2, 3]["rels"] == {"wr"} and g.edges[3, 2]["rels"] == {"wr"}
    assert g.edges[2, 5]["rels"] == {"wr", "realtime"}
    assert set(g.nodes) == {2, 3, 5}


def test_completion_without_invocation_is_accepted():
    events = hist((0, "ok", "send", [["send", 0, [0, "a"]]]),
                  (1, "ok", "poll", [["poll", {0: [[0, "a"]]}]]))
    a = analyze(events)
    assert a.valid, a.anomalies


_DETERMINISM_SCRIPT = """
import json, sys
from invariants.jepsen import analyze
from model.history import Event
ops = []
for i in range(60):
    p = str(i % 4)
    k = ["x", "y", "z"][i % 3]
    ops.append(Event(2 * i, 0, i, p, "invoke", "txn", [["send", k, f"v{i}"], ["poll"]]))
    ops.append(Event(2 * i + 1, 0, i, p, "ok", "txn",
                     [["send", k, [i // 3, f"v{i}"]],
                      ["poll", {["y", "z", "x"][i % 3]: [[i // 3, f"v{i - 2}"], [i // 5, "w"]]}]]))
out = {}
for ww in (False, True):
    out[str(ww)] = analyze(ops, ww_deps=ww).to_json()
print(json.dumps(out, sort_keys=True))
"""


def test_results_do_not_depend_on_string_hashing():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    outs = []
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(root))
        proc = subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], env=env, cwd=root,
                              capture_output=True, text=True, check=True)
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    # string values at conflicting offsets: the set-ordering-sensitive case
    assert "inconsistent-offsets" in json.loads(outs[0])["True"]["anomalies"]


def test_malformed_events_are_reported_with_their_index():
    from invariants.jepsen.ops import MalformedOp

    events = hist((0, "invoke", "poll", [["poll"]]),
                  (0, "ok", "poll", [["poll", {0: [[0, "a", "extra"]]}]]))
    with pytest.raises(MalformedOp, match=r"op 1: polled \[0, 'a', 'extra'\] of key 0"):
        analyze(events)
    with pytest.raises(ValueError, match="op 1: unknown micro-op 'append'"):
        analyze(hist((0, "invoke", "txn", [["poll"]]), (0, "ok", "txn", [["append", 0, 1]])))


def test_a_failing_check_stops_the_forked_helper(monkeypatch):
    import os

    from invariants.jepsen import writes

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(writes, "unseen", broken)
    events = _read_skew()
    with pytest.raises(RuntimeError, match="boom"):
        analyze(events, _fork_threshold=0)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no helper left behind, not even a zombie
