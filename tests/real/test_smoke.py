"""Smoke test of ``kafkacheck real`` (in the default suite): a real three-node KRaft
cluster, writes and reads, a kill -9 of a partition leader, recovery, and the history
judged by the same checkers as the model's.

It asserts what must hold whatever the cluster did, never a verdict: the history is
well formed, the saved file is judged exactly as the run judged it, every acknowledged
write is either in the final log or reported lost, and nothing is left running.  The first
run on a machine resolves the broker's jars with Maven (about half a minute); a machine
without Java, Maven or namespace permission fails here with the reason.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from kafkacheck.checking import check_file
from kafkacheck.real import procs
from kafkacheck.real.faults import FaultSpec
from kafkacheck.real.netns import list_netns
from kafkacheck.real.run import RealOptions, run_real
from kafkacheck.storage import load_history
from model.clients.partitioner import partition_for_key

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    hot = partition_for_key("k0", 2)       # every default key hashes to this partition
    schedule = [FaultSpec("kill", "leader", hot, 0, quiet_s=4.0, hold_s=8.0)]
    started = time.monotonic()
    result = run_real(RealOptions(settings={"acks": "all", "min.insync.replicas": "2"},
                                  duration_s=18, rate=30, faults=("crash",),
                                  schedule=schedule, out_dir=out), progress=print)
    return result, time.monotonic() - started, hot


def test_the_cluster_took_writes_and_the_consumer_read_them(smoke):
    result, seconds, _ = smoke
    print(f"smoke run took {seconds:.0f}s")
    events = load_history(result.path).events
    assert result.sends["ok"] > 100
    polled = [v for e in events if e.f == "poll" and e.type == "ok"
              for _, p in e.value[0][1].items() for v in p]
    assert len(polled) > 100
    processed = [e for e in events if e.f == "process"]
    assert processed and any(e.f == "commit" and e.type == "ok" for e in events)


def test_the_leader_was_killed_and_restarted(smoke):
    result, _, hot = smoke
    events = load_history(result.path).events
    crashes = [e for e in events if e.type == "internal" and e.f == "crash"]
    restarts = [e for e in events if e.type == "internal" and e.f == "restart"]
    # "leader of partition 1", with "(unknown: picked a node)" if the Admin client could
    # not say which node led it at that moment (then a node was killed all the same).
    assert len(crashes) == 1
    assert crashes[0].value["target"].startswith(f"leader of partition {hot}")
    assert [e.process for e in restarts] == [crashes[0].process]
    assert [entry["action"] for entry in result.fault_log] == ["kill", "restart"]


def test_recovery_ended_quiescent_with_a_final_log_per_partition(smoke):
    result, _, _ = smoke
    events = load_history(result.path).events
    finish = [e for e in events if e.f == "finish"]
    finals = {e.value["partition"]: e.value for e in events if e.f == "final-log"}
    assert result.quiescent and [e.value["quiescent"] for e in finish] == [True]
    assert sorted(finals) == [0, 1]
    for log in finals.values():
        assert [r[0] for r in log["records"]] == list(range(log["hw"]))
        assert all(r[3] == "p0" for r in log["records"])     # the producer header


def test_every_acknowledged_write_is_stored_or_reported_lost(smoke):
    result, _, _ = smoke
    events = load_history(result.path).events
    stored = {r[1] for e in events if e.f == "final-log" for r in e.value["records"]}
    acked = {e.value[0][2][1] for e in events if e.f == "send" and e.type == "ok"}
    lost = {d["value"] for d in result.verdict["anomalies"].get("lost-write", [])}
    assert acked - stored == lost - stored
    assert acked <= stored | lost


def test_the_saved_history_is_judged_as_the_run_judged_it(smoke):
    result, _, _ = smoke
    again = check_file(Path(result.path))
    assert json.loads(json.dumps(again)) == json.loads(json.dumps(result.verdict))
    assert load_history(result.path).real["kafka-version"] == result.version


def test_nothing_is_left_behind(smoke):
    result, _, _ = smoke
    run_id = json.loads(Path(result.path).read_text())["real"]["run-id"]
    assert not [ns for ns in list_netns() if ns.startswith(run_id)]
    assert not (procs.cache_root() / "runs" / run_id).exists()
    found = subprocess.run(["pgrep", "-f", procs.MARKER + run_id], capture_output=True)
    assert found.stdout.strip() == b""


def test_a_second_run_needs_no_maven(smoke, monkeypatch):
    """The jars are cached per release: preparing again never calls Maven (so an offline
    second run works), even with Maven gone from PATH."""
    from kafkacheck.real.build import prepare

    result, _, _ = smoke
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("shutil.which",
                        lambda name, *a, **k: "/usr/bin/java" if name == "java" else None)
    artifacts = prepare(result.version, offline=True)
    assert artifacts.version == result.version and artifacts.lib.is_dir()
