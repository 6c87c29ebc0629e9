"""Targeted real-cluster experiments: one model finding, replayed step by step on real
Kafka with Kafka's own Java client, to confirm or refute it (docs/real-kafka.md).

``idempotent_leader_restart``: does Kafka's default idempotent producer write a duplicate
when its partition's leader is killed and elected again?  The model says yes
(docs/model.md, *Idempotent producer*):

1. Three KRaft nodes; one topic of one partition with one replica (so the restarted
   broker is the only replica and leads again); the producer is Kafka's default
   (idempotent, acks=all, 5 in flight), with ``batch.size=0`` so that two sends are two
   batches.
2. Send v1 and wait for its acknowledgement (sequence 0 acknowledged).
3. Drop every packet from the leader to the client (one-way), send v2 and v3: each is
   appended (sequences 1 and 2), and neither answer arrives before
   ``request.timeout.ms`` makes the client close the connection.
4. kill -9 the leader, lift the drop, start it again.  It recovers its log and keeps
   each producer's last batch (sequence 2).
5. The producer retries sequence 1: the model predicts OUT_OF_ORDER_SEQUENCE_NUMBER, an
   epoch bump, and v2 and v3 written a second time.
6. Read the partition: the values in offset order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from kafkacheck.real.build import prepare
from kafkacheck.real.netns import CLIENTS, ip
from kafkacheck.real.run import RealOptions, Session, config_names
from kafkacheck.real.settings import route


def _listing(directory: Path) -> str:
    return ", ".join(f"{p.name} ({p.stat().st_size} bytes)" for p in sorted(directory.iterdir())
                     if p.suffix in (".log", ".snapshot"))


def idempotent_leader_restart(kafka_version: str | None = None, keep: bool = False,
                              say: Callable[[str], None] = print) -> list[int]:
    """Run the experiment; returns the partition's values in offset order."""
    artifacts = prepare(kafka_version, progress=say)
    real = route({"kafkacheck.partitions": "1", "kafkacheck.replication.factor": "1",
                  "delivery.timeout.ms": "120000", "request.timeout.ms": "8000",
                  "batch.size": "0"},
                 config_names(artifacts))
    session = Session(artifacts, real, True, RealOptions(settings={}, out_dir=None, keep=keep),
                      say)
    answers: dict[int, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        session.bring_up()
        assert session.network is not None and session.cluster is not None
        leader = session.leader_of(0)
        assert leader is not None
        node = session.cluster.node(leader)
        say(f"Kafka {artifacts.version}; partition 0 is led by {node.name}; producer: "
            f"{real.producer}")
        producer = session.client("p0", "producer", {"props": real.producer,
                                                     "client": "p0"})
        producer.wait_ready(60)

        def send(value: int) -> None:
            producer.submit({"op": "send", "partition": 0, "key": "k0", "value": value},
                            lambda reply, v=value: answers.__setitem__(
                                v, {**reply, "at_s": round(time.monotonic() - started, 1)}))

        send(1)
        session.wait(lambda: 1 in answers, 60, "v1's acknowledgement")
        say(f"v1: {answers[1]}")
        hub = session.network.hub
        src, dst = session.network.address(node.name), session.network.address(CLIENTS)
        ip("-n", hub, "rule", "add", "from", src, "to", dst, "blackhole", "priority", "100")
        say(f"dropping {node.name} -> clients")
        # Back to back, so both reach the leader before TCP, seeing no ACK come back,
        # shrinks its window to the first unacknowledged segment.
        send(2)
        time.sleep(0.05)
        send(3)
        # Past request.timeout.ms the client closes the connection and so discards the
        # answers (a killed broker's kernel would still deliver bytes it had sent); its
        # new connections cannot be set up while the drop lasts, so nothing is retried.
        time.sleep(12.0)
        say(f"{time.monotonic() - started:.1f}s: answers so far {sorted(answers)}; "
            f"killing {node.name}")
        session.cluster.kill(node)
        partition_dir = node.dir / "data" / "kafkacheck-0"
        say(f"on disk after the kill: {_listing(partition_dir)}")
        ip("-n", hub, "rule", "del", "priority", "100")
        time.sleep(1.0)
        session.cluster.start(node)
        say(f"restarted {node.name}; waiting for the sends to finish")
        session.wait(lambda: any(p.suffix == ".snapshot" for p in partition_dir.iterdir()),
                     60, "the restarted broker to load the log")
        say(f"on disk after the restart: {_listing(partition_dir)}")
        session.wait(lambda: {2, 3} <= set(answers), 150, "v2 and v3 to finish")
        say(f"v2: {answers[2]}\nv3: {answers[3]}")
        producer.close()
        reader = session.client("final-read", "final-read", {
            "partitions": [0], "timeout_ms": 60000,
            "props": {k: v for k, v in real.consumer.items()
                      if k not in ("group.id", "auto.offset.reset")}})
        reader.wait_exit(150)
        (log,) = [line for line in reader.lines if "partition" in line]
        return [record[1] for record in log["records"]]
    finally:
        session.close()
