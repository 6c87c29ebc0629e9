"""Run one part of the analysis in a forked helper process, on the machine's other core.

Why: on 10^6-op histories the dependency graph and cycle search take about as long as
all the other checks together, and they need nothing the others produce.  A forked
child sees the already-built history for free (copy-on-write), computes its part and
sends back only the (small) result.  The result is the same as running it in-process:
forking changes when work happens, never what it finds.  Where ``os.fork`` does not
exist, or the child dies, the work simply runs in the calling process.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# Forking pays off only when there is a lot to do (and small analyses stay in-process,
# which keeps them cheap and simple to debug).  KAFKACHECK_JEPSEN_FORK=0 disables it.
FORK_THRESHOLD_OPS = 100_000


def fork_allowed(n_ops: int, threshold: int = FORK_THRESHOLD_OPS) -> bool:
    return (hasattr(os, "fork") and n_ops >= threshold
            and os.environ.get("KAFKACHECK_JEPSEN_FORK", "1") != "0")


def fork_with_pipe() -> tuple[int, int, int] | None:
    """``(pid, read_fd, write_fd)`` after ``os.fork`` with a fresh pipe between parent and
    child, or None (pipe closed again) if the fork failed: callers then work in-process."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    return pid, r, w


class Deferred(Generic[T]):
    """``fn()`` computed in a forked child (or lazily in-process); ``result()`` waits."""

    def __init__(self, fn: Callable[[], T], fork: bool) -> None:
        self._fn = fn
        self._pid = 0
        self._fd = -1
        if fork:
            self._start()

    def _start(self) -> None:
        forked = fork_with_pipe()
        if forked is None:
            return
        pid, r, w = forked
        if pid == 0:  # the helper: compute, send, leave without running any cleanup
            os.close(r)
            try:
                payload = pickle.dumps((True, self._fn()), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                payload = pickle.dumps((False, f"{type(e).__name__}: {e}"))
            with os.fdopen(w, "wb") as out:
                out.write(payload)
            os._exit(0)
        os.close(w)
        self._pid, self._fd = pid, r

    def result(self) -> T:
        if not self._pid:
            return self._fn()
        with os.fdopen(self._fd, "rb") as src:
            payload = src.read()
        os.waitpid(self._pid, 0)
        self._pid = 0
        try:
            ok, value = pickle.loads(payload)
        except Exception:  # the helper died (e.g. killed for memory): do it here
            return self._fn()
        if not ok:
            raise RuntimeError(f"jepsen analysis helper failed: {value}")
        return value


    def cancel(self) -> None:
        """Stop and reap the helper (when the caller fails before needing the result)."""
        if self._pid:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except OSError:
                pass
            os.close(self._fd)
            os.waitpid(self._pid, 0)
            self._pid = 0


def helper_peak_rss_bytes() -> int:
    """Largest resident set of any finished helper (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


__all__ = ["Deferred", "fork_allowed", "FORK_THRESHOLD_OPS", "helper_peak_rss_bytes"]
