"""The workload: producers sending unique values, and the consumer application loop.

Both record exactly what the model's clients record (``model/producer.py``,
``model/consumer.py``), so the model-aware checkers and Jepsen's checker read a real
history as they read a model history:

* a producer send is ``invoke`` ``[["send", p, v]]`` on a Jepsen *lane*
  (``p0:<incarnation>:<lane>``), completed ``ok`` ``[["send", p, [offset, v]]]``, ``fail``
  only when the client proves nothing was written (``send()`` itself threw), otherwise
  ``info``; a lane is reused only after a definite outcome, as in the model;
* the consumer is assigned every partition (``assign``), records where it starts
  (``position`` events), and runs the application loop chosen by
  ``kafkacheck.commit.strategy``: ``poll; process each; commitSync`` or
  ``poll; commitSync; process each`` (a batch whose commit failed is skipped);
* a client crash (``kill -9`` of its Java process) ends every unfinished operation with
  ``info`` and an ``info`` ``crash`` op; the restarted client is a new incarnation.

Record keys are ``k0``.. as in the model, and the partition is computed here with the
model's copy of Kafka's default partitioner (murmur2 of the key) and sent explicitly, so
the ``invoke`` can name it before Kafka answers; the Java client's reply confirms it.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable

from kafkacheck.real.driver import DriverDied, DriverTimeout, JavaClient
from kafkacheck.real.recorder import Recorder
from model.clients.partitioner import partition_for_key

ClientFactory = Callable[[str, str, dict[str, Any], Callable[[JavaClient], None] | None],
                         JavaClient]
CRASHED = "CLIENT_CRASHED"
CRASH_POINTS = ("after-poll", "after-process", "after-commit")


class ProducerClient:
    """One producer application (``p0``..): a KafkaProducer plus its history lanes."""

    def __init__(self, name: str, recorder: Recorder, factory: ClientFactory,
                 config: dict[str, Any], partitions: int) -> None:
        self.name = name
        self.recorder = recorder
        self.factory = factory
        self.config = config
        self.partitions = partitions
        self.incarnation = -1
        self._lock = threading.Lock()
        self.client: JavaClient | None = None
        self.pending: dict[int, tuple[str, int, str]] = {}   # value -> (process, p, key)
        self.outcomes = {"ok": 0, "fail": 0, "info": 0}

    def start(self, timeout: float = 60.0) -> None:
        with self._lock:
            self.incarnation += 1
            self.free_lanes: list[int] = []
            self.next_lane = 0
            self.client = self.factory(f"{self.name}.{self.incarnation}", "producer",
                                       {**self.config, "client": self.name}, self._exited)
        self.client.wait_ready(timeout)

    @property
    def alive(self) -> bool:
        return self.client is not None and not self.client.dead

    def _lane(self) -> int:
        if self.free_lanes:
            return self.free_lanes.pop(0)
        lane, self.next_lane = self.next_lane, self.next_lane + 1
        return lane

    def send(self, key: str) -> bool:
        """Invoke one send; False if the producer is down (nothing recorded then)."""
        with self._lock:
            client = self.client
            if client is None or client.dead:
                return False
            partition = partition_for_key(key, self.partitions)
            value = self.recorder.next_value()
            process = f"{self.name}:{self.incarnation}:{self._lane()}"
            self.recorder.add(process, "invoke", "send", [["send", partition, value]],
                              {"key": key})
            self.pending[value] = (process, partition, key)
        op = {"op": "send", "partition": partition, "key": key, "value": value}
        try:
            client.submit(op, lambda reply: self._completed(value, reply))
        except DriverDied:
            # It never reached the client process: certainly not written.
            self._complete(value, "fail", None, CRASHED)
        return True

    def _completed(self, value: int, reply: dict[str, Any]) -> None:
        if reply.get("ok"):
            offset = reply.get("offset")
            self._complete(value, "ok", None if offset is None or offset < 0 else offset, None,
                           reply.get("partition"))
        else:
            outcome = "fail" if reply.get("definite") else "info"
            self._complete(value, outcome, None, reply.get("error", "UNKNOWN"))

    def _complete(self, value: int, outcome: str, offset: int | None, error: str | None,
                  partition: int | None = None) -> None:
        with self._lock:
            entry = self.pending.pop(value, None)
            if entry is None:
                return
            process, p, key = entry
            if partition is not None and partition != p:
                raise AssertionError(f"Kafka stored value {value} in partition {partition}, "
                                     f"the model's partitioner chose {p}")
            result: Any = [offset, value] if outcome == "ok" else value
            meta: dict[str, Any] = {"key": key}
            if error is not None:
                meta["error"] = error
            self.recorder.add(process, outcome, "send", [["send", p, result]], meta)
            self.outcomes[outcome] += 1
            if outcome != "info" and process.startswith(f"{self.name}:{self.incarnation}:"):
                self.free_lanes.append(int(process.rsplit(":", 1)[1]))
                self.free_lanes.sort()

    def _exited(self, client: JavaClient) -> None:
        """The process died: whatever it had not answered is indeterminate."""
        with self._lock:
            closing = client is not self.client
            pending = sorted(self.pending.items())
            self.pending.clear()
            for value, (process, p, key) in pending:
                self.recorder.add(process, "info", "send", [["send", p, value]],
                                  {"key": key, "error": CRASHED})
                self.outcomes["info"] += 1
            if not closing:
                self.recorder.add(f"{self.name}:{self.incarnation}", "info", "crash", None)

    def crash(self) -> None:
        client = self.client
        if client is not None:
            client.kill()

    def flush(self, timeout: float) -> bool:
        """Wait until every send has an outcome (the producer's own flush, bounded)."""
        client = self.client
        if client is None or client.dead:
            return not self.pending
        try:
            client.request({"op": "flush"}, timeout)
        except (DriverDied, DriverTimeout):
            return False
        deadline = time.monotonic() + 5
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.pending

    def close(self) -> None:
        """Close the producer; a send still unanswered is recorded ``info`` (not a crash)."""
        with self._lock:
            client, self.client = self.client, None
        if client is not None:
            client.close()


class ConsumerApp:
    """The consumer application (``c0``): a KafkaConsumer and the loop around it."""

    def __init__(self, name: str, recorder: Recorder, factory: ClientFactory,
                 config: dict[str, Any], partitions: int, strategy: str,
                 process_ms: float = 2.0, poll_ms: int = 200, commit_ms: int = 10000) -> None:
        self.name = name
        self.recorder = recorder
        self.factory = factory
        self.config = config
        self.partitions = list(range(partitions))
        self.strategy = strategy
        self.process_ms = process_ms
        self.poll_ms = poll_ms
        self.commit_ms = commit_ms
        self.incarnation = -1
        self.client: JavaClient | None = None
        self.down = threading.Event()          # crashed and not yet restarted
        self.crash_at: str | None = None       # a pending crash at this point of the loop
        self.crash_done = threading.Event()
        self._stop = threading.Event()
        self.position: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        self.processed: dict[int, int] = {}
        self.returned: dict[int, int] = {}
        self.thread: threading.Thread | None = None
        self.errors: list[str] = []

    @property
    def op_process(self) -> str:
        return f"{self.name}:{self.incarnation}"

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> bool:
        """Start a new incarnation; False if the consumer could not find its positions."""
        self.incarnation += 1
        client = self.factory(f"{self.name}.{self.incarnation}", "consumer",
                              {**self.config, "partitions": self.partitions,
                               "start_ms": int(timeout * 1000 * 0.8)}, None)
        try:
            ready = client.wait_ready(timeout)
        except (DriverDied, DriverTimeout) as error:
            client.kill()
            self.errors.append(str(error))
            return False
        if not ready.get("ready"):
            client.kill()
            self.errors.append(f"consumer start: {ready.get('error')}: {ready.get('message')}")
            return False
        self.client = client
        self.recorder.add(self.op_process, "invoke", "assign", list(self.partitions))
        self.recorder.add(self.op_process, "ok", "assign", list(self.partitions))
        self.committed, self.processed, self.returned = {}, {}, {}
        for p in self.partitions:
            offset = int(ready["position"][str(p)])
            reason = ready["reasons"][str(p)]
            self.position[p] = offset
            if reason == "committed":
                self.committed[p] = self.processed[p] = self.returned[p] = offset
            self.recorder.internal(self.name, "position", partition=p, offset=offset,
                                   reason=reason)
        self.down.clear()
        return True

    def start_until(self, deadline: float) -> bool:
        while time.monotonic() < deadline and not self._stop.is_set():
            if self.start(timeout=max(5.0, min(30.0, deadline - time.monotonic()))):
                return True
            time.sleep(1)
        return False

    def run_loop(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=f"{self.name}-app", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=60)
        if self.client is not None and not self.client.dead:
            self.client.close()

    def request_crash(self, point: str) -> None:
        """Crash the application at ``point`` of its next loop iteration."""
        self.crash_done.clear()
        self.crash_at = point

    # -- the loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.down.is_set() or self.client is None:
                time.sleep(0.05)
                continue
            try:
                self._iteration()
            except (DriverDied, DriverTimeout) as error:
                self._crashed(str(error))

    def _maybe_crash(self, point: str) -> None:
        if self.crash_at == point:
            self.crash_at = None
            assert self.client is not None
            self.client.kill()
            raise DriverDied(f"crash {point}")

    def _iteration(self) -> None:
        client = self.client
        assert client is not None
        self.recorder.add(self.op_process, "invoke", "poll", [["poll"]])
        try:
            reply = client.request({"op": "poll", "ms": self.poll_ms}, timeout=60)
        except (DriverDied, DriverTimeout):
            self.recorder.add(self.op_process, "info", "poll", [["poll"]], {"error": CRASHED})
            raise
        if not reply.get("ok"):
            self.recorder.add(self.op_process, "fail", "poll", [["poll"]],
                              {"error": reply.get("error")})
            time.sleep(0.1)
            return
        batch: list[tuple[int, int, int, str]] = []
        returned: dict[int, list[list[int]]] = {}
        for p, offset, value, key, _epoch in reply["records"]:
            batch.append((p, offset, value, key))
            returned.setdefault(p, []).append([offset, value])
            self.returned[p] = offset + 1
            self.position[p] = offset + 1
        self.recorder.add(self.op_process, "ok", "poll", [["poll", returned]])
        self._maybe_crash("after-poll")
        if not batch:
            return
        if self.strategy == "after-processing":
            self._process(batch)
            self._commit(dict(self.processed))
        else:
            if self._commit(dict(self.returned)):
                self._process(batch)

    def _process(self, batch: list[tuple[int, int, int, str]]) -> None:
        for p, offset, value, key in batch:
            self.recorder.add(self.op_process, "ok", "process", [p, offset, value], {"key": key})
            self.processed[p] = offset + 1
            if self.process_ms:
                time.sleep(self.process_ms / 1000)
            self._maybe_crash("after-process")

    def _commit(self, offsets: dict[int, int]) -> bool:
        client = self.client
        assert client is not None
        self.recorder.add(self.op_process, "invoke", "commit", offsets)
        try:
            reply = client.request({"op": "commit", "offsets": {str(k): v for k, v in
                                                                offsets.items()},
                                    "ms": self.commit_ms},
                                   timeout=self.commit_ms / 1000 + 30)
        except (DriverDied, DriverTimeout):
            self.recorder.add(self.op_process, "info", "commit", offsets, {"error": CRASHED})
            raise
        if reply.get("ok"):
            self.recorder.add(self.op_process, "ok", "commit", offsets)
            self.committed.update(offsets)
            self._maybe_crash("after-commit")
            return True
        outcome = "fail" if reply.get("definite") else "info"
        self.recorder.add(self.op_process, outcome, "commit", offsets,
                          {"error": reply.get("error")})
        return False

    def _crashed(self, why: str) -> None:
        client = self.client
        if client is not None and not client.dead:
            client.kill()
        self.recorder.add(self.op_process, "info", "crash", None)
        self.client = None
        self.down.set()
        self.crash_done.set()

    def caught_up(self, high_watermarks: dict[int, int]) -> bool:
        """Everything below each high watermark was returned, processed and committed."""
        if self.down.is_set() or self.client is None:
            return False
        return all(self.position.get(p, -1) >= hw and self.committed.get(p, 0) >= hw
                   for p, hw in high_watermarks.items())


def producer_loop(producers: list[ProducerClient], keys: list[str], rate: float,
                  stop: threading.Event, rng: random.Random) -> threading.Thread:
    """Each producer sends ``rate`` records per second with keys drawn from ``rng``."""

    def loop() -> None:
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not stop.is_set():
            for producer in producers:
                producer.send(rng.choice(keys))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_at = time.monotonic()

    thread = threading.Thread(target=loop, name="producers", daemon=True)
    thread.start()
    return thread
