"""Schedule entries: JSON round trip and precise errors for malformed entries."""

import json

import pytest

from model import actions as a
from model.actions import ACTION_TYPES, ActionError, action_from_json, action_to_json

ONE_OF_EACH = [
    a.Deliver("b0", "b1"),
    a.DeliverLate("p0", "b1"),
    a.Tick(100),
    a.Crash("b0"),
    a.Crash("b1", mode="power"),
    a.Restart("b2"),
    a.Partition(("b0", "ctl")),
    a.Heal(),
    a.Send("p0", "k3"),
    a.Resend("p0"),
    a.Poll("c0"),
    a.Process("c0"),
    a.Commit("c0"),
    a.Close("c0"),
    a.CommitTransaction("p0"),
    a.AbortTransaction("p0"),
    a.ClientCrash("p0"),
    a.ClientRestart("c0"),
    a.Pause("p0"),
    a.Resume("p0"),
    a.Finish(),
]


def test_examples_cover_every_kind():
    assert {x.kind for x in ONE_OF_EACH} == set(ACTION_TYPES)


@pytest.mark.parametrize("action", ONE_OF_EACH, ids=repr)
def test_round_trip_through_json_text(action):
    raw = json.loads(json.dumps(action_to_json(action)))
    assert raw["kind"] == action.kind
    assert action_from_json(raw) == action


def test_json_shape():
    assert action_to_json(a.Deliver("b0", "b1")) == {"kind": "deliver", "src": "b0", "dst": "b1"}
    assert action_to_json(a.Partition(["b0"])) == {"kind": "partition", "side": ["b0"]}
    assert action_to_json(a.Heal()) == {"kind": "heal"}


def test_optional_field_takes_its_default():
    assert action_from_json({"kind": "crash", "node": "b0"}) == a.Crash("b0", "process")


def error(raw, position=3) -> str:
    with pytest.raises(ActionError) as info:
        action_from_json(raw, position)
    return str(info.value)


def test_unknown_kind():
    message = error({"kind": "explode", "node": "b0"})
    assert message.startswith("schedule[3]: unknown kind 'explode'")
    assert "deliver" in message and "client-restart" in message


def test_missing_kind():
    assert error({"node": "b0"}).startswith("schedule[3]: unknown kind None")


def test_not_an_object():
    assert error(["tick", 100]) == "schedule[3]: expected an object, got list"


def test_missing_field():
    assert error({"kind": "deliver", "src": "b0"}) == "schedule[3]: deliver needs field 'dst'"


@pytest.mark.parametrize("raw, where", [
    ({"kind": "tick", "ms": "100"}, "schedule[3].ms: expected int"),
    ({"kind": "tick", "ms": 1.5}, "schedule[3].ms: expected int"),
    ({"kind": "tick", "ms": True}, "schedule[3].ms: expected int"),
    ({"kind": "send", "client": "p0", "key": 1}, "schedule[3].key: expected str"),
    ({"kind": "partition", "side": "b0"}, "schedule[3].side: expected list"),
    ({"kind": "partition", "side": ["b0", 1]}, "schedule[3].side: expected a list of node names"),
])
def test_wrong_type_names_position_and_field(raw, where):
    assert error(raw).startswith(where)


def test_extra_field():
    message = error({"kind": "heal", "side": ["b0"]})
    assert message == "schedule[3]: unknown field(s) ['side'] for heal"


@pytest.mark.parametrize("ms", [0, -100])
def test_non_positive_tick(ms):
    assert error({"kind": "tick", "ms": ms}) == f"schedule[3].ms: must be positive, got {ms}"


def test_without_a_position_the_error_says_action():
    with pytest.raises(ActionError, match=r"^action: unknown kind"):
        action_from_json({"kind": "nope"})
