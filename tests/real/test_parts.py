"""The real-cluster tool's parts that need no broker: the fault schedule, setting routing,
saved files, the command line, namespaces and the stale-resource sweep.

The namespace tests need root and iproute2, as ``kafkacheck real`` does; on a machine
without them they fail with the reason rather than skip, since CI machines have both.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from kafkacheck.cli import EXIT_USAGE, main
from kafkacheck.errors import UsageError
from kafkacheck.real import procs
from kafkacheck.real.environment import RealEnvironmentError, check_faults
from kafkacheck.real.faults import FAMILIES, FaultSpec, make_schedule
from kafkacheck.real.netns import Network, list_netns
from kafkacheck.real.run import sweep
from kafkacheck.real.settings import REAL_BASE, route
from kafkacheck.storage import load_history, save_history
from model.config import Config
from model.history import Event

NAMES = {
    "producer": ["acks", "enable.idempotence", "retries", "linger.ms", "request.timeout.ms",
                 "delivery.timeout.ms", "retry.backoff.ms", "metadata.max.age.ms",
                 "max.in.flight.requests.per.connection"],
    "consumer": ["auto.offset.reset", "enable.auto.commit", "isolation.level", "group.id",
                 "group.protocol", "session.timeout.ms", "heartbeat.interval.ms",
                 "max.poll.interval.ms", "partition.assignment.strategy",
                 "auto.commit.interval.ms",
                 "request.timeout.ms", "retry.backoff.ms", "metadata.max.age.ms",
                 "fetch.max.wait.ms", "default.api.timeout.ms"],
    "topic": ["min.insync.replicas", "unclean.leader.election.enable", "segment.bytes"],
    "admin": ["request.timeout.ms"],
}


# -- the fault schedule ----------------------------------------------------------------


def test_schedule_is_a_function_of_the_seed():
    args = (("crash", "partition"), 120.0, 2, ["p0", "c0"])
    assert make_schedule(7, *args) == make_schedule(7, *args)
    assert make_schedule(7, *args) != make_schedule(8, *args)


def test_schedule_draws_only_the_chosen_families_and_fills_the_duration():
    schedule = make_schedule(1, ("pause", "client-crash"), 90.0, 2, ["p0", "c0"])
    assert {s.kind for s in schedule} <= set(FAMILIES["pause"] + FAMILIES["client-crash"])
    assert sum(s.quiet_s + s.hold_s for s in schedule) >= 90.0
    for spec in schedule:
        assert FaultSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


# -- settings --------------------------------------------------------------------------


def test_model_settings_reach_kafka_under_their_own_names():
    real = route({"acks": "1", "min.insync.replicas": "2",
                  "kafkacheck.commit.strategy": "before-processing"}, NAMES)
    assert real.producer["acks"] == "1"
    assert real.producer["enable.idempotence"] == "false"   # acks=1 turns the default off
    assert real.topic == {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}
    assert real.broker["replica.lag.time.max.ms"] == REAL_BASE["replica.lag.time.max.ms"]
    assert real.consumer["auto.offset.reset"] == "earliest"
    assert real.consumer["request.timeout.ms"] == REAL_BASE["request.timeout.ms"]
    assert real.config.consumer.commit_strategy == "before-processing"
    assert real.model_can_run


def test_other_kafka_settings_pass_through_unchanged():
    real = route({"linger.ms": "20", "fetch.max.wait.ms": "50", "segment.bytes": "1048576"},
                 NAMES)
    assert real.producer["linger.ms"] == "20" and "linger.ms" not in real.consumer
    assert real.consumer["fetch.max.wait.ms"] == "50"
    assert real.topic["segment.bytes"] == "1048576"


def test_a_feature_the_model_lacks_still_goes_to_kafka(monkeypatch):
    """A setting the model refuses as not modelled is passed to Kafka alone (and the
    model cannot run the comparison).  No setting is refused so today, so the refusal
    is simulated."""
    from model.config import ConfigError
    original = Config.with_settings

    def refusing(self, settings):
        if settings.get("group.protocol") == "consumer":
            raise ConfigError("group.protocol: KIP-848 is not modelled yet")
        return original(self, settings)

    monkeypatch.setattr(Config, "with_settings", refusing)
    real = route({"group.protocol": "consumer"}, NAMES)
    assert real.consumer["group.protocol"] == "consumer"
    assert not real.model_can_run and "group.protocol" in real.not_modelled


def test_the_consumer_group_protocol_reaches_kafka_and_the_model():
    real = route({"group.protocol": "consumer"}, NAMES)
    assert real.consumer["group.protocol"] == "consumer" and real.model_can_run


def test_assignors_reach_the_java_client_by_class_name():
    real = route({}, NAMES)
    assert real.consumer["partition.assignment.strategy"] == (
        "org.apache.kafka.clients.consumer.RangeAssignor,"
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor")
    assert real.consumer["enable.auto.commit"] == "false"   # the hunts' base
    assert "group.remote.assignor" not in real.consumer      # null: not passed
    # GroupCoordinatorConfig takes the KIP-848 server assignors by class name too.
    assert real.broker["group.consumer.assignors"] == (
        "org.apache.kafka.coordinator.group.assignor.UniformAssignor,"
        "org.apache.kafka.coordinator.group.assignor.RangeAssignor")


def test_the_default_producer_is_kafkas_idempotent_one_on_both_sides():
    real = route({}, NAMES)
    assert real.producer["enable.idempotence"] == "true"
    assert real.config.producer.enable_idempotence


def test_a_real_run_is_not_transactional_yet():
    """The real workload's producer sends outside transactions: a transactional.id is
    refused in one line rather than handed to a producer that would never call
    initTransactions, and the model's unset transactional.id never reaches Kafka."""
    with pytest.raises(UsageError, match="does not drive transactions"):
        route({"transactional.id": "app"}, NAMES)
    assert "transactional.id" not in route({}, NAMES).producer


def test_the_model_release_is_not_a_real_run_setting():
    with pytest.raises(UsageError, match="--kafka-version"):
        route({"kafka.version": "3.0.0"}, NAMES)


@pytest.mark.parametrize("pair", [{"acks": "2"}, {"no.such.setting": "1"},
                                  {"kafkacheck.nope": "1"}])
def test_bad_settings_are_refused(pair):
    with pytest.raises(UsageError):
        route(pair, NAMES)


# -- saved files and the command line ----------------------------------------------------


def _real_file(tmp_path):
    events = [Event(0, 0, 0, "p0:0:0", "invoke", "send", [["send", 0, 1]], {"key": "k0"}),
              Event(1, 0, 5, "p0:0:0", "ok", "send", [["send", 0, [0, 1]]], {"key": "k0"}),
              Event(2, 1, 9, "net", "internal", "finish", {"quiescent": True}),
              Event(3, 1, 9, "b0", "internal", "final-log",
                    {"partition": 0, "leader": "b0", "hw": 1,
                     "records": [[0, 1, "k0", "p0", 0]]})]
    from invariants.verdict import judge
    verdict = judge(events).to_json()
    record = {"kafka-version": "4.4.0", "fault-log": [], "fault-schedule": []}
    return save_history(tmp_path, Config(), [], events, verdict, 0, real=record), verdict


def test_a_real_history_is_checked_like_any_other(tmp_path, capsys):
    path, verdict = _real_file(tmp_path)
    saved = load_history(path)
    assert saved.real["kafka-version"] == "4.4.0" and saved.schedule == []
    assert main(["check", str(path), "--json"]) == (0 if verdict["valid"] else 1)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(verdict))


def test_replay_refuses_a_real_history_in_one_line(tmp_path, capsys):
    path, _ = _real_file(tmp_path)
    assert main(["replay", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "real Kafka 4.4.0 cluster" in err and "check" in err


def test_real_refuses_unknown_faults_in_one_line(capsys):
    assert main(["real", "--faults", "meteor"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "meteor" in err


def test_unknown_fault_families_are_named():
    with pytest.raises(RealEnvironmentError, match="meteor"):
        check_faults(frozenset({"meteor", "crash"}), "kcreal-0-0000")


# -- namespaces and the sweep ------------------------------------------------------------


def _dead_pid() -> int:
    """A pid no process can have: one above the kernel's ``pid_max`` (a pid of an exited
    process may be reused before the sweep looks, on a busy machine with pids wrapping)."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_namespaces_partition_and_heal(tmp_path):
    run_id = procs.new_run_id()
    network = Network.create(run_id, ["b0", "b1"])
    try:
        b0, b1 = network.hosts["b0"], network.hosts["b1"]
        server = subprocess.Popen(["ip", "netns", "exec", b1.netns, "python3", "-c",
                                   "import socket\ns=socket.socket()\n"
                                   f"s.bind(('{b1.address}', 7000))\ns.listen()\n"
                                   "while True:\n c,_=s.accept(); c.sendall(b'x'); c.close()"])
        probe = ["ip", "netns", "exec", b0.netns, "python3", "-c",
                 f"import socket;socket.create_connection(('{b1.address}', 7000), timeout=1)"
                 ".recv(1)"]
        try:
            deadline = time.monotonic() + 10
            while subprocess.run(probe, capture_output=True).returncode != 0:
                assert time.monotonic() < deadline, "no route between two namespaces"
                time.sleep(0.2)
            assert network.cut("b0", "b1")
            assert subprocess.run(probe, capture_output=True).returncode != 0
            assert network.heal() == [("b0", "b1")]
            assert subprocess.run(probe, capture_output=True).returncode == 0
        finally:
            server.kill()
            server.wait()
    finally:
        network.destroy()
    assert not [ns for ns in list_netns() if ns.startswith(run_id)]


def test_the_sweep_removes_only_a_dead_runs_leftovers(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKACHECK_CACHE", str(tmp_path))
    dead = f"{procs.RUN_PREFIX}-{_dead_pid()}-beef"
    live = procs.new_run_id()          # this test process owns it: must survive
    run_dir = tmp_path / "runs" / dead
    (run_dir / "pids").mkdir(parents=True)
    orphan = subprocess.Popen(["python3", "-c", "import time; time.sleep(300)",
                               procs.MARKER + dead])
    stranger = subprocess.Popen(["python3", "-c", "import time; time.sleep(300)"])
    (run_dir / "pids" / "b0").write_text(str(orphan.pid))
    (run_dir / "pids" / "b1").write_text(str(stranger.pid))   # no marker: never killed
    subprocess.run(["ip", "netns", "add", f"{dead}-hub"], check=True)
    subprocess.run(["ip", "netns", "add", f"{live}-hub"], check=True)
    try:
        sweep()
        assert orphan.wait(timeout=10) == -9
        assert stranger.poll() is None
        assert not run_dir.exists()
        names = list_netns()
        assert f"{dead}-hub" not in names and f"{live}-hub" in names
    finally:
        stranger.kill()
        stranger.wait()
        orphan.kill()
        subprocess.run(["ip", "netns", "del", f"{live}-hub"], capture_output=True)
        subprocess.run(["ip", "netns", "del", f"{dead}-hub"], capture_output=True)
    assert os.path.exists("/proc/self")


# -- clear errors ------------------------------------------------------------------------


def test_missing_java_is_one_clear_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKACHECK_CACHE", str(tmp_path))
    real_which = __import__("shutil").which
    monkeypatch.setattr("shutil.which",
                        lambda name, *a, **k: None if name == "java" else real_which(name))
    assert main(["real", "--faults", "crash", "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("kafkacheck: error: `java` not found") and "Java 17" in err[-1]


def test_an_unresolvable_release_is_one_clear_line(capsys, monkeypatch, tmp_path):
    """Offline, so that Maven answers at once without asking Central for a release that
    does not exist."""
    monkeypatch.setenv("KAFKACHECK_CACHE", str(tmp_path))
    assert main(["real", "--kafka-version", "0.0.1", "--offline", "--faults", "crash",
                 "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("kafkacheck: error: the jars of Kafka 0.0.1 are not resolvable")
    assert not (tmp_path / "kafka-0.0.1" / "lib").exists()


def test_network_faults_without_namespaces_are_refused_with_the_alternative(capsys,
                                                                              tmp_path):
    assert main(["real", "--no-netns", "--faults", "crash,partition",
                 "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert "network faults need network namespaces" in err[-1] and "crash,pause" in err[-1]


def test_without_namespace_permission_only_process_faults_run(monkeypatch):
    import kafkacheck.real.environment as env

    monkeypatch.setattr(env, "netns_problem", lambda run_id: "network namespaces need root")
    with pytest.raises(RealEnvironmentError) as info:
        env.check_faults(frozenset({"crash", "partition"}), "kcreal-0-0000")
    message = str(info.value)
    assert "network faults (partition) are unavailable" in message
    assert "--faults crash" in message
    assert env.check_faults(frozenset({"crash", "pause"}), "kcreal-0-0000") is False


# -- compare's table -----------------------------------------------------------------------


def _row(model, real):
    from kafkacheck.real.compare import Row
    from kafkacheck.real.run import RealResult

    result = RealResult({"valid": not real, "anomalies": {n: [{}] for n in real}}, None,
                        "4.4.0", route({}, NAMES), [], [], True, 1.0, 1.0,
                        {"invoked": 1, "ok": 1, "info": 0, "fail": 0}, True)
    return Row({"acks": "1"}, None if model is None else frozenset(model), 10, "",
               frozenset(real), result)


def test_agreement_names_each_sides_extra_anomalies():
    assert _row({"lost-write"}, {"lost-write"}).cells()[3] == "yes"
    cells = _row({"lost-write", "reorder"}, {"lost-write", "duplicate"}).cells()
    assert cells[3] == "no (model only: reorder; real only: duplicate)"
    assert _row(None, {"duplicate"}).cells()[1:4:2] == ["model cannot run", "n/a"]


def test_compare_rewrites_only_its_table(tmp_path):
    from kafkacheck.real.compare import BEGIN, END, markdown_table, write_doc

    doc = tmp_path / "real-kafka.md"
    doc.write_text(f"# Hand-written\n\nintro\n\n{BEGIN}\nold table\n{END}\n\nexplanations\n")
    table = markdown_table([_row({"lost-write"}, {"lost-write"})], command="kafkacheck compare",
                           examples=5, steps=10, duration_s=30)
    write_doc(doc, table)
    text = doc.read_text()
    assert "old table" not in text and "| acks=1 |" in text
    assert text.startswith("# Hand-written\n\nintro") and text.rstrip().endswith("explanations")


def test_cluster_ids_never_look_like_an_option():
    from kafkacheck.real.cluster import cluster_id

    ids = [cluster_id(f"kcreal-{i}-0000") for i in range(3000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
