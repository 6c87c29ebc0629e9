"""Reading and writing Jepsen histories: EDN, JSON Lines, errors, and round trips."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path

import pytest

from invariants.jepsen import analyze
from kafkacheck.jepsen_io import (JepsenFormatError, looks_like_jepsen, parse_edn,
                                  read_jepsen, read_jepsen_text, write_jepsen)
from model.history import Event

from .conftest import hist, o

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """\
{:index 0, :time 1000000, :type :invoke, :process 0, :f :send, :value [[:send 1 5]]}
{:index 1, :time 2000000, :type :ok, :process 0, :f :send, :value [[:send 1 [0 5]]]}
{:index 2, :time 3000000, :type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:index 3, :time 4000000, :type :ok, :process 1, :f :poll, :value [[:poll {1 [[0 5]], 2 []}]], :rebalance-log [{:keys [2]}]}
{:index 4, :time 5000000, :type :info, :process :nemesis, :f :start-partition, :value "boom"}
{:index 5, :time 6000000, :type :invoke, :process 2, :f :assign, :value [1 2]}
{:index 6, :time 7000000, :type :fail, :process 2, :f :assign, :value [1 2], :error [:timeout "no \\"leader\\""]}
"""


def _verdict(events, **kw):
    a = analyze(events, **kw)
    return a.valid, {k: len(v) for k, v in a.anomalies.items()}


def test_reads_jepsen_edn_into_events():
    events = read_jepsen_text(SAMPLE)
    assert [e.index for e in events] == [0, 1, 2, 3, 5, 6]  # the nemesis op is skipped
    assert events[1] == Event(index=1, step=1, time=2, process="0", type="ok", f="send",
                              value=[["send", 1, [0, 5]]])
    assert events[3].value == [["poll", {1: [[0, 5]], 2: []}]]
    assert events[3].meta == {"rebalance-log": [{"keys": [2]}]}
    assert events[4].f == "assign" and events[4].value == [1, 2]


def test_fast_and_general_readers_agree():
    clean = "\n".join(line for line in SAMPLE.splitlines() if '"' not in line) + "\n"
    pretty = clean.replace(", :value", ",\n :value")  # forms span lines: general reader
    assert read_jepsen_text(clean) == read_jepsen_text(pretty)
    assert read_jepsen_text(clean) == [e for e in read_jepsen_text(SAMPLE) if e.index != 6]


def test_general_edn_features():
    forms = [v for _, v in parse_edn(
        '#{1 2} #_ {:a 1} (1 2) \\a "x\\ny" ##Inf #inst "2020" sym 1N 2.5M nil true ; c\n'
        '#jepsen.history.Op{:index 0}')]
    assert forms == [frozenset({1, 2}), [1, 2], "a", "x\ny", float("inf"), "2020", "sym",
                     1, 2.5, None, True, {"index": 0}]


def test_reads_a_vector_of_ops_and_json_lines(tmp_path):
    ops = "[" + SAMPLE.replace("\n", " ") + "]"
    assert read_jepsen_text(ops) == read_jepsen_text(SAMPLE)
    lines = [{"index": 0, "time": 0, "type": "invoke", "process": 0, "f": "poll",
              "value": [["poll"]]},
             {"index": 1, "time": 10**6, "type": "ok", "process": 0, "f": "poll",
              "value": [["poll", {"3": [[0, 7]]}]]}]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert looks_like_jepsen(path)
    events = read_jepsen(path)
    assert events[1].value == [["poll", {3: [[0, 7]]}]] and events[1].time == 1


def test_sniffing_tells_jepsen_from_kafkacheck_histories(tmp_path):
    edn = tmp_path / "history.edn"
    edn.write_text(SAMPLE)
    own = tmp_path / "history.jsonl"
    own.write_text(json.dumps(o(0, "c1", "invoke", "poll", [["poll"]]).to_json()) + "\n")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert looks_like_jepsen(edn)
    assert not looks_like_jepsen(own)
    assert not looks_like_jepsen(other)
    assert not looks_like_jepsen(tmp_path / "missing.edn")


@pytest.mark.parametrize("text, message", [
    ('{:index 0, :type :ok, :process 0, :f :frobnicate, :value nil}', "line 1: unknown :f"),
    ('{:index 0, :type :done, :process 0, :f :poll, :value [[:poll]]}',
     "line 1: unknown :type"),
    ('{:index 0, :type :ok, :process 0, :f :poll, :value [[:poll {1 [[0]]}]]}',
     "(op 0): polled [0] of key 1 is not [offset value]"),
    ('{:index 0, :type :ok, :process 0, :f :poll, :value [[:poll {1 [["x" 2]]}]]}',
     "polled offset 'x' is not an integer or nil"),
    ('{:index 0, :type :ok, :process 0, :f :send, :value [[:send 1 [0 1 2]]]}',
     "is not [offset value]"),
    ('{:index 0, :type :ok, :process 0, :f :send, :value [[:poll]]}',
     "a :send op may only contain"),
    ('{:index 0, :type :ok, :process 0, :f :send, :value 7}', "must be a vector of micro-ops"),
    ('{:index 0, :type :ok, :process 0, :f :assign, :value 7}', "vector of keys"),
    ('{:index 0, :type :ok, :process "p", :f :send, :value []}\n', None),
    ('{:index 0, :type :ok, :process 1.5, :f :send, :value []}', ":process must be an integer"),
    ('{:index 0, :type :ok, :process 0, :f :poll, :value [[:poll]],'
     ' :rebalance-log [:x]}', ":rebalance-log must be a vector"),
    ('[:not-an-op]', "expected an op map"),
])
def test_rejects_bad_ops_naming_line_or_op(text, message):
    good = '{:index 9, :time 0, :type :invoke, :process 0, :f :poll, :value [[:poll]]}\n'
    if message is None:  # a string process is a non-client op: skipped, not an error
        assert read_jepsen_text(good + text) == read_jepsen_text(good)
        return
    with pytest.raises(JepsenFormatError) as e:
        read_jepsen_text(text.replace("line 1", ""))
    assert message.replace("line 1: ", "") in str(e.value)
    if message.startswith("line 1"):
        with pytest.raises(JepsenFormatError, match="line 2"):
            read_jepsen_text(good + text)


@pytest.mark.parametrize("text, message", [
    ('{:index 0 :value "abc}\n', "line 1: unterminated string"),
    ('{:a 1}\n{:b [1 2}\n', "line 2: expected ']'"),
    ('{:a 1}\n\n{:b [1 2]\n', "line 3: form is never closed"),
    ('{:a 1 :b}\n', "line 1: map has an odd number"),
    ('{:a 1}]\n', "line 1: unexpected ']'"),
])
def test_edn_syntax_errors_name_the_line(text, message):
    with pytest.raises(JepsenFormatError, match=message):
        read_jepsen_text(text)


def test_read_errors_for_files(tmp_path):
    bad = tmp_path / "bad.edn"
    bad.write_bytes(b"\xff\xfe{:index 0}")
    with pytest.raises(JepsenFormatError, match="not UTF-8"):
        read_jepsen(bad)


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.edn"
    bad.write_text('{:index 0, :time 0, :type :invoke, :process 0, :f :poll, :value [[:poll]]}\n'
                   '{:b [1 2}\n')
    with pytest.raises(JepsenFormatError) as e:
        read_jepsen(bad)
    assert str(e.value) == f"{bad}: line 2: expected ']' to close the form opened on line 2, got '}}'"


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("  \n\n", "empty file"),
    ("; only a comment\n", "no client operations"),
    ('{:index 0, :time 0, :type :info, :process :nemesis, :f :kill, :value nil}\n',
     "no client operations"),
    ('{"index": 0, "type": "info", "process": "nemesis", "f": "kill"}\n',
     "no client operations"),
])
def test_a_history_without_client_operations_is_unusable(tmp_path, text, message):
    # Nothing to check is not a finding: Jepsen's analysis of it would only say
    # empty-transaction-graph, which `check` would report as an anomaly (exit 1).
    path = tmp_path / "h.edn"
    path.write_text(text)
    with pytest.raises(JepsenFormatError) as e:
        read_jepsen(path)
    assert str(e.value).startswith(f"{path}: {message}")


def _export(events) -> str:
    buf = io.StringIO()
    write_jepsen(events, buf)
    return buf.getvalue()


def test_export_drops_kafkacheck_only_ops_and_renumbers_processes():
    events = [
        Event(0, 0, 0, "n1", "internal", "append", {"x": 1}),
        Event(1, 1, 1, "c1", "invoke", "send", [["send", 0, "a"]], meta={"key": "k"}),
        Event(2, 2, 2, "c1", "info", "send", [["send", 0, [None, "a"]]]),
        Event(3, 3, 3, "c1", "invoke", "poll", [["poll"]]),
        Event(4, 4, 4, "c1", "ok", "poll", [["poll", {0: [[0, "a"]]}]],
              meta={"rebalance-log": [{"keys": [0]}]}),
        Event(5, 5, 5, "c1", "ok", "process", [0, 0, "a"]),
        Event(6, 6, 6, "c1", "ok", "commit", {0: 1}),
        Event(7, 7, 7, "c2", "info", "crash", None),
    ]
    text = _export(events)
    lines = text.splitlines()
    assert lines == [
        '{:index 0, :time 1000000, :type :invoke, :process 0, :f :send, :value [[:send 0 "a"]]}',
        '{:index 1, :time 2000000, :type :info, :process 0, :f :send, :value [[:send 0 "a"]]}',
        '{:index 2, :time 3000000, :type :invoke, :process 1, :f :poll, :value [[:poll]]}',
        '{:index 3, :time 4000000, :type :ok, :process 1, :f :poll, '
        ':value [[:poll {0 [[0 "a"]]}]], :rebalance-log [{:keys [0]}]}',
        '{:index 4, :time 7000000, :type :invoke, :process 2, :f :crash, :value nil}',
        '{:index 5, :time 7000000, :type :info, :process 2, :f :crash, :value nil}',
    ]
    back = read_jepsen_text(text)
    assert back[3].meta == {"rebalance-log": [{"keys": [0]}]}


def test_export_refuses_ops_jepsen_cannot_express():
    with pytest.raises(JepsenFormatError, match="no Jepsen equivalent"):
        _export([Event(0, 0, 0, "c1", "invoke", "teleport", None)])


ANOMALOUS = [
    # G1a, lost write, unseen, poll skip, nonmonotonic send, precommitted read, G1c
    hist((0, "invoke", "send", [["send", "x", 2], ["send", "y", 3]]),
         (0, "fail", "send", [["send", "x", 2], ["send", "y", 3]]),
         (1, "invoke", "poll", [["poll"]]),
         (1, "ok", "poll", [["poll", {"x": [[0, 2]]}]])),
    hist((0, "invoke", "send", [["send", 1, "a"]]),
         (0, "ok", "send", [["send", 1, [0, "a"]]]),
         (0, "invoke", "send", [["send", 1, "b"], ["send", 1, "d"]]),
         (0, "ok", "send", [["send", 1, [1, "b"]], ["send", 1, [3, "d"]]]),
         (1, "invoke", "send", [["send", 1, "c"]]),
         (1, "info", "send", [["send", 1, "c"]]),
         (0, "invoke", "poll", [["poll"]]),
         (0, "ok", "poll", [["poll", {1: [[2, "c"]]}]], {"rebalance-log": [{"keys": [1]}]})),
    hist((0, "invoke", "txn", [["send", "x", "a"], ["poll"]]),
         (1, "invoke", "txn", [["send", "y", "b"], ["poll"]]),
         (0, "ok", "txn", [["send", "x", [0, "a"]], ["poll", {"y": [[0, "b"]]}]]),
         (1, "ok", "txn", [["send", "y", [0, "b"]], ["poll", {"x": [[0, "a"]]}]])),
]


@pytest.mark.parametrize("events", ANOMALOUS)
def test_export_and_read_back_gives_the_same_verdict(events):
    before = _verdict(events)
    assert before[0] is False
    assert _verdict(read_jepsen_text(_export(events))) == before
    assert (_verdict(read_jepsen_text(_export(events)), ww_deps=True)
            == _verdict(events, ww_deps=True))


def _generator():
    spec = importlib.util.spec_from_file_location("jepsen_check",
                                                  ROOT / "benchmarks" / "jepsen_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_synthetic_history_round_trips_with_the_same_verdict():
    buf = io.StringIO()
    _generator().generate(3000, buf, seed=7)
    events = read_jepsen_text(buf.getvalue())
    for kw in ({}, {"ww_deps": True}, {"sub_via": "subscribe"}):
        before = _verdict(events, **kw)
        assert before[0] is True, before
        assert _verdict(read_jepsen_text(_export(events)), **kw) == before


def test_forked_cycle_search_gives_the_same_analysis():
    buf = io.StringIO()
    _generator().generate(3000, buf, seed=11)
    events = read_jepsen_text(buf.getvalue())
    for extra in ([], ANOMALOUS[2]):
        evs = events + [Event(len(events) + i, 0, 0, "x" + e.process, e.type, e.f, e.value)
                        for i, e in enumerate(extra)]
        for kw in ({}, {"ww_deps": True}):
            in_process = analyze(evs, _fork_threshold=10**9, **kw)
            forked = analyze(evs, _fork_threshold=0, **kw)
            assert forked == in_process
    assert "G1c" in forked.anomalies


def test_two_process_reader_gives_the_same_events_and_errors(monkeypatch):
    import kafkacheck.jepsen_io as jio

    monkeypatch.setattr(jio, "_BLOCK", 2000)  # many small blocks, so the helper gets some
    buf = io.StringIO()
    _generator().generate(2000, buf, seed=3)
    text = buf.getvalue()
    monkeypatch.setenv("KAFKACHECK_JEPSEN_FORK", "0")
    sequential = read_jepsen_text(text)
    monkeypatch.setenv("KAFKACHECK_JEPSEN_FORK", "1")
    monkeypatch.setattr(jio, "fork_allowed", lambda n: True)
    assert jio._read_in_two_processes(text) == sequential
    lines = text.splitlines()
    # An error in the helper's half is reported with its line number.
    bad = len(lines) - 5
    lines[bad] = lines[bad].replace(":type :", ":type :nope-", 1)
    with pytest.raises(JepsenFormatError, match=f"line {bad + 1}: unknown :type"):
        jio._read_in_two_processes("\n".join(lines) + "\n")
    # A pretty-printed form makes it step aside for the sequential reader.
    lines[bad] = lines[bad].replace(", :value", ",\n :value")
    assert jio._read_in_two_processes("\n".join(lines) + "\n") is None


def test_irregular_whitespace_reads_the_same():
    clean = "\n".join(line for line in SAMPLE.splitlines() if '"' not in line) + "\n"
    messy = (clean.replace(", ", " ,\t ").replace("[[", "[ [").replace("\n", "\n\n")
             .replace(":send 1", ":send,1"))
    assert read_jepsen_text(messy) == read_jepsen_text(clean)
    crlf = clean.replace("\n", "\r\n")
    assert read_jepsen_text(crlf) == read_jepsen_text(clean)


def test_fast_path_keywords_agree_with_the_edn_reader():
    # Keywords that start like the common runs the fast path quotes with plain replaces.
    from kafkacheck.jepsen_io import _edn_block_to_json

    text = ("{:index 0, :time 1, :type :okay, :process 0, :f :sender, :value [[:send 1 2]]}\n"
            "{:index 1, :time 1, :type :ok, :process 0, :f :send, :value [[:poll] [:pollx 1]"
            " [:send 1 [0 2]] [:send-x :a/b]]}\n"
            "{:index 2, :timex 3, :type :info :process 4, :f :poll :valuex [:poll]}\n"
            "{:index 3, :time 1, :type :ok, :process 0, :f :poll, :value [[:poll {1 [[0 2]]}]]}\n")
    assert _edn_block_to_json(text) == [v for _, v in parse_edn(text)]


@pytest.mark.parametrize("op, message", [
    ('{:index 0, :type [:ok], :process 0, :f :poll, :value [[:poll]]}', "unknown :type"),
    ('{:index 0, :type :ok, :process 0, :f {:a 1}, :value [[:poll]]}', "unknown :f"),
    ('{:index 0, :time ##Inf, :type :ok, :process 0, :f :poll, :value [[:poll]]}',
     ":time must be a number"),
    ('{:index 0, :time ##NaN, :type :ok, :process 0, :f :poll, :value [[:poll]]}',
     ":time must be a number"),
    ('{:index 0, :type :ok, :process 0, :f :poll, :value [[:poll]],'
     ' :rebalance-log [{:keys [[1]]}]}', ":rebalance-log must be a vector"),
    ('{:index 0, :type :ok, :process 0, :f :poll, :value [[:poll {} {}]]}',
     "is not [:poll {key pairs}]"),
])
def test_damaged_ops_are_refused_not_crashed_on(op, message):
    # Each of these once escaped as a TypeError, OverflowError or MalformedOp.
    with pytest.raises(JepsenFormatError, match=re.escape(message)):
        read_jepsen_text(op + "\n")


def test_damaged_jsonl_ops_are_refused_not_crashed_on():
    with pytest.raises(JepsenFormatError, match="unknown :f"):
        read_jepsen_text('{"index": 0, "type": "ok", "process": 0, "f": ["poll"], '
                         '"value": [["poll"]]}\n')
