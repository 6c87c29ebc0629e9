"""Event JSON codec: every kind of event survives json.dumps/json.loads unchanged."""

import json

import pytest

from model.history import Event, HistoryRecorder


def through_json(event: Event) -> Event:
    return Event.from_json(json.loads(json.dumps(event.to_json())))


def ev(type_, f, value, process="p0:0:0", meta=None) -> Event:
    return Event(index=7, step=3, time=1500, process=process, type=type_, f=f, value=value,
                 meta=meta)


EVENTS = {
    "send-invoke": ev("invoke", "send", [["send", 1, 17]], meta={"key": "k0"}),
    "send-ok": ev("ok", "send", [["send", 1, [4, 17]]], meta={"key": "k0"}),
    "send-ok-acks0": ev("ok", "send", [["send", 0, [None, 18]]], meta={"key": "k2"}),
    "send-fail": ev("fail", "send", [["send", 1, 17]], meta={"key": "k0", "error": "x"}),
    "poll-invoke": ev("invoke", "poll", [["poll"]], process="c0:0"),
    "poll-ok": ev("ok", "poll", [["poll", {0: [[0, 5], [1, 9]], 1: [[3, 2]]}]],
                  process="c0:0"),
    "poll-ok-empty": ev("ok", "poll", [["poll", {}]], process="c0:0"),
    "commit": ev("invoke", "commit", {0: 2, 1: 4}, process="c0:0"),
    "process": ev("ok", "process", [1, 3, 2], process="c0:0", meta={"key": "k1"}),
    "assign": ev("ok", "assign", [0, 1], process="c0:0"),
    "crash": ev("info", "crash", None, process="c0:0"),
    "internal": ev("internal", "append",
                   {"partition": 1, "offset": 0, "epoch": 2, "value": 17}, process="b1"),
    "internal-nested": ev("internal", "final-log",
                          {"partition": 0, "leader": None, "hw": 1,
                           "records": [[0, 1, "k0", "p0", 0]]}, process="b0"),
}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_round_trip(name):
    event = EVENTS[name]
    assert through_json(event) == event


def test_poll_partition_keys_are_strings_in_json_and_integers_again_after():
    event = EVENTS["poll-ok"]
    encoded = json.loads(json.dumps(event.to_json()))
    assert encoded["value"] == [["poll", {"0": [[0, 5], [1, 9]], "1": [[3, 2]]}]]
    decoded = Event.from_json(encoded).value[0][1]
    assert list(decoded) == [0, 1]
    assert all(type(k) is int for k in decoded)


def test_commit_partition_keys_are_integers_again():
    decoded = through_json(EVENTS["commit"]).value
    assert decoded == {0: 2, 1: 4}
    assert all(type(k) is int for k in decoded)


def test_meta_is_omitted_when_empty():
    assert "meta" not in EVENTS["crash"].to_json()
    assert EVENTS["send-ok"].to_json()["meta"] == {"key": "k0"}


def test_json_field_names_are_jepsen_names():
    assert set(EVENTS["send-ok"].to_json()) == {
        "index", "step", "time", "process", "type", "f", "value", "meta"}


def test_recorder_stamps_index_step_and_time():
    recorder = HistoryRecorder()
    recorder.step, recorder.time = 4, 200
    first = recorder.add("p0:0:0", "invoke", "send", [["send", 0, 1]])
    recorder.step, recorder.time = 5, 300
    second = recorder.internal("b0", "append", partition=0, offset=0)
    assert (first.index, first.step, first.time) == (0, 4, 200)
    assert (second.index, second.step, second.time, second.type) == (1, 5, 300, "internal")
    assert second.value == {"partition": 0, "offset": 0}
    assert [through_json(e) for e in recorder.events] == recorder.events


def test_every_event_of_a_real_run_round_trips():
    from kafkacheck.runner import Run
    from model import actions as a
    from model.config import Config

    run = Run(Config.from_settings({"auto.offset.reset": "earliest", "kafkacheck.keys": 2}))
    run.apply_all([a.Send("p0", "k0"), a.Send("p0", "k3"), a.Crash("b2")])
    run.finish()
    kinds = {(e.type, e.f) for e in run.cluster.history}
    assert {("ok", "send"), ("ok", "poll"), ("ok", "process"), ("ok", "commit"),
            ("internal", "final-log")} <= kinds
    assert [through_json(e) for e in run.cluster.history] == run.cluster.history
