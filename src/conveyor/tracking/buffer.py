"""The metric buffer: log calls append in memory, a background thread writes in bulk.

``add`` is the hot path of tracking and costs one lock and one list append.
A daemon thread flushes every ``interval`` seconds, or at once when
``max_points`` are waiting. ``flush()`` writes everything added before the call
and returns only when it is stored: that is the acknowledgement. If the store
fails, the points stay buffered (in order) for the next attempt and the error
is raised by the next ``flush()``; nothing acknowledged is ever dropped. A failed
batch is retried as it was, before newer points, so a store can recognise it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from conveyor.stores.metadata.base import PointRow

log = logging.getLogger(__name__)

Sink = Callable[[list[PointRow]], None]


class MetricBuffer:
    def __init__(self, sink: Sink, *, interval: float = 1.0, max_points: int = 20_000) -> None:
        self._sink = sink
        self._interval = interval
        self._max_points = max_points
        self._points: list[PointRow] = []
        self._retry: list[PointRow] = []  # a batch the store refused, sent again first
        self._lock = threading.Lock()  # guards _points
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def add(self, point: PointRow) -> None:
        with self._lock:
            self._points.append(point)
            size = len(self._points)
        if self._thread is None:
            self._start()
        if size >= self._max_points:
            self._wake.set()

    def extend(self, points: list[PointRow]) -> None:
        with self._lock:
            self._points.extend(points)
            size = len(self._points)
        if self._thread is None:
            self._start()
        if size >= self._max_points:
            self._wake.set()

    def pending(self) -> int:
        return len(self._retry) + len(self._points)

    def flush(self, final: Sink | None = None) -> None:
        """Write everything buffered so far; raise if the store refuses it.

        With ``final``, the waiting points go to ``final`` instead of the usual
        sink, and ``final`` is called even when none are waiting: the tracking
        client ends a run this way, its last points and its status in one write.
        An error from ``final`` is raised at once (the points stay buffered).
        """
        if final is not None:
            self._write(final, raise_now=True)
        else:
            self._write()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="conveyor-metric-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write()

    def _write(self, sink: Sink | None = None, *, raise_now: bool = False) -> None:
        with self._flush_lock:
            for _ in range(2):  # the failed batch (if any), then what is buffered now
                with self._lock:
                    # A batch that failed goes again first, alone and unchanged, so a
                    # store that deduplicates retries (the REST store) recognises it.
                    retrying = bool(self._retry)
                    if retrying:
                        batch, self._retry = self._retry, []
                    else:
                        batch, self._points = self._points, []
                # ``sink`` (ending a run) takes the fresh points, and is called even with none.
                target = self._sink if retrying or sink is None else sink
                if not batch and target is self._sink:
                    return
                try:
                    target(batch)
                    self._error = None
                except BaseException as exc:  # keep the points; report on the next flush()
                    with self._lock:
                        self._retry = batch
                    if raise_now:
                        raise
                    self._error = exc
                    log.warning("could not write %d metric points (kept for retry): %s", len(batch), exc)
                    return
                if not retrying:
                    return
