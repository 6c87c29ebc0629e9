"""Saved histories: lossless round trip and one precise message per kind of bad file."""

import json
from pathlib import Path

import pytest

from kafkacheck.runner import Run
from kafkacheck.storage import FORMAT, HistoryFileError, load_history, save_history
from model import actions as a
from tests.unit.runs import finished_run

SETTINGS = {"acks": "0", "auto.offset.reset": "earliest"}


@pytest.fixture(scope="module")
def lossy_run() -> Run:
    # acks=0 and the leader of k0's partition crashes with the record still in flight.
    return finished_run(SETTINGS, [a.Send("p0", "k0"), a.Send("p0", "k3"), a.Crash("b1")])


@pytest.fixture(scope="module")
def clean_run() -> Run:
    return finished_run({"auto.offset.reset": "earliest"}, [a.Send("p0", "k0")])


def save(directory: Path, run: Run) -> Path:
    return save_history(directory, run.config, run.schedule, run.cluster.history,
                        run.verdict(), seed=42)


@pytest.fixture
def saved(tmp_path, lossy_run) -> Path:
    return save(tmp_path / "out", lossy_run)


@pytest.fixture
def saved_clean(tmp_path, clean_run) -> Path:
    return save(tmp_path / "clean", clean_run)


def test_round_trip(saved, lossy_run):
    loaded = load_history(saved)
    assert loaded.path == saved
    assert loaded.config == lossy_run.config
    assert loaded.schedule == lossy_run.schedule
    assert loaded.events == lossy_run.cluster.history
    assert loaded.seed == 42
    assert loaded.verdict == json.loads(json.dumps(lossy_run.verdict().to_json()))
    assert "lost-write" in loaded.verdict["anomalies"]


def test_saved_file_is_named_after_settings_and_anomaly(saved):
    assert saved.parent.name == "out"
    assert saved.name.startswith("acks-0_auto.offset.reset-earliest__lost-write__")
    assert saved.suffix == ".json"
    assert not list(saved.parent.glob("*.tmp"))


def test_saving_the_same_finding_twice_gives_the_same_file(tmp_path, saved, lossy_run):
    assert save(tmp_path / "out", lossy_run) == saved
    assert len(list(saved.parent.iterdir())) == 1


def test_clean_run_round_trip(saved_clean, clean_run):
    assert saved_clean.name.startswith("auto.offset.reset-earliest__clean__")
    loaded = load_history(saved_clean)
    assert loaded.events == clean_run.cluster.history
    assert loaded.schedule == clean_run.schedule
    assert loaded.verdict["valid"] is True


def document(saved: Path) -> dict:
    return json.loads(saved.read_text())


def write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def load_error(path) -> str:
    with pytest.raises(HistoryFileError) as info:
        load_history(path)
    return str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    assert load_error(path) == f"{path}: no such file"


def test_directory(tmp_path):
    assert "is a directory" in load_error(tmp_path)


def test_not_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "format": 1,\n  oops\n}\n')
    message = load_error(path)
    assert message.startswith(f"{path}: not JSON (line 3, column 3")


def test_not_text(tmp_path):
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00\x80")
    assert "not a text file" in load_error(path)


def test_top_level_not_an_object(tmp_path):
    assert "expected a JSON object at the top level" in load_error(
        write(tmp_path / "list.json", [1, 2]))


def test_missing_format(tmp_path, saved):
    doc = document(saved)
    del doc["format"]
    assert "missing field 'format'" in load_error(write(tmp_path / "f.json", doc))


@pytest.mark.parametrize("version", [FORMAT + 1, 0, "1"])
def test_wrong_format_version(tmp_path, saved, version):
    doc = document(saved)
    doc["format"] = version
    message = load_error(write(tmp_path / "f.json", doc))
    assert f"format {version!r} is not supported" in message


@pytest.mark.parametrize("field, value", [("config", []), ("schedule", {}), ("events", None)])
def test_required_parts_have_the_right_type(tmp_path, saved, field, value):
    doc = document(saved)
    doc[field] = value
    assert f"field '{field}' must be a JSON" in load_error(write(tmp_path / "f.json", doc))


def test_config_with_unknown_setting(tmp_path, saved):
    doc = document(saved)
    doc["config"]["acks.level"] = "1"
    message = load_error(write(tmp_path / "f.json", doc))
    assert "config: unknown setting 'acks.level'" in message


def test_config_with_bad_value(tmp_path, saved):
    doc = document(saved)
    doc["config"]["acks"] = "2"
    assert "config: acks: must be one of" in load_error(write(tmp_path / "f.json", doc))


def test_schedule_entry_with_unknown_kind(tmp_path, saved):
    doc = document(saved)
    doc["schedule"][1] = {"kind": "explode"}
    assert "schedule[1]: unknown kind 'explode'" in load_error(write(tmp_path / "f.json", doc))


def test_schedule_entry_with_bad_field(tmp_path, saved):
    doc = document(saved)
    doc["schedule"][2] = {"kind": "tick", "ms": 0}
    assert "schedule[2].ms: must be positive" in load_error(write(tmp_path / "f.json", doc))


@pytest.mark.parametrize("field, value, expected", [
    ("time", "0", "events[5].time: expected int, got '0'"),
    ("step", None, "events[5].step: expected int, got None"),
    ("process", 3, "events[5].process: expected str, got 3"),
    ("index", True, "events[5].index: expected int, got True"),
    ("index", 6, "events[5].index: expected 5, got 6"),
    ("type", "done", "events[5].type: unknown type 'done'"),
])
def test_event_with_wrong_field(tmp_path, saved, field, value, expected):
    doc = document(saved)
    doc["events"][5][field] = value
    assert expected in load_error(write(tmp_path / "f.json", doc))


def test_event_not_an_object(tmp_path, saved):
    doc = document(saved)
    doc["events"][2] = "send"
    assert "events[2]: expected an object" in load_error(write(tmp_path / "f.json", doc))


def first_index(doc: dict, type_: str, f: str) -> int:
    return next(i for i, e in enumerate(doc["events"]) if e["type"] == type_ and e["f"] == f)


@pytest.mark.parametrize("value, problem", [
    ([], "send expects a list"),
    ([["send", "0", 1]], "bad send micro-op"),
    ([["put", 0, 1]], "bad send micro-op"),
    ([["send", 0, "x"]], "value must be an integer"),
    ([["send", 0, [1]]], "expected [offset, value]"),
    ([["send", 0, ["1", 2]]], "expected [offset, value]"),
])
def test_malformed_send_value(tmp_path, saved, value, problem):
    doc = document(saved)
    i = first_index(doc, "ok", "send")
    doc["events"][i]["value"] = value
    message = load_error(write(tmp_path / "f.json", doc))
    assert f"events[{i}].value: " in message and problem in message


@pytest.mark.parametrize("value, problem", [
    ("poll", "poll expects a list"),
    ([["read"]], "bad poll micro-op"),
    ([["poll", [0, 1]]], "expected a map of partitions"),
    ([["poll", {"x": [[0, 1]]}]], "malformed"),
    ([["poll", {"0": [[0]]}]], "expected {partition: [[offset, value]]}"),
    ([["poll", {"0": [["a", 1]]}]], "expected {partition: [[offset, value]]}"),
])
def test_malformed_poll_value(tmp_path, saved, value, problem):
    doc = document(saved)
    i = first_index(doc, "ok", "poll")
    doc["events"][i]["value"] = value
    message = load_error(write(tmp_path / "f.json", doc))
    assert f"events[{i}].value: " in message and problem in message


@pytest.mark.parametrize("type_, f, value, problem", [
    ("ok", "process", [1, 2], "process expects [partition, offset, value]"),
    ("invoke", "commit", {"0": "1"}, "commit expects {partition: offset}"),
    ("internal", "final-log", [1], "internal events carry an object"),
])
def test_malformed_other_values(tmp_path, saved_clean, type_, f, value, problem):
    doc = document(saved_clean)
    i = first_index(doc, type_, f)
    doc["events"][i]["value"] = value
    message = load_error(write(tmp_path / "f.json", doc))
    assert f"events[{i}].value: {problem}" in message


def test_unknown_operation(tmp_path, saved):
    doc = document(saved)
    doc["events"][4]["f"] = "transmogrify"
    doc["events"][4]["type"] = "invoke"
    assert "unknown operation f='transmogrify'" in load_error(write(tmp_path / "f.json", doc))


@pytest.mark.parametrize("field, value, problem", [
    ("seed", "42", "field 'seed' must be an integer or null"),
    ("seed", True, "field 'seed' must be an integer or null"),
    ("verdict", [], "field 'verdict' must be an object"),
])
def test_seed_and_verdict_types(tmp_path, saved, field, value, problem):
    doc = document(saved)
    doc[field] = value
    assert problem in load_error(write(tmp_path / "f.json", doc))


def test_error_messages_name_the_file(tmp_path, saved):
    doc = document(saved)
    doc["format"] = 99
    path = write(tmp_path / "named.json", doc)
    assert load_error(path).startswith(f"{path}: ")


# -- every field the checkers and replay read is validated first ---------------------------


def _internal(doc: dict, f: str) -> int:
    """The first internal ``f`` event (for final-log: one whose log is not empty)."""
    return next(i for i, e in enumerate(doc["events"]) if e["type"] == "internal"
                and e["f"] == f and (f != "final-log" or e["value"]["records"]))


@pytest.mark.parametrize("f, change, problem", [
    ("final-log", lambda v: v.pop("partition"), "missing 'partition'"),
    ("final-log", lambda v: v.update(partition="0"), "partition: unexpected '0'"),
    ("final-log", lambda v: v.update(records={}), "records: unexpected {}"),
    ("final-log", lambda v: v["records"].append(list(v["records"][-1])),
     "records[1]: expected [offset above 0, value, key, producer, epoch"),
    ("final-log", lambda v: v["records"][0].append("maybe"), "records[0]: expected"),
    ("final-log", lambda v: v.update(lso=-1), "lso: unexpected -1"),
    ("final-log", lambda v: v["records"][0].pop(), "records[0]: expected [offset above -1"),
    ("final-log", lambda v: v["records"][0].__setitem__(2, ["k0"]), "records[0]: expected"),
    ("position", lambda v: v.update(offset=-1), "offset: unexpected -1"),
    ("position", lambda v: v.update(offset="0"), "offset: unexpected '0'"),
    ("position", lambda v: v.pop("partition"), "missing 'partition'"),
    ("finish", lambda v: v.update(quiescent="yes"), "quiescent: unexpected 'yes'"),
])
def test_internal_events_the_checkers_read_are_validated(tmp_path, saved_clean, f, change,
                                                         problem):
    doc = document(saved_clean)
    i = _internal(doc, f)
    change(doc["events"][i]["value"])
    message = load_error(write(tmp_path / "f.json", doc))
    assert f"events[{i}].value: {problem}" in message


def _insert_internal(doc: dict, process: str, f: str, value: dict) -> int:
    """Insert an internal event before the last one, renumbering; returns its index."""
    i = len(doc["events"]) - 1
    doc["events"].insert(i, {"index": i, "step": 0, "time": 0, "process": process,
                             "type": "internal", "f": f, "value": value})
    for j, e in enumerate(doc["events"]):
        e["index"] = j
    return i


def test_invariant_events_name_a_model_state_invariant(tmp_path, saved_clean):
    doc = document(saved_clean)
    good = {"name": "committed-prefix-changed", "key": 0, "offset": 0, "expected": 1,
            "actual": 2}
    i = _insert_internal(doc, "monitor", "invariant", good)
    assert load_history(write(tmp_path / "ok.json", doc)).events[i].value == good
    doc["events"][i]["value"] = {**good, "name": "lost-write"}
    assert f"events[{i}].value: name: unexpected 'lost-write'" in load_error(
        write(tmp_path / "bad.json", doc))


def test_unknown_internal_events_are_accepted_if_their_value_is_an_object(tmp_path,
                                                                          saved_clean):
    # The model grows new internal kinds (register, metadata, ...) that no checker reads.
    doc = document(saved_clean)
    doc["events"][0]["f"] = "register"
    doc["events"][0]["value"] = {"anything": [1, {"goes": None}]}
    assert load_history(write(tmp_path / "ok.json", doc)).events[0].f == "register"
    doc["events"][0]["value"] = ["not", "an", "object"]
    assert "events[0].value: internal events carry an object" in load_error(
        write(tmp_path / "bad.json", doc))


@pytest.mark.parametrize("meta, problem", [
    ([], "expected an object"),
    ({"key": ["k0"]}, "key: expected a string or null"),
    ({"key": "k0", "error": 7}, "error: expected a string"),
    ({"rebalance-log": [{"keys": [[1]]}]}, "rebalance-log: expected"),
    ({"rebalance-log": {"keys": [1]}}, "rebalance-log: expected"),
])
def test_meta_is_validated(tmp_path, saved, meta, problem):
    doc = document(saved)
    i = first_index(doc, "ok", "send")
    doc["events"][i]["meta"] = meta
    assert f"events[{i}].meta: {problem}" in load_error(write(tmp_path / "f.json", doc))


@pytest.mark.parametrize("type_, f, value, problem", [
    ("ok", "poll", [["poll", {}, {}]], "bad poll micro-op"),
    ("ok", "poll", [["poll", {"0": [[-1, 1]]}]], "bad poll micro-op ['poll', {0: [[-1, 1]]}]"),
    ("info", "crash", {}, "crash carries no value"),
])
def test_more_client_shapes(tmp_path, saved, type_, f, value, problem):
    doc = document(saved)
    i = first_index(doc, "ok", "send" if f == "crash" else f)
    doc["events"][i].update(type=type_, f=f, value=value)
    assert f"events[{i}].value: {problem}" in load_error(write(tmp_path / "f.json", doc))


def test_unknown_event_fields_are_refused(tmp_path, saved):
    doc = document(saved)
    doc["events"][3]["extra"] = 1
    assert "events[3]: unknown field(s) ['extra']" in load_error(write(tmp_path / "f.json", doc))


@pytest.mark.parametrize("entry, problem", [
    ({"kind": ["send"]}, "schedule[1].kind: expected a string, got ['send']"),
    ({"kind": {"a": 1}}, "schedule[1].kind: expected a string"),
])
def test_schedule_kind_must_be_a_string(tmp_path, saved, entry, problem):
    doc = document(saved)
    doc["schedule"][1] = entry
    assert problem in load_error(write(tmp_path / "f.json", doc))


@pytest.mark.parametrize("field, value, problem", [
    ("anomalies", [], "verdict.anomalies: expected an object"),
    ("anomalies", {"lost-write": {}}, "verdict.anomalies.lost-write: expected a list"),
    ("valid", "no", "verdict.valid: expected a boolean"),
    ("stats", [], "verdict.stats: expected an object"),
])
def test_the_recorded_verdict_is_validated(tmp_path, saved, field, value, problem):
    doc = document(saved)
    doc["verdict"][field] = value
    assert problem in load_error(write(tmp_path / "f.json", doc))


@pytest.mark.parametrize("version", [1.0, True])
def test_format_must_be_the_integer_1(tmp_path, saved, version):
    doc = document(saved)
    doc["format"] = version
    assert "is not supported" in load_error(write(tmp_path / "f.json", doc))


def test_long_bad_values_are_shortened_to_one_short_line(tmp_path, saved):
    doc = document(saved)
    doc["events"][2]["time"] = ["x" * 50] * 100
    message = load_error(write(tmp_path / "f.json", doc))
    assert len(message) < len(str(tmp_path)) + 150 and "\n" not in message


@pytest.mark.parametrize("change, problem", [
    (lambda v: v.update(partition=0), "partition: unexpected 0"),
    (lambda v: v.update(reader="dirty"), "reader: unexpected 'dirty'"),
    (lambda v: v.pop("reader"), "missing 'reader'"),
    (lambda v: v["records"][0].append("maybe"), "records[0]: expected"),
])
def test_output_log_events_are_validated(tmp_path, saved_clean, change, problem):
    """A consume-transform-produce run's ``output-log`` (what invariants.pipeline reads)
    is checked field by field, like ``final-log``."""
    doc = document(saved_clean)
    good = {"partition": "output-0", "leader": "b0", "hw": 2, "lso": 2,
            "reader": "read_committed",
            "records": [[0, 7, "k3", "c0.output", 0, "committed"],
                        [1, 8, "k3", "c0.output", 0, "aborted"]]}
    i = _insert_internal(doc, "b0", "output-log", good)
    assert load_history(write(tmp_path / "ok.json", doc)).events[i].value == good
    bad = json.loads(json.dumps(good))
    change(bad)
    doc["events"][i]["value"] = bad
    assert f"events[{i}].value: {problem}" in load_error(write(tmp_path / "bad.json", doc))


def test_a_long_configuration_still_gets_a_valid_distinct_file_name():
    """File systems refuse names over 255 bytes: a configuration with many settings keeps
    the start of its settings and a digest of all of them."""
    from kafkacheck.storage import MAX_SLUG, history_filename
    from model.config import Config

    base = {"kafkacheck.consumer.api": "subscribe", "kafkacheck.consumers": "2",
            "kafkacheck.processing": "transform", "enable.auto.commit": "false",
            "kafkacheck.commit.strategy": "transaction-group-id",
            "isolation.level": "read_committed", "min.insync.replicas": "2",
            "auto.offset.reset": "earliest", "max.poll.interval.ms": "60000",
            "kafkacheck.output.isolation.level": "read_uncommitted",
            "partition.assignment.strategy": "cooperative-sticky"}
    names = {history_filename(Config.from_settings({**base, "session.timeout.ms": timeout}),
                              {"anomalies": {"output-duplicated": []}}, [],
                              headline="output-duplicated")
             for timeout in ("30000", "40000")}
    assert len(names) == 2
    for name in names:
        assert len(name.encode()) + len(".tmp") <= 255
        slug = name.split("__")[0]
        assert len(slug) <= MAX_SLUG and slug.startswith("auto.offset.reset-earliest")
