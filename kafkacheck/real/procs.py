"""A run's processes, its on-disk registry, and the sweep of stale runs.

Clean-up must be certain, even after ``kill -9`` of kafkacheck itself.  Every run
therefore gets a directory ``<cache>/runs/<run id>/`` holding ``owner`` (the pid of the
kafkacheck process that owns it) and one ``pids/<name>`` file per process it started.
Every process started carries ``-Dkafkacheck.run=<run id>`` (or, for non-Java commands,
runs inside the run's namespaces), so a sweep only ever signals processes that provably
belong to a dead run: it reads the pid files, checks that ``/proc/<pid>/cmdline`` still
names the run, and kills those.  Processes are also started with ``PR_SET_PDEATHSIG`` so
that the kernel kills them when kafkacheck dies; the sweep is for what that misses.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

RUN_PREFIX = "kcreal"
MARKER = "-Dkafkacheck.run="


def cache_root() -> Path:
    """Where jars, compiled drivers and run directories live: outside the repository."""
    base = os.environ.get("KAFKACHECK_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kafkacheck"


def new_run_id() -> str:
    """``kcreal-<owner pid>-<random>``: the owner pid lets a sweep tell live runs apart."""
    return f"{RUN_PREFIX}-{os.getpid()}-{os.urandom(2).hex()}"


def owner_of(run_id: str) -> int | None:
    parts = run_id.split("-")
    if len(parts) != 3 or parts[0] != RUN_PREFIX or not parts[1].isdigit():
        return None
    return int(parts[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_kafkacheck(pid: int) -> bool:
    """Is ``pid`` a live kafkacheck (Python) process?  Guards against pid reuse.  A
    pytest-xdist worker's command line names neither (``python -c ...``); its parent,
    the pytest it works for, does."""
    return _names_kafkacheck(pid) or _names_kafkacheck(_parent(pid), parent_only=True)


def _names_kafkacheck(pid: int | None, parent_only: bool = False) -> bool:
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "pytest" in cmdline or (not parent_only and "kafkacheck" in cmdline)


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[1]) if len(fields) > 1 else None


def cmdline_has(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgrp()                   # Ctrl-C reaches kafkacheck only; it stops the children


class Spawner:
    """Starts every child from one long-lived thread.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, so children
    started from short-lived threads (the nemesis restarting a node) would die with them.
    One thread that lives as long as the run starts them all."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box.append(("ok", fn()))
            except BaseException as error:  # handed back to the caller
                box.append(("error", error))
            done.set()

    def call(self, fn: Callable[[], Any]) -> Any:
        box: list[tuple[str, Any]] = []
        done = threading.Event()
        self._jobs.put((fn, box, done))
        done.wait()
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        self._jobs.put(None)


class RunRegistry:
    """The run directory and the pid files of everything the run started."""

    def __init__(self, run_id: str, root: Path | None = None) -> None:
        self.run_id = run_id
        self.dir = (root or cache_root()) / "runs" / run_id
        (self.dir / "pids").mkdir(parents=True, exist_ok=True)
        (self.dir / "owner").write_text(str(os.getpid()))
        self.spawner = Spawner()
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], *, stdin: Any = subprocess.DEVNULL,
              stdout: Any = None, stderr: Any = None, cwd: Path | None = None) -> subprocess.Popen:
        def spawn() -> subprocess.Popen:
            return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                    cwd=cwd, preexec_fn=_set_pdeathsig, close_fds=True)

        proc = self.spawner.call(spawn)
        self.procs[name] = proc
        (self.dir / "pids" / name).write_text(str(proc.pid))
        return proc

    def forget(self, name: str) -> None:
        self.procs.pop(name, None)
        try:
            (self.dir / "pids" / name).unlink()
        except FileNotFoundError:
            pass

    def kill_all(self) -> None:
        for name, proc in list(self.procs.items()):
            kill_process(proc)
            self.forget(name)

    def close(self, keep_dir: bool = False) -> None:
        self.kill_all()
        self.spawner.close()
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def kill_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGCONT then SIGKILL (a stopped process is resumed first so it is reaped at
    once), then wait for it and close its pipes."""
    if proc.poll() is None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                break
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        _close(stream)


def _close(stream: IO[Any] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except OSError:
            pass


def stale_runs(root: Path | None = None) -> list[Path]:
    """Run directories whose owner is no longer a live kafkacheck process."""
    runs = (root or cache_root()) / "runs"
    if not runs.is_dir():
        return []
    stale = []
    for run_dir in sorted(runs.iterdir()):
        owner = owner_of(run_dir.name)
        if owner is not None and owner != os.getpid() and pid_alive(owner) \
                and is_kafkacheck(owner):
            continue
        if owner == os.getpid():
            continue
        stale.append(run_dir)
    return stale


def sweep_processes(run_dir: Path) -> list[int]:
    """Kill the processes a dead run left, identified by its pid files and its marker."""
    killed = []
    pids_dir = run_dir / "pids"
    for pid_file in sorted(pids_dir.iterdir()) if pids_dir.is_dir() else []:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if cmdline_has(pid, MARKER + run_dir.name):
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
            killed.append(pid)
    deadline = time.monotonic() + 5
    while killed and time.monotonic() < deadline and any(pid_alive(p) for p in killed):
        time.sleep(0.05)
    return killed
