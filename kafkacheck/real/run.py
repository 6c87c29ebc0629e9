"""One real run, from the stale-resource sweep to the verdict.

1. Sweep what crashed earlier runs left (namespaces, processes, run directories).
2. Resolve the release's jars (Maven, cached) and compile the Java driver.
3. Create the namespaces, format and start three KRaft nodes, create the topic with the
   run's ``min.insync.replicas`` and ``unclean.leader.election.enable``.
4. Run producers and the consumer application while the nemesis applies the seeded fault
   schedule.
5. Recovery, like the model's settle phase: repair the last fault, heal, restart every
   node and client, wait until every partition has a leader and a full ISR, resolve every
   send, let the consumer drain and commit.
6. Read every partition from the beginning with a fresh consumer (``final-log`` events)
   and record ``finish`` with ``quiescent``; then stop and remove everything.
7. Judge the history with :func:`invariants.verdict.judge`, the same checkers
   ``hunt`` and ``check`` use, and save it.

Every resource is released in ``finally`` blocks; ``Ctrl-C`` ends up there too, and a
``kill -9`` of kafkacheck is covered by ``PR_SET_PDEATHSIG`` and the next run's sweep.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import attrs

from invariants.verdict import judge
from kafkacheck.real import procs
from kafkacheck.real.build import Artifacts, prepare
from kafkacheck.real.cluster import Cluster, Node
from kafkacheck.real.driver import DriverDied, DriverTimeout, JavaClient
from kafkacheck.real.errors import RealRunError
from kafkacheck.real.environment import NETWORK_FAULTS, RealEnvironmentError, check_faults
from kafkacheck.real.faults import FaultActions, FaultSpec, Nemesis, make_schedule
from kafkacheck.real.netns import CLIENTS, Network, NetnsError, remove_netns, stale_namespaces
from kafkacheck.real.recorder import Recorder
from kafkacheck.real.settings import TOPIC, RealSettings, route
from kafkacheck.real.workload import ConsumerApp, ProducerClient, producer_loop
from kafkacheck.storage import save_history
from model.clients.partitioner import partition_for_key, spread_keys

Progress = Callable[[str], None]


@attrs.frozen
class RealOptions:
    settings: dict[str, str] = attrs.field(factory=dict)
    kafka_version: str | None = None
    seed: int = 0
    duration_s: float = 60.0
    rate: float = 50.0
    faults: tuple[str, ...] = ("crash", "pause", "partition", "client-crash")
    schedule: list[FaultSpec] | None = None     # explicit faults instead of a drawn schedule
    out_dir: Path | None = Path("histories/real")
    offline: bool = False
    keep: bool = False
    process_ms: float = 2.0
    hold_s: tuple[float, float] = (5.0, 12.0)
    quiet_s: tuple[float, float] = (2.0, 6.0)
    netns: bool | None = None       # None: namespaces when permitted; False: loopback


@attrs.frozen
class RealResult:
    verdict: dict[str, Any]
    path: Path | None
    version: str
    settings: RealSettings
    schedule: list[FaultSpec]
    fault_log: list[dict[str, Any]]
    quiescent: bool
    seconds: float
    workload_seconds: float
    sends: dict[str, int]
    netns: bool

    @property
    def found(self) -> bool:
        return not self.verdict["valid"]


def sweep(progress: Progress | None = None) -> list[str]:
    """Remove what crashed runs left: their processes, namespaces and run directories."""
    removed = []
    for run_dir in procs.stale_runs():
        killed = procs.sweep_processes(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"{run_dir.name} ({len(killed)} processes)")
    for netns in stale_namespaces():
        remove_netns(netns)
        removed.append(netns)
    if removed and progress:
        progress(f"swept stale resources of crashed runs: {', '.join(removed)}")
    return removed


def config_names(artifacts: Artifacts) -> dict[str, list[str]]:
    """Kafka's producer, consumer, admin and topic config names for this release."""
    cache = artifacts.driver / "config-names.json"
    if cache.exists():
        return json.loads(cache.read_text())
    result = subprocess.run(["java", "-cp", artifacts.classpath(), "kafkacheck.real.Driver",
                             "config-names"], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RealEnvironmentError(f"the Java driver failed to start: {result.stderr[-300:]}")
    cache.write_text(result.stdout)
    return json.loads(result.stdout)


class Session:
    """Everything one run owns, so that ``close`` can release all of it."""

    def __init__(self, artifacts: Artifacts, real: RealSettings, use_netns: bool,
                 options: RealOptions, progress: Progress) -> None:
        self.artifacts = artifacts
        self.real = real
        self.options = options
        self.progress = progress
        self.run_id = procs.new_run_id()
        self.registry = procs.RunRegistry(self.run_id)
        self.network: Network | None = None
        self.cluster: Cluster | None = None
        self.admin: JavaClient | None = None
        self.recorder = Recorder()
        self.producers: list[ProducerClient] = []
        self.consumer: ConsumerApp | None = None
        self.fault_log: list[dict[str, Any]] = []
        self.use_netns = use_netns
        self.partitions = real.config.topic.partitions

    # -- set-up -------------------------------------------------------------------------

    def bring_up(self) -> None:
        config = self.real.config
        nodes = [f"b{i}" for i in range(config.broker.brokers)]
        if self.use_netns:
            self.network = Network.create(self.run_id, nodes)
        self.cluster = Cluster(self.artifacts, self.registry, self.network, self.real.broker,
                               nodes=config.broker.brokers)
        self.progress(f"formatting and starting {len(nodes)} KRaft nodes of Kafka "
                      f"{self.artifacts.version}"
                      + (" in network namespaces" if self.network else " on loopback"))
        self.cluster.format()
        self.cluster.start_all()
        self.admin = self.client("admin", "admin", {"timeout_ms": 5000,
                                                    "props": self.real.admin})
        self.admin.wait_ready(60)
        self.wait(lambda: self._registered() == len(nodes), 150, "the brokers to register")
        topic = config.topic
        configs = {**self.real.topic}
        reply = self.admin_call({"op": "create-topic", "topic": TOPIC,
                                 "partitions": topic.partitions,
                                 "replication_factor": topic.replication_factor,
                                 "configs": configs, "ms": 30000}, 40)
        if not reply.get("ok"):
            raise RealRunError(f"creating the topic failed: {reply.get('error')}: "
                               f"{reply.get('message')}")
        self.wait(self.healthy, 60, "every partition to have a leader and a full ISR")
        self.progress(f"topic {TOPIC}: {topic.partitions} partitions, replication factor "
                      f"{topic.replication_factor}, {configs}")

    def client(self, name: str, mode: str, config: dict[str, Any],
               on_exit: Callable[[JavaClient], None] | None = None) -> JavaClient:
        assert self.cluster is not None
        full = {"bootstrap": self.cluster.bootstrap, "topic": TOPIC, **config}
        netns = self.network.netns_of(CLIENTS) if self.network else None
        return JavaClient(name, mode, full, self.artifacts, self.registry, netns,
                          self.registry.dir / "clients", on_exit)

    def client_factory(self, props: dict[str, str]) -> Callable[..., JavaClient]:
        def make(name: str, mode: str, config: dict[str, Any],
                 on_exit: Callable[[JavaClient], None] | None) -> JavaClient:
            return self.client(name, mode, {**config, "props": props}, on_exit)
        return make

    # -- admin queries ------------------------------------------------------------------

    def admin_call(self, op: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        assert self.admin is not None
        if self.admin.dead:
            self.admin = self.client("admin", "admin", {"timeout_ms": 5000,
                                                        "props": self.real.admin})
            self.admin.wait_ready(60)
        try:
            return self.admin.request(op, timeout)
        except (DriverDied, DriverTimeout) as error:
            return {"ok": False, "error": type(error).__name__, "message": str(error)}

    def _registered(self) -> int:
        reply = self.admin_call({"op": "nodes"})
        return len(reply.get("nodes", [])) if reply.get("ok") else 0

    def describe(self) -> list[dict[str, Any]] | None:
        reply = self.admin_call({"op": "describe", "topic": TOPIC})
        return reply["partitions"] if reply.get("ok") else None

    def healthy(self) -> bool:
        parts = self.describe()
        return bool(parts) and all(p["leader"] is not None and
                                   sorted(p["isr"]) == sorted(p["replicas"]) for p in parts)

    def leader_of(self, partition: int) -> int | None:
        for p in self.describe() or []:
            if p["partition"] == partition:
                return p["leader"]
        return None

    def controller(self) -> int | None:
        reply = self.admin_call({"op": "quorum"})
        return reply.get("leader") if reply.get("ok") and reply.get("leader", -1) >= 0 else None

    def high_watermarks(self) -> dict[int, int] | None:
        reply = self.admin_call({"op": "offsets", "topic": TOPIC,
                                 "partitions": list(range(self.partitions))})
        if not reply.get("ok"):
            return None
        return {int(p): o for p, o in reply["latest"].items()}

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        if not self.wait_for(condition, timeout):
            raise RealRunError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + self._node_hint())

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.5)
        return False

    def _node_hint(self) -> str:
        assert self.cluster is not None
        dead = [n.name for n in self.cluster.nodes if not n.alive]
        if not dead:
            return ""
        node = self.cluster.node(dead[0])
        return f" ({', '.join(dead)} exited; last log line: " \
               f"{self.cluster.log_tail(node, 1).strip()[:200]})"

    # -- faults -------------------------------------------------------------------------

    def log_fault(self, action: str, **details: Any) -> None:
        entry = {"t_ms": self.recorder.now_ms(), "step": self.recorder.step, "action": action,
                 **details}
        self.fault_log.append(entry)
        self.progress(f"  [{entry['t_ms'] / 1000:7.1f}s] {action} "
                      + " ".join(f"{k}={v}" for k, v in details.items()))

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        for producer in self.producers:
            try:
                producer.close()
            except Exception:
                pass
        if self.consumer is not None:
            try:
                self.consumer.stop()
            except Exception:
                pass
        if self.admin is not None:
            self.admin.kill()
        if self.cluster is not None:
            self.cluster.stop_all()
        self.registry.kill_all()
        if self.network is not None:
            self.network.destroy()
        self.registry.close(keep_dir=self.options.keep)


class ClusterFaults(FaultActions):
    """Fault operations against a live session."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def _node(self, spec: FaultSpec) -> tuple[Node, str]:
        cluster = self.s.cluster
        assert cluster is not None
        nodes = cluster.nodes
        resolved: int | None = None
        how = spec.target
        if spec.target == "leader":
            resolved = self.s.leader_of(spec.partition)
            how = f"leader of partition {spec.partition}"
        elif spec.target == "controller":
            resolved = self.s.controller()
            how = "active controller"
        if resolved is None:
            if spec.target != "node":
                how += " (unknown: picked a node)"
            return nodes[spec.pick % len(nodes)], how
        return cluster.node(resolved), how

    def begin(self, spec: FaultSpec) -> Callable[[], None]:
        s, rec = self.s, self.s.recorder
        cluster = s.cluster
        assert cluster is not None
        if spec.kind == "client-crash":
            return self._client_crash(spec)
        node, how = self._node(spec)
        if spec.kind == "kill":
            cluster.kill(node)
            rec.internal(node.name, "crash", mode="process", fault=spec.kind, target=how)
            s.log_fault("kill", node=node.name, target=how)

            def restart() -> None:
                cluster.start(node)
                rec.internal(node.name, "restart")
                s.log_fault("restart", node=node.name)
            return restart
        if spec.kind == "pause":
            cluster.pause(node)
            rec.internal(node.name, "pause", target=how)
            s.log_fault("pause", node=node.name, target=how)

            def resume() -> None:
                cluster.resume(node)
                rec.internal(node.name, "resume")
                s.log_fault("resume", node=node.name)
            return resume
        network = s.network
        assert network is not None
        others = [n.name for n in cluster.nodes if n is not node]
        if spec.kind in ("isolate-leader", "isolate-controller"):
            pairs = [(node.name, other) for other in others]
        elif spec.kind == "split-quorum":
            pairs = [(node.name, others[spec.pick % len(others)])]
        elif spec.kind == "cut-clients":
            pairs = [(node.name, CLIENTS)]
        else:
            raise ValueError(f"unknown fault kind {spec.kind!r}")
        for a, b in pairs:
            network.cut(a, b)
        cut = [list(p) for p in pairs]
        rec.internal("net", "partition", fault=spec.kind, node=node.name, target=how, cut=cut)
        s.log_fault(spec.kind, node=node.name, target=how, cut=cut)

        def heal() -> None:
            healed = network.heal()
            rec.internal("net", "heal", healed=[list(p) for p in healed])
            s.log_fault("heal")
        return heal

    def _client_crash(self, spec: FaultSpec) -> Callable[[], None]:
        s, rec = self.s, self.s.recorder
        name = spec.target
        producer = next((p for p in s.producers if p.name == name), None)
        if producer is not None:
            producer.crash()
            rec.internal(name, "client-crash")
            s.log_fault("client-crash", client=name)

            def restart_producer() -> None:
                producer.start()
                rec.internal(name, "client-restart")
                s.log_fault("client-restart", client=name)
            return restart_producer
        consumer = s.consumer
        assert consumer is not None
        consumer.request_crash(spec.point or "after-poll")
        if not consumer.crash_done.wait(max(1.0, spec.hold_s - 1)):
            consumer.crash_at = None
            if consumer.client is not None:
                consumer.client.kill()      # the loop notices and records the crash
            consumer.crash_done.wait(30)
        rec.internal(name, "client-crash", point=spec.point)
        s.log_fault("client-crash", client=name, point=spec.point)

        def restart_consumer() -> None:
            ok = consumer.start_until(time.monotonic() + 60)
            rec.internal(name, "client-restart", ok=ok)
            s.log_fault("client-restart", client=name, ok=ok)
        return restart_consumer


def run_real(options: RealOptions, progress: Progress | None = None) -> RealResult:
    """One real run; raises RealEnvironmentError/RealRunError with a one-line reason."""
    say: Progress = progress or (lambda message: None)
    started = time.monotonic()
    sweep(say)
    families = frozenset(options.faults)
    if options.netns is False:
        if families & NETWORK_FAULTS:
            raise RealEnvironmentError("network faults need network namespaces; drop "
                                       "--no-netns or run with --faults crash,pause")
        use_netns = False
    else:
        use_netns = check_faults(families, procs.new_run_id())
    artifacts = prepare(options.kafka_version, offline=options.offline, progress=say)
    real = route(options.settings, config_names(artifacts))
    config = real.config
    if not real.model_can_run:
        say("note: the model cannot run this configuration: "
            + "; ".join(real.not_modelled.values()))
    producers_names = [f"p{i}" for i in range(config.workload.producers)]
    clients = producers_names + ["c0"]
    written = sorted({partition_for_key(k, config.topic.partitions)
                      for k in spread_keys(config.workload.keys, config.topic.partitions)})
    schedule = options.schedule if options.schedule is not None else make_schedule(
        options.seed, tuple(sorted(families)), options.duration_s, written, clients,
        hold=options.hold_s, quiet=options.quiet_s)
    session = Session(artifacts, real, use_netns, options, say)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    workload_seconds = 0.0
    try:
        session.bring_up()
        workload_seconds, quiescent = _workload(session, schedule, options, say)
        events = session.recorder.events
    finally:
        say("stopping the cluster and removing its namespaces")
        session.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    verdict = judge(events).to_json()
    sends = {"invoked": sum(1 for e in events if e.f == "send" and e.type == "invoke")}
    for outcome in ("ok", "fail", "info"):
        sends[outcome] = sum(1 for e in events if e.f == "send" and e.type == outcome)
    record = {
        "kafka-version": artifacts.version,
        "settings": real.settings,
        "producer": real.producer, "consumer": real.consumer, "topic": real.topic,
        "broker": {**session.cluster.settings} if session.cluster else real.broker,
        "not-modelled": real.not_modelled,
        "namespaces": use_netns,
        "faults": sorted(families),
        "fault-schedule": [f.to_json() for f in schedule],
        "fault-log": session.fault_log,
        "duration-s": options.duration_s,
        "rate": options.rate,
        "workload-seconds": round(workload_seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
        "run-id": session.run_id,
    }
    path = None
    if options.out_dir is not None:
        headline = min(verdict["anomalies"]) if verdict["anomalies"] else None
        path = save_history(Path(options.out_dir), config, [], events, verdict, options.seed,
                            headline=headline, real=record)
    return RealResult(verdict, path, artifacts.version, real, schedule, session.fault_log,
                      quiescent, time.monotonic() - started, workload_seconds, sends, use_netns)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _workload(session: Session, schedule: list[FaultSpec], options: RealOptions,
              say: Progress) -> tuple[float, bool]:
    """Steps 4-6: the faulted workload, recovery, the final read.  Returns the workload's
    length in seconds and whether the cluster ended quiescent."""
    config = session.real.config
    rec = session.recorder
    factory = session.client_factory(session.real.producer)
    for i in range(config.workload.producers):
        producer = ProducerClient(f"p{i}", rec, factory, {}, config.topic.partitions)
        producer.start()
        session.producers.append(producer)
    consumer = ConsumerApp("c0", rec, session.client_factory(session.real.consumer), {},
                           config.topic.partitions, config.consumer.commit_strategy,
                           process_ms=options.process_ms)
    session.consumer = consumer
    if not consumer.start_until(time.monotonic() + 60):
        raise RealRunError(f"the consumer could not start: {consumer.errors[-1:]}")
    consumer.run_loop()
    stop_sending = threading.Event()
    rng = random.Random(options.seed)
    keys = spread_keys(config.workload.keys, config.topic.partitions)
    sender = producer_loop(session.producers, keys, options.rate,
                           stop_sending, rng)
    nemesis = Nemesis(schedule, ClusterFaults(session), lambda step: setattr(rec, "step", step))
    workload_started = time.monotonic()
    say(f"workload: {len(session.producers)} producer(s) at {options.rate:g} sends/s each, "
        f"{len(schedule)} scheduled faults over about {options.duration_s:g}s")
    nemesis.start()
    deadline = workload_started + options.duration_s
    try:
        while time.monotonic() < deadline and nemesis.thread.is_alive():
            time.sleep(0.2)
        if not nemesis.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(max(0.0, min(5.0, deadline - time.monotonic())))
    finally:
        nemesis.finish()
    if nemesis.error is not None:
        raise RealRunError(f"applying a fault failed: {nemesis.error}")
    workload_seconds = time.monotonic() - workload_started
    say(f"recovery: {nemesis.applied} faults applied in {workload_seconds:.0f}s; healing, "
        f"restarting everything and draining")
    rec.step = len(schedule) + 1
    quiescent = _recover(session, stop_sending, sender)
    _final_read(session, quiescent)
    return workload_seconds, quiescent


def _recover(session: Session, stop_sending: threading.Event,
             sender: threading.Thread) -> bool:
    """Heal, restart, let every send resolve and the consumer drain (the settle phase)."""
    rec = session.recorder
    cluster = session.cluster
    assert cluster is not None and session.consumer is not None
    if session.network is not None and session.network.cuts:
        healed = session.network.heal()
        rec.internal("net", "heal", healed=[list(p) for p in healed])
        session.log_fault("heal", phase="recovery")
    for node in cluster.nodes:
        if node.paused:
            cluster.resume(node)
            rec.internal(node.name, "resume")
            session.log_fault("resume", node=node.name, phase="recovery")
        if not node.alive:
            cluster.start(node)
            rec.internal(node.name, "restart")
            session.log_fault("restart", node=node.name, phase="recovery")
    for producer in session.producers:
        if not producer.alive:
            producer.start()
            rec.internal(producer.name, "client-restart")
    consumer = session.consumer
    if consumer.down.is_set():
        consumer.start_until(time.monotonic() + 60)
        rec.internal(consumer.name, "client-restart")
    healthy = session.wait_for(session.healthy, 120)
    time.sleep(2)                       # let the last sends of a healthy cluster land
    stop_sending.set()
    sender.join(timeout=10)
    timeout = session.real.config.producer.delivery_timeout_ms / 1000 + 15
    resolved = all(p.flush(timeout) for p in session.producers)

    def drained() -> bool:
        hws = session.high_watermarks()
        return hws is not None and consumer.caught_up(hws)

    caught_up = session.wait_for(drained, 90)
    if not (healthy and resolved and caught_up):
        session.progress(f"recovery incomplete: healthy={healthy} sends-resolved={resolved} "
                         f"consumer-caught-up={caught_up}")
    consumer.stop()
    for producer in session.producers:
        producer.close()
    return healthy and resolved and caught_up


def _final_read(session: Session, quiescent: bool) -> None:
    """The model's Finish step: record each partition's committed log."""
    rec = session.recorder
    leaders = {p["partition"]: p["leader"] for p in (session.describe() or [])}
    reader = session.client("final-read", "final-read", {
        "partitions": list(range(session.partitions)), "timeout_ms": 60000,
        "props": {k: v for k, v in session.real.consumer.items()
                  if k not in ("group.id", "auto.offset.reset")}})
    if not reader.wait_exit(150):
        reader.kill()
        raise RealRunError("the final read of the topic did not finish in 150s")
    logs = {line["partition"]: line for line in reader.lines if "partition" in line}
    if len(logs) != session.partitions:
        raise RealRunError(f"the final read returned {len(logs)} of {session.partitions} "
                           f"partitions (see {session.registry.dir}/clients/final-read.log)")
    complete = all(line["complete"] for line in logs.values())
    rec.internal("net", "finish", quiescent=quiescent and complete)
    for p in sorted(logs):
        line = logs[p]
        records = line["records"]
        offsets = [r[0] for r in records]
        if line["start"] != 0 or offsets != list(range(len(offsets))):
            # The checkers index the final log by offset, as the model's logs are dense.
            raise RealRunError(f"partition {p}'s final log is not dense from offset 0 "
                               f"(start {line['start']}, {len(offsets)} records, "
                               f"hw {line['hw']})")
        leader = leaders.get(p)
        rec.internal(f"b{leader}" if leader is not None else "net", "final-log", partition=p,
                     leader=f"b{leader}" if leader is not None else None, hw=line["hw"],
                     records=[[o, v, k, producer, epoch] for o, v, k, producer, epoch in records])


__all__ = ["RealOptions", "RealResult", "RealRunError", "RealEnvironmentError", "run_real",
           "sweep", "NetnsError"]
