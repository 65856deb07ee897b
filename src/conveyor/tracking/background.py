"""Background work for live runs: heartbeats and system metrics.

One heartbeat thread per client refreshes ``heartbeat_at`` of every run the
process has open. A run whose process dies (SIGKILL, power loss) stops beating
and is marked KILLED by the next reader once ``heartbeat_timeout`` has passed.

System metrics (opt-in) sample CPU and memory with psutil into the runs that
asked for them: ``system/cpu_percent``, ``system/memory_percent``,
``system/memory_used_mb`` and ``system/process_rss_mb``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticker:
    """A daemon thread calling ``tick`` every ``interval`` seconds until stopped."""

    def __init__(self, name: str, interval: float, tick: Callable[[], None]) -> None:
        self._interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except Exception as exc:  # a missed beat is retried at the next tick
                log.debug("%s failed: %s", self._thread.name, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class RunSet:
    """The ids of the runs a process keeps alive, safe to share with a ticker."""

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}
        self._lock = threading.Lock()

    def add(self, run_id: str) -> None:
        with self._lock:
            self._ids[run_id] = None

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._ids.pop(run_id, None)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    def __bool__(self) -> bool:
        return bool(self._ids)


class SystemSampler:
    """Samples host and process resource use; one reading per call."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first reading primes the counter
        self.step = 0

    def sample(self) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        values = {
            "system/cpu_percent": float(self._psutil.cpu_percent(interval=None)),
            "system/memory_percent": float(memory.percent),
            "system/memory_used_mb": (memory.total - memory.available) / 2**20,
            "system/process_rss_mb": self._process.memory_info().rss / 2**20,
        }
        self.step += 1
        return values

