"""The command line: exit codes, one-line errors, and the shape of what it prints."""

import json

import pytest

from kafkacheck.cli import EXIT_DIVERGED, EXIT_FOUND, EXIT_OK, EXIT_USAGE, main
from kafkacheck.runner import Run
from kafkacheck.storage import load_history, save_history
from model import actions as a
from model.config import Config, setting_names

SUBCOMMANDS = ["hunt", "replay", "check", "export", "guarantees", "settings", "real", "compare"]


def saved_run(directory, settings: dict, actions: list):
    run = Run(Config.from_settings(settings))
    for action in actions:
        assert action in run.cluster.enabled_actions()
        run.apply(action)
    run.finish()
    return save_history(directory, run.config, run.schedule, run.cluster.history,
                        run.verdict(), seed=0)


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    directory = tmp_path_factory.mktemp("histories")
    clean = saved_run(directory, {"auto.offset.reset": "earliest"}, [a.Send("p0", "k0")])
    lossy = saved_run(directory, {"acks": "0", "auto.offset.reset": "earliest"},
                      [a.Send("p0", "k0"), a.Crash("b1")])
    doc = json.loads(lossy.read_text())
    i = max(i for i, e in enumerate(doc["events"]) if e["f"] == "poll" and e["type"] == "ok")
    doc["events"][i]["time"] += 1
    tampered = directory / "tampered.json"
    tampered.write_text(json.dumps(doc))
    return {"clean": clean, "lossy": lossy, "tampered": tampered,
            "tampered_step": doc["events"][i]["step"], "tampered_index": i}


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and err.startswith("kafkacheck: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


# -- help and settings ---------------------------------------------------------------------


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: kafkacheck {command}")


def test_top_level_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in out


def test_settings_lists_every_setting(capsys):
    code, out, err = run_cli(capsys, "settings")
    assert code == EXIT_OK and err == ""
    listed = {line.split()[0] for line in out.splitlines() if line and not line[0].isspace()}
    assert listed == set(setting_names())
    assert "default all" in out and "default 30000" in out and "default false" in out


# -- bad settings --------------------------------------------------------------------------


@pytest.mark.parametrize("assignment, fragments", [
    ("acks=2", ("acks: must be one of 0, 1, all", "'2'")),
    ("nosuch=1", ("unknown setting 'nosuch'", "min.insync.replicas")),
    ("acks", ("expected NAME=VALUE",)),
    ("kafka.version=3.0", ("kafka.version: must be one of", "3.0.0")),
    ("kafkacheck.replication.factor=5", ("exceeds kafkacheck.brokers=3",)),
])
def test_hunt_with_a_bad_setting_exits_2(capsys, tmp_path, assignment, fragments):
    code, out, err = run_cli(capsys, "hunt", "--set", assignment, "--examples", 1,
                             "--out", tmp_path)
    assert code == EXIT_USAGE
    assert out == ""
    assert_one_line_error(err, *fragments)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, fragment", [
    ("lost-writes", "unknown anomaly 'lost-writes'"),
    ("G1b", "unknown anomaly 'G1b'"),
    ("int-send-skip", "'int-send-skip' is informational"),
])
def test_hunt_refuses_a_target_no_hunt_can_stop_for(capsys, tmp_path, name, fragment):
    from invariants.registry import target_names

    code, out, err = run_cli(capsys, "hunt", "--target", "lost-write", "--target", name,
                             "--examples", 1, "--out", tmp_path)
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, "--target: ", fragment, "known anomalies: ",
                          ", ".join(target_names()))
    assert "G1a" in err and "processed-zero-times" in err and "unseen" in err
    assert not list(tmp_path.iterdir())


# -- replay --------------------------------------------------------------------------------


def test_replay_missing_file(capsys, tmp_path):
    path = tmp_path / "missing.json"
    code, out, err = run_cli(capsys, "replay", path)
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, str(path), "no such file")


def test_replay_not_json(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{\"format\": 1,\n nope")
    code, out, err = run_cli(capsys, "replay", path)
    assert code == EXIT_USAGE
    assert_one_line_error(err, str(path), "not JSON (line 2, column 2")


def test_replay_wrong_format_version(capsys, tmp_path, histories):
    doc = json.loads(histories["clean"].read_text())
    doc["format"] = 2
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(doc))
    code, out, err = run_cli(capsys, "replay", path)
    assert code == EXIT_USAGE
    assert_one_line_error(err, "format 2 is not supported")


def test_replay_clean_history(capsys, histories):
    code, out, err = run_cli(capsys, "replay", histories["clean"])
    assert code == EXIT_OK
    assert "valid: no anomalies" in out


def test_replay_history_with_anomalies(capsys, histories):
    code, out, err = run_cli(capsys, "replay", histories["lossy"])
    assert code == EXIT_FOUND
    assert out.startswith("lost-write (")
    assert "guarantee: at-most-once" in out


def test_replay_json(capsys, histories):
    code, out, err = run_cli(capsys, "replay", "--json", histories["lossy"])
    assert code == EXIT_FOUND
    verdict = json.loads(out)
    assert verdict["valid"] is False and list(verdict["anomalies"]) == ["lost-write", "unseen"]


def test_replay_tampered_history(capsys, histories):
    code, out, err = run_cli(capsys, "replay", histories["tampered"])
    assert code == EXIT_DIVERGED
    step, index = histories["tampered_step"], histories["tampered_index"]
    assert out.startswith(f"diverged: step {step}: event {index} differs")


# -- check and export ----------------------------------------------------------------------


def test_check_json_of_a_kafkacheck_history(capsys, histories):
    code, out, err = run_cli(capsys, "check", "--json", histories["clean"])
    assert code == EXIT_OK
    verdict = json.loads(out)
    assert set(verdict) == {"valid", "guarantee", "anomalies", "stats"}
    assert verdict["valid"] is True and verdict["anomalies"] == {}


def test_check_invalid_history_exits_1(capsys, histories):
    code, out, err = run_cli(capsys, "check", "--json", histories["lossy"])
    assert code == EXIT_FOUND
    verdict = json.loads(out)
    assert verdict["valid"] is False
    assert "lost-write" in verdict["anomalies"]
    code, out, err = run_cli(capsys, "check", histories["lossy"])
    assert code == EXIT_FOUND and "lost-write (" in out


def test_check_does_not_rerun_so_a_tampered_file_still_checks(capsys, histories):
    code, out, err = run_cli(capsys, "check", histories["tampered"])
    assert code == EXIT_FOUND


def test_check_missing_file_exits_2(capsys, tmp_path):
    code, out, err = run_cli(capsys, "check", tmp_path / "none.json")
    assert code == EXIT_USAGE
    assert_one_line_error(err, "no such file")


def test_export_jepsen_to_stdout(capsys, histories):
    code, out, err = run_cli(capsys, "export", "--format", "jepsen", histories["lossy"])
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines and all(line.startswith("{") and line.endswith("}") for line in lines)
    assert any(":f :send" in line for line in lines)
    assert not any(":internal" in line for line in lines)


def test_export_to_file_then_check_as_jepsen(capsys, tmp_path, histories):
    edn = tmp_path / "history.edn"
    code, out, err = run_cli(capsys, "export", histories["clean"], "-o", edn)
    assert code == EXIT_OK and out == ""
    lines = edn.read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines)
    code, out, err = run_cli(capsys, "check", "--json", edn)
    verdict = json.loads(out)
    assert set(verdict) == {"valid", "anomalies", "stats"}
    assert code == (EXIT_OK if verdict["valid"] else EXIT_FOUND)


def test_export_creates_missing_parent_folders(capsys, tmp_path, histories):
    # Like `hunt --out` and `guarantees --doc`: the folder is made, not refused.
    edn = tmp_path / "new" / "deeper" / "history.edn"
    code, out, err = run_cli(capsys, "export", histories["lossy"], "-o", edn)
    assert code == EXIT_OK and out == "" and err == ""
    assert edn.read_text().startswith("{:index 0, ")
    assert [p.name for p in edn.parent.iterdir()] == ["history.edn"]
    plain = tmp_path / "plain"
    plain.write_text("")
    assert edn.stat().st_mode == plain.stat().st_mode  # not the temporary file's 0600


def test_export_onto_a_directory_exits_2_and_writes_nothing(capsys, tmp_path, histories):
    before = sorted(tmp_path.iterdir())
    code, out, err = run_cli(capsys, "export", histories["lossy"], "-o", tmp_path)
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, str(tmp_path), "is a directory")
    assert sorted(tmp_path.iterdir()) == before


def test_export_below_a_file_exits_2(capsys, tmp_path, histories):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    code, out, err = run_cli(capsys, "export", histories["lossy"], "-o", blocker / "x.edn")
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, str(blocker), "not a directory")
    assert blocker.read_text() == "keep me"


def test_export_never_overwrites_its_input(capsys, tmp_path, histories):
    copy = tmp_path / "copy.json"
    copy.write_text(histories["lossy"].read_text())
    code, out, err = run_cli(capsys, "export", copy, "-o", copy)
    assert code == EXIT_USAGE
    assert_one_line_error(err, "would overwrite the history being exported")
    assert copy.read_text() == histories["lossy"].read_text()


def test_an_export_that_fails_midway_leaves_the_old_file_and_no_temporary(
        capsys, tmp_path, histories, monkeypatch):
    import errno

    from kafkacheck import checking

    def disk_fills_up(events, out):
        out.write("{:index 0, :time 0, :type :invoke")
        out.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checking, "write_jepsen", disk_fills_up)
    target = tmp_path / "out.edn"
    target.write_text("previous export\n")
    code, out, err = run_cli(capsys, "export", histories["lossy"], "-o", target)
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, str(target), "No space left on device")
    assert target.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.edn"]
    # Folders made for the export are removed again.
    code, out, err = run_cli(capsys, "export", histories["lossy"], "-o",
                             tmp_path / "a" / "b" / "out.edn")
    assert code == EXIT_USAGE
    assert [p.name for p in tmp_path.iterdir()] == ["out.edn"]


# -- Jepsen input --------------------------------------------------------------------------


@pytest.fixture
def jepsen_files(tmp_path, histories, capsys):
    edn = tmp_path / "history.edn"
    assert main(["export", str(histories["lossy"]), "-o", str(edn)]) == EXIT_OK
    jsonl = tmp_path / "history.jsonl"
    jsonl.write_text("".join(
        json.dumps({"index": i, "time": 0, "type": t, "process": 0, "f": "poll",
                    "value": [["poll"]] if t == "invoke" else [["poll", {}]]}) + "\n"
        for i, t in enumerate(["invoke", "ok"])))
    one_line = tmp_path / "one.jsonl"
    one_line.write_text(jsonl.read_text().splitlines()[0] + "\n")
    capsys.readouterr()
    return {"edn": edn, "jsonl": jsonl, "one-line": one_line}


@pytest.mark.parametrize("fmt", ["jepsen", "auto"])
def test_check_of_an_empty_jepsen_file_is_unusable_input(capsys, tmp_path, fmt):
    empty = tmp_path / "empty.edn"
    empty.write_text("")
    code, out, err = run_cli(capsys, "check", "--format", fmt, empty)
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, str(empty), "empty file")


def test_an_edn_syntax_error_names_the_file(capsys, tmp_path, jepsen_files):
    broken = tmp_path / "broken.edn"
    first = jepsen_files["edn"].read_text().splitlines()[0]
    broken.write_text(first + "\n{:index 1, :value [1 2}\n")
    code, out, err = run_cli(capsys, "check", broken)
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, f"{broken}: line 2: expected ']'")


@pytest.mark.parametrize("kind", ["edn", "jsonl", "one-line"])
@pytest.mark.parametrize("command", ["replay", "export"])
def test_replay_or_export_of_a_jepsen_file_points_to_check(capsys, jepsen_files, kind,
                                                           command):
    path = jepsen_files[kind]
    code, out, err = run_cli(capsys, command, path)
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, str(path), "is a Jepsen history",
                          f"kafkacheck check {path}")
    assert "not JSON" not in err


def test_check_as_kafkacheck_of_a_jepsen_file_points_to_the_format(capsys, jepsen_files):
    path = jepsen_files["edn"]
    code, out, err = run_cli(capsys, "check", "--format", "kafkacheck", path)
    assert code == EXIT_USAGE
    assert_one_line_error(err, str(path), "is a Jepsen history", "--format jepsen")


# -- hunt ----------------------------------------------------------------------------------


def test_hunt_acks_0_finds_a_lost_write(capsys, tmp_path):
    code, out, err = run_cli(capsys, "hunt", "--set", "acks=0", "--examples", 30,
                             "--steps", 30, "--out", tmp_path, "--target", "lost-write")
    assert code == EXIT_FOUND
    saved = list(tmp_path.iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("acks-0_")
    assert "lost-write" in saved[0].name
    assert out.splitlines() == ["found: lost-write", f"saved: {saved[0]}"]
    assert "lost-write" in load_history(saved[0]).verdict["anomalies"]
    # The saved counterexample reproduces when replayed.
    code, out, err = run_cli(capsys, "replay", saved[0])
    assert code == EXIT_FOUND and "lost-write" in out


def test_hunt_refuses_an_unknown_fault_family(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["hunt", "--faults", "network-partition,disk", "--out", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert ("unknown fault family disk; known: broker-crash, client-crash, client-pause, "
            "late-request, network-partition") in err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_a_hunt_limited_to_fault_families_never_draws_the_others():
    """--faults network-partition: a run's drawn families are cut to the allowed ones, so
    the crash rule is never enabled."""
    from kafkacheck.machine import machine_for
    from model.config import Config
    machine = machine_for(Config(), faults=frozenset({"network-partition"}))()
    machine.choose_faults({"broker-crash", "client-crash", "network-partition"})
    assert machine.faults == frozenset({"network-partition"})
    assert not machine._has("crash") and not machine._has("client-crash")
    assert machine._has("partition")


def test_guarantees_refuses_a_checkpoints_folder_it_cannot_create(tmp_path, capsys) -> None:
    """A bad --checkpoints is a one-line usage error before any hunting, not a
    traceback after the first configuration."""
    from kafkacheck.cli import EXIT_USAGE, main
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["guarantees", "--checkpoints", str(blocker / "x"),
                 "--doc", str(tmp_path / "g.md"), "--out", str(tmp_path / "h")])
    assert code == EXIT_USAGE
    assert "--checkpoints" in capsys.readouterr().err
