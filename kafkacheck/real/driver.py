"""One Java client process (``kafkacheck.real.Driver``), spoken to in JSON lines.

Why one process per producer or consumer: a client crash is then a real ``kill -9`` of a
real KafkaProducer or KafkaConsumer, and its restart a new incarnation with fresh state,
just as the model's ``client-crash``/``client-restart`` actions mean.

Requests carry an ``id``; a reader thread matches replies to waiters (synchronous calls)
or callbacks (asynchronous sends, answered from the producer's callback thread).  When
the process dies, every waiter gets :class:`DriverDied` and ``on_exit`` is called, so the
recorder can write ``info`` outcomes for whatever was in flight.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

from kafkacheck.real.build import DRIVER_CLASS, Artifacts
from kafkacheck.real.cluster import JVM_FLAGS
from kafkacheck.real.procs import MARKER, RunRegistry, kill_process

CLIENT_HEAP = ["-Xms32m", "-Xmx160m"]


class DriverDied(RuntimeError):
    """The client process exited (killed by a fault, or crashed)."""


class DriverTimeout(RuntimeError):
    """No reply in time; the operation's outcome is unknown."""


Callback = Callable[[dict[str, Any]], None]


class JavaClient:
    def __init__(self, name: str, mode: str, config: dict[str, Any], artifacts: Artifacts,
                 registry: RunRegistry, netns: str | None, log_dir: Path,
                 on_exit: Callable[["JavaClient"], None] | None = None) -> None:
        self.name = name
        self.mode = mode
        self.registry = registry
        self.on_exit = on_exit
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._next_id = 0
        self._waiters: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._callbacks: dict[int, Callback] = {}
        self._ready = threading.Event()
        self.ready_message: dict[str, Any] | None = None
        self.lines: list[dict[str, Any]] = []      # replies without an id (final-read)
        self.dead = False
        argv = ["java", *JVM_FLAGS, *CLIENT_HEAP, MARKER + registry.run_id,
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp", artifacts.classpath(), DRIVER_CLASS, mode, json.dumps(config)]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = (log_dir / f"{name}.log").open("a")
        self.proc = registry.start(name, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=self._log)
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if "id" not in message:
                if "ready" in message and not self._ready.is_set():
                    self.ready_message = message
                    self._ready.set()
                else:
                    with self._lock:
                        self.lines.append(message)
                continue
            with self._lock:
                waiter = self._waiters.pop(message["id"], None)
                callback = self._callbacks.pop(message["id"], None)
            if waiter is not None:
                waiter[1].append(message)
                waiter[0].set()
            elif callback is not None:
                callback(message)
        self.proc.wait()
        self._died()

    def _died(self) -> None:
        with self._lock:
            self.dead = True
            waiters = list(self._waiters.values())
            self._waiters.clear()
            self._callbacks.clear()
        self._ready.set()
        for event, box in waiters:
            event.set()
        self._log.close()
        self.registry.forget(self.name)
        if self.on_exit is not None:
            self.on_exit(self)

    # -- requests -----------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        if not self._ready.wait(timeout):
            raise DriverTimeout(f"{self.name} did not start within {timeout:.0f}s")
        if self.ready_message is None:
            raise DriverDied(f"{self.name} exited during start-up")
        return self.ready_message

    def _write(self, op: dict[str, Any]) -> None:
        line = json.dumps(op) + "\n"
        with self._write_lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                raise DriverDied(f"{self.name} is not running") from None

    def _new_id(self) -> int:
        with self._lock:
            if self.dead:
                raise DriverDied(f"{self.name} is not running")
            self._next_id += 1
            return self._next_id

    def request(self, op: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one operation and wait for its reply."""
        rid = self._new_id()
        event = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            self._waiters[rid] = (event, box)
        self._write({**op, "id": rid})
        if not event.wait(timeout):
            with self._lock:
                self._waiters.pop(rid, None)
            raise DriverTimeout(f"{self.name}: no reply to {op.get('op')} in {timeout:.0f}s")
        if not box:
            raise DriverDied(f"{self.name} exited before replying to {op.get('op')}")
        return box[0]

    def submit(self, op: dict[str, Any], callback: Callback) -> None:
        """Send one operation; ``callback`` gets its reply on the reader thread."""
        rid = self._new_id()
        with self._lock:
            self._callbacks[rid] = callback
        self._write({**op, "id": rid})

    # -- ending -------------------------------------------------------------------------

    def kill(self) -> None:
        """kill -9 the client process (a client crash)."""
        kill_process(self.proc)
        self._reader.join(timeout=10)

    def close(self, timeout: float = 10.0) -> None:
        try:
            self._write({"op": "close", "id": 0})
            self.proc.wait(timeout=timeout)
        except (DriverDied, subprocess.TimeoutExpired):
            pass
        self.kill()

    def wait_exit(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        self._reader.join(timeout=10)
        return True
