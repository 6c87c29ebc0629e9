"""The KRaft cluster: three combined broker+controller nodes of one Kafka release.

Each node is ``kafka.Kafka server.properties`` run from the Maven-resolved jars, in its own
network namespace (or on loopback with its own ports when namespaces are unavailable).
Storage is formatted before the first start with ``kafka.tools.StorageTool format``, the
class behind ``kafka-storage.sh`` in both 3.9 and 4.x, against a static voter set
(``controller.quorum.voters``), so no dynamic-quorum bootstrap is needed.

Faults act on the processes: ``kill`` is SIGKILL (the page cache survives, as in a
process crash, not a power loss), ``pause`` is SIGSTOP and ``resume`` SIGCONT.  A killed
node restarts from its own data directory, exactly like a crashed broker coming back.
"""

from __future__ import annotations

import base64
import hashlib
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs

from kafkacheck.real.build import Artifacts
from kafkacheck.real.errors import RealRunError
from kafkacheck.real.netns import Network
from kafkacheck.real.procs import MARKER, RunRegistry, kill_process

STORAGE_TOOL = "kafka.tools.StorageTool"
BROKER_MAIN = "kafka.Kafka"
CLIENT_PORT, CONTROLLER_PORT = 9092, 9093

# Small heaps and few threads: three brokers and their clients share two cores.  C1 only
# (TieredStopAtLevel=1) and the serial collector cut JIT and GC threads; throughput is
# not what is measured.
JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
             "-Djava.awt.headless=true", "-Xss512k"]
BROKER_HEAP = ["-Xms128m", "-Xmx320m"]


def jvm_logging(level: str = "warn") -> list[str]:
    """slf4j-simple settings: warnings, plus the replication and controller decisions that
    explain a verdict (elections, ISR changes, truncation) at INFO."""
    flags = [f"-Dorg.slf4j.simpleLogger.defaultLogLevel={level}",
             "-Dorg.slf4j.simpleLogger.showDateTime=true",
             "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
             "-Dorg.slf4j.simpleLogger.showThreadName=false"]
    for logger in ("kafka.cluster.Partition", "state.change.logger",
                   "org.apache.kafka.controller.ReplicationControlManager",
                   "org.apache.kafka.storage.internals.log.UnifiedLog", "kafka.log.UnifiedLog",
                   "org.apache.kafka.raft.QuorumState"):
        flags.append(f"-Dorg.slf4j.simpleLogger.log.{logger}=info")
    return flags


# Broker settings of every real run (documented in docs/real-kafka.md).  The timeouts are
# shortened from Kafka's defaults so that a fault is noticed within seconds, not minutes.
BROKER_BASE: dict[str, str] = {
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.replica.fetchers": "1",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.threads": "1",
    "offsets.topic.num.partitions": "1",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.num.partitions": "1",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    "broker.heartbeat.interval.ms": "1000",
    "replica.socket.timeout.ms": "5000",
}


def cluster_id(run_id: str) -> str:
    """A KRaft cluster id (a base64url UUID, 22 characters) derived from the run id.

    Never starting with ``-``: the storage tool would read it as an option (Kafka's own
    ``Uuid.randomUuid`` skips such ids for the same reason)."""
    counter = 0
    while True:
        raw = hashlib.sha256(f"{run_id}:{counter}".encode()).digest()[:16]
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if not text.startswith("-"):
            return text
        counter += 1


@attrs.define
class Node:
    id: int
    name: str
    host: str
    port: int
    controller_port: int
    netns: str | None
    dir: Path
    proc: subprocess.Popen | None = None
    paused: bool = False

    @property
    def config_file(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.dir / "broker.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _free_ports(count: int) -> list[int]:
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    def __init__(self, artifacts: Artifacts, registry: RunRegistry, network: Network | None,
                 broker_settings: dict[str, str], nodes: int = 3) -> None:
        self.artifacts = artifacts
        self.registry = registry
        self.network = network
        self.settings = {**BROKER_BASE, **broker_settings}
        self.nodes: list[Node] = []
        ports = _free_ports(2 * nodes) if network is None else []
        for i in range(nodes):
            name = f"b{i}"
            if network is not None:
                node = Node(i, name, network.address(name), CLIENT_PORT, CONTROLLER_PORT,
                            network.netns_of(name), registry.dir / name)
            else:
                node = Node(i, name, "127.0.0.1", ports[2 * i], ports[2 * i + 1], None,
                            registry.dir / name)
            self.nodes.append(node)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    def node(self, name_or_id: str | int) -> Node:
        for node in self.nodes:
            if node.name == name_or_id or node.id == name_or_id:
                return node
        raise KeyError(name_or_id)

    # -- configuration ------------------------------------------------------------------

    def properties(self, node: Node) -> dict[str, str]:
        voters = ",".join(f"{n.id}@{n.host}:{n.controller_port}" for n in self.nodes)
        return {
            "process.roles": "broker,controller",
            "node.id": str(node.id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{node.host}:{node.port},"
                         f"CONTROLLER://{node.host}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{node.host}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.dir / "data"),
            **self.settings,
        }

    def _format_features(self) -> list[str]:
        """Kafka 4.x formats new clusters with KIP-966's eligible leader replicas on; the
        model is pre-KIP-966 (the ISR never empties, docs/model.md), so the cluster is
        formatted without them and the two are compared on the same rules."""
        if self.artifacts.major >= 4:
            return ["--feature", "eligible.leader.replicas.version=0"]
        return []

    def format(self) -> None:
        """Write each node's server.properties and format its KRaft storage."""
        cid = cluster_id(self.registry.run_id)
        procs = []
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            node.config_file.write_text("".join(
                f"{k}={v}\n" for k, v in self.properties(node).items()))
            argv = ["java", *JVM_FLAGS, "-Xmx192m", MARKER + self.registry.run_id,
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", self.artifacts.classpath(with_driver=False), STORAGE_TOOL,
                    "format", "-t", cid, "-c", str(node.config_file), *self._format_features()]
            log = (node.dir / "format.log").open("w")
            procs.append((node, self.registry.start(f"format-{node.name}", argv, stdout=log,
                                                    stderr=subprocess.STDOUT), log))
        for node, proc, log in procs:
            code = proc.wait(timeout=120)
            log.close()
            self.registry.forget(f"format-{node.name}")
            if code != 0:
                tail = (node.dir / "format.log").read_text().strip().splitlines()[-1:]
                raise RealRunError(f"formatting {node.name}'s storage failed: "
                                   f"{tail[0] if tail else code}")

    # -- processes ----------------------------------------------------------------------

    def start(self, node: Node) -> None:
        argv = ["java", *JVM_FLAGS, *BROKER_HEAP, MARKER + self.registry.run_id,
                *jvm_logging(), "-cp", self.artifacts.classpath(with_driver=False),
                BROKER_MAIN, str(node.config_file)]
        if node.netns is not None:
            argv = ["ip", "netns", "exec", node.netns, *argv]
        log = node.log_file.open("a")
        log.write(f"--- start {time.strftime('%H:%M:%S')}\n")
        log.flush()
        node.proc = self.registry.start(node.name, argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        node.paused = False

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

    def kill(self, node: Node) -> None:
        """kill -9: the process dies at once; what it wrote to the page cache survives."""
        if node.proc is not None:
            kill_process(node.proc)
        node.paused = False

    def pause(self, node: Node) -> None:
        if node.alive and not node.paused:
            node.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            node.paused = True

    def resume(self, node: Node) -> None:
        if node.alive and node.paused:
            node.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        node.paused = False

    def stop_all(self) -> None:
        for node in self.nodes:
            self.kill(node)
            self.registry.forget(node.name)

    def describe(self) -> list[dict[str, Any]]:
        return [{"node": n.name, "alive": n.alive, "paused": n.paused} for n in self.nodes]

    def log_tail(self, node: Node, lines: int = 5) -> str:
        try:
            return "\n".join(node.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
