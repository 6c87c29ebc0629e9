"""One verdict: hunts, ``replay`` and ``check`` judge a history with the same checkers.

The seeded bug below is the one that exposed the split: a producer that treats a request
lost with its connection as never written ends a send ``fail`` although the record was
appended.  Only Jepsen's analysis (``G1a``) and, since, the model-aware delivery check
see it; a hunt that judged with the model-aware checkers alone called it exactly-once.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from invariants.check import check_events
from invariants.jepsen import analyze
from invariants.verdict import judge
from kafkacheck.checking import check_file
from kafkacheck.hunt import hunt
from kafkacheck.matrix import hunt_config
from kafkacheck.replay import replay
from kafkacheck.storage import load_history, save_history
from model import actions as a
from model import messages as m
from model.history import Event
from tests.scenario import Scenario
from tests.test_checkers import History


def _forgets_written_requests(self: Any, peer: str) -> None:
    """Producer.on_disconnect with the seeded bug: lost requests count as not written."""
    lost = sorted((c, f) for c, f in self.in_flight.items() if f.broker == peer)
    for corr, _ in lost:
        del self.in_flight[corr]
    for _, flight in reversed(lost):
        self._failed_attempt(flight.batch, m.NETWORK_EXCEPTION, written=False)


@pytest.fixture
def seeded_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    # The class the cluster really uses, wherever the model keeps it.
    producer_class = type(Scenario().cluster.producers["p0"])
    monkeypatch.setattr(producer_class, "on_disconnect", _forgets_written_requests)


def _fail_but_written(retries: int = 0) -> Scenario:
    """The leader appends the record, then the producer's connection to it drops."""
    s = Scenario(acks="all", retries=str(retries))
    leader = s.leader(s.partition())
    s.send().deliver("p0", leader)
    s.do(a.Partition(("p0",)))
    return s.finish()


def test_the_run_verdict_catches_a_send_that_failed_but_was_written(seeded_bug):
    s = _fail_but_written()
    assert [e.type for e in s.ops("send") if e.type != "invoke"] == ["fail"]
    verdict = s.run.verdict()
    assert set(verdict.anomalies) == {"G1a"} and verdict.invalid == ("G1a",)
    assert not verdict.valid and verdict.guarantee == "at-least-once"
    # Found once although both checkers see it (Jepsen's, via the poll, comes first).
    (g1a,) = verdict.anomalies["G1a"]
    assert g1a["key"] == s.partition() and g1a["value"] == 1 and "reader" in g1a


def test_without_the_bug_the_same_schedule_is_indeterminate_and_clean():
    s = _fail_but_written()
    assert [e.type for e in s.ops("send") if e.type != "invoke"] == ["info"]
    verdict = s.run.verdict()
    assert verdict.valid and verdict.anomalies == {} and verdict.guarantee == "exactly-once"


def test_a_hunt_finds_the_seeded_bug_and_its_saved_verdict_is_what_check_and_replay_say(
        seeded_bug, tmp_path):
    result = hunt(hunt_config({"retries": "0"}), examples=60, steps=30, seed=0,
                  target=frozenset({"G1a"}), out_dir=tmp_path, shrink=False)
    assert result.found and "G1a" in result.anomalies
    saved = load_history(result.path)
    assert saved.verdict["guarantee"] != "exactly-once" and not saved.verdict["valid"]
    assert check_file(result.path) == saved.verdict
    replayed = replay(saved)
    assert not replayed.diverged and replayed.verdict.to_json() == saved.verdict


def test_check_replay_and_the_run_agree_on_every_field(tmp_path):
    s = Scenario(acks="1")
    leader = s.leader(s.partition())
    s.send().deliver("p0", leader).deliver(leader, "p0").do(a.Crash(leader))
    s.finish()
    verdict = s.run.verdict()
    assert "lost-write" in verdict.anomalies and "unseen" in verdict.anomalies
    path = save_history(tmp_path, s.run.config, s.run.schedule, s.cluster.history, verdict,
                        seed=None)
    document = json.loads(path.read_text())["verdict"]
    assert document == verdict.to_json()  # already JSON-shaped: nothing changes on disk
    assert check_file(path) == document
    assert replay(load_history(path)).verdict.to_json() == document
    # The merged stats carry both halves.
    assert {"ops", "edges", "events", "final-log", "bad-anomaly-types"} <= set(document["stats"])
    assert document["stats"]["bad-anomaly-types"] == sorted(verdict.invalid)


def _event(i: int, process: str, type_: str, f: str, value) -> Event:
    return Event(i, i, i, process, type_, f, value)


def test_informational_anomalies_are_listed_but_do_not_invalidate():
    # One op's two sends with another producer's record between them: int-send-skip,
    # which Kafka allows (transactions do not lock partitions).
    ops = [("p0:0:0", "invoke", "send", [["send", 0, 1], ["send", 0, 3]]),
           ("p1:0:0", "invoke", "send", [["send", 0, 2]]),
           ("p1:0:0", "ok", "send", [["send", 0, [1, 2]]]),
           ("p0:0:0", "ok", "send", [["send", 0, [0, 1]], ["send", 0, [2, 3]]]),
           ("c0:0", "invoke", "poll", [["poll"]]),
           ("c0:0", "ok", "poll", [["poll", {0: [[0, 1], [1, 2], [2, 3]]}]])]
    verdict = judge([_event(i, *op) for i, op in enumerate(ops)])
    assert set(verdict.anomalies) == {"int-send-skip"}
    assert verdict.valid and verdict.invalid == () and verdict.guarantee == "exactly-once"


def test_the_model_aware_half_alone_misses_what_the_verdict_finds():
    # Why hunts must not judge with check_events alone: it never sees Jepsen's
    # consumer-side anomalies, e.g. the unseen value of a lost write.
    s = Scenario(acks="1")
    leader = s.leader(s.partition())
    s.send().deliver("p0", leader).deliver(leader, "p0").do(a.Crash(leader)).finish()
    assert "unseen" not in check_events(s.cluster.history).anomalies
    assert "unseen" in s.run.verdict().anomalies


def test_judging_a_hunt_sized_history_never_forks(monkeypatch):
    s = Scenario(acks="1")
    for key in ("k0", "k1", "k2", "k0", "k1"):
        s.send(key)
    s.flush(5).finish()
    assert len(s.cluster.history) > 50

    def no_fork() -> int:
        raise AssertionError("the Jepsen analysis forked for a small history")

    monkeypatch.setattr(os, "fork", no_fork)
    assert s.run.verdict().valid


def test_a_finished_run_that_sent_nothing_is_valid():
    # Jepsen calls a history without any dependency edge unusable (nothing checked); a
    # finished model run was still checked against its final log, so it is listed but
    # does not invalidate (a hunt once stopped on exactly this: a run whose only client
    # operation was one empty poll).
    h = History().add("c0:0", "invoke", "assign", [0]).add("c0:0", "ok", "assign", [0])
    h.start(0, 0).poll({}).final(0, [])
    verdict = judge(h.events)
    assert set(verdict.anomalies) == {"empty-transaction-graph"}
    assert verdict.valid and verdict.guarantee == "exactly-once"
    # Without the final log (an unfinished history) nothing was checked: invalid.
    unfinished = [e for e in h.events if e.f not in ("final-log", "finish")]
    assert judge(unfinished).invalid == ("empty-transaction-graph",)


def test_records_before_a_latest_consumers_start_are_not_unseen_or_lost():
    # auto.offset.reset=latest: the consumer first starts at offset 1, after record 1.
    h = History().send(1, offset=0).start(0, 1).send(2, offset=1).poll({0: [[1, 2]]})
    h.process(0, 1, 2).final(0, [1, 2])
    jepsen = analyze(h.events)  # which assumes consumers start at the beginning
    assert jepsen.anomalies["unseen"][0]["values"] == [1]
    assert [d["value"] for d in jepsen.anomalies["lost-write"]] == [1]
    verdict = judge(h.events)
    assert verdict.anomalies == {} and verdict.guarantee == "exactly-once"
    # A record missing from the final log is never excused.
    lossy = History().send(1, offset=0).start(0, 1).send(2, offset=1).poll({0: [[1, 2]]})
    lossy.process(0, 1, 2).final(0, [3, 2])
    assert {"unseen", "lost-write"} <= set(judge(lossy.events).invalid)
