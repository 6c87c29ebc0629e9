"""Replay re-executes a saved schedule and reports the first step that diverges."""

import json

import pytest

from kafkacheck.replay import replay
from kafkacheck.runner import Run
from kafkacheck.storage import load_history, parse_document, save_history
from model import actions as a
from tests.unit.runs import finished_run


@pytest.fixture(scope="module")
def lossy_run() -> Run:
    return finished_run({"acks": "0", "auto.offset.reset": "earliest"},
                        [a.Send("p0", "k0"), a.Crash("b1"), a.Restart("b1"), a.Send("p0", "k0")])


@pytest.fixture
def saved_path(tmp_path, lossy_run):
    return save_history(tmp_path, lossy_run.config, lossy_run.schedule,
                        lossy_run.cluster.history, lossy_run.verdict(), seed=None)


@pytest.fixture
def doc(saved_path) -> dict:
    return json.loads(saved_path.read_text())


def test_saved_run_replays_without_divergence(saved_path, lossy_run):
    saved = load_history(saved_path)
    result = replay(saved)
    assert not result.diverged
    assert result.diverged_at is None and result.reason == ""
    assert result.verdict is not None
    assert set(result.verdict.anomalies) == set(saved.verdict["anomalies"]) == {"lost-write",
                                                                               "unseen"}
    assert json.loads(json.dumps(result.verdict.to_json())) == saved.verdict


def test_clean_run_replays_clean(tmp_path):
    run = finished_run({"auto.offset.reset": "earliest"}, [a.Send("p0", "k0")])
    path = save_history(tmp_path, run.config, run.schedule, run.cluster.history,
                        run.verdict(), seed=1)
    result = replay(load_history(path))
    assert not result.diverged and result.verdict.valid


def test_edited_event_diverges_at_the_step_that_produced_it(doc):
    # The last acknowledged send: the second k0, sent once b1 (restarted) leads again or another
    # broker took its partition over.
    i = max(i for i, e in enumerate(doc["events"]) if e["type"] == "ok" and e["f"] == "send")
    step = doc["events"][i]["step"]
    assert 3 < step < len(doc["schedule"]) - 1
    doc["events"][i]["meta"] = {"key": "k9"}
    result = replay(parse_document(doc))
    assert result.diverged_at == step
    assert result.verdict is None
    assert result.reason.startswith(f"step {step}: event {i} differs")
    assert '"k9"' in result.reason


def test_edited_internal_event_diverges_at_its_step(doc):
    i = next(i for i, e in enumerate(doc["events"])
             if e["type"] == "internal" and e["f"] == "election")
    doc["events"][i]["time"] += 1
    result = replay(parse_document(doc))
    assert result.diverged_at == doc["events"][i]["step"]
    assert f"event {i} differs" in result.reason


def test_removed_schedule_entry_makes_a_later_action_not_enabled(doc):
    assert doc["schedule"][1] == {"kind": "crash", "node": "b1", "mode": "process"}
    assert doc["schedule"][2] == {"kind": "restart", "node": "b1"}
    del doc["schedule"][1]
    result = replay(parse_document(doc))
    # Without the crash, b1 is alive and the restart (now step 1) is not enabled.
    assert result.diverged_at == 1
    assert result.reason == "step 1: Restart(node='b1') is not enabled when replayed"
    assert result.verdict is None


def test_extra_trailing_events_are_reported(doc):
    n = len(doc["events"])
    extra = dict(doc["events"][-1], index=n)
    doc["events"].append(extra)
    result = replay(parse_document(doc))
    assert result.diverged_at == len(doc["schedule"])
    assert result.reason == f"the file has 1 events after the last step's (event {n} onward)"


def test_missing_trailing_events_are_reported(doc):
    n = len(doc["events"])
    last = doc["events"].pop()
    result = replay(parse_document(doc))
    assert result.diverged_at == last["step"]
    assert result.reason == (f"step {last['step']}: produced event {n - 1} ({last['f']}) "
                             "that the file does not have")


def test_changed_config_diverges(doc):
    doc["config"]["acks"] = "all"
    result = replay(parse_document(doc))
    assert result.diverged


def test_a_minimisation_out_of_replay_budget_keeps_a_reduced_reproducing_schedule(
        tmp_path, lossy_run) -> None:
    """kafkacheck.minimize: ``max_replayed`` bounds the actions replayed (a count, the
    same on every machine); when it runs out, the schedule reduced so far is kept and
    marked not minimal, and a saved history says so.  With room, the result is
    1-minimal and marked so.  (Keeping nothing, every candidate reproduces: the full
    minimisation removes every action.)"""
    from kafkacheck.minimize import minimize

    run = lossy_run
    actions = run.actions
    assert len(actions) > 2
    each = range(len(actions))          # every action its own decision
    full = minimize(run.config, actions, frozenset(), each)
    assert full.minimal and full.actions == []
    spent = minimize(run.config, actions, frozenset(), each, max_replayed=1)
    assert not spent.minimal and spent.actions == actions
    path = save_history(tmp_path, run.config, spent.run.schedule, spent.run.cluster.history,
                        spent.run.verdict(), 0, settle_from=spent.run.settle_from,
                        evidence=["x"], minimal=spent.minimal)
    assert load_history(path).minimal is False
    kept = save_history(tmp_path / "m", run.config, full.run.schedule,
                        full.run.cluster.history, full.run.verdict(), 0,
                        settle_from=full.run.settle_from, evidence=["x"])
    assert load_history(kept).minimal is True
