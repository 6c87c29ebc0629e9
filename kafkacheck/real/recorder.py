"""The history of a real run, in the model's event format, recorded from many threads.

The model's :class:`model.history.HistoryRecorder` stamps each event with the current
schedule step and virtual time.  Here several threads (producer callbacks, the consumer
loop, the nemesis) append concurrently, so every append takes one lock, and ``time`` is
the wall clock in milliseconds since the run started.  ``step`` is the index of the fault
schedule entry in force (0 before the first fault), so a reader can tell which fault an
operation overlapped.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from model.history import Event, HistoryRecorder


class Recorder:
    def __init__(self) -> None:
        self._history = HistoryRecorder()
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._values = 0
        self.step = 0

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._history.events)

    def now_ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000)

    def next_value(self) -> int:
        """Unique record values, as the model's (Jepsen's) workload uses."""
        with self._lock:
            self._values += 1
            return self._values

    def add(self, process: str, type: str, f: str, value: Any = None,
            meta: dict[str, Any] | None = None) -> Event:
        with self._lock:
            self._history.step = self.step
            self._history.time = self.now_ms()
            return self._history.add(process, type, f, value, meta)

    def internal(self, process: str, f: str, /, **value: Any) -> Event:
        return self.add(process, "internal", f, value)
