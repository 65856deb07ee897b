"""The metric buffer keeps points when the store fails and writes them, in order, later."""

from __future__ import annotations

import threading

import pytest

from conveyor.core.errors import BackendUnavailable
from conveyor.tracking.buffer import MetricBuffer


class FlakyStore:
    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.down = False
        self.calls = 0

    def write(self, batch: list[tuple]) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("database is down")
        self.rows.extend(batch)


def test_points_survive_a_failed_flush_in_order() -> None:
    store = FlakyStore()
    buffer = MetricBuffer(store.write, interval=3600, max_points=10**9)
    buffer.extend([("r", "m", float(i), i, 0) for i in range(3)])
    store.down = True
    with pytest.raises(BackendUnavailable):
        buffer.flush()
    assert buffer.pending() == 3 and store.rows == []
    buffer.add(("r", "m", 3.0, 3, 0))
    store.down = False
    buffer.flush()
    assert [row[3] for row in store.rows] == [0, 1, 2, 3]
    assert buffer.pending() == 0
    buffer.close()


def test_background_thread_flushes_on_size_and_time() -> None:
    store = FlakyStore()
    written = threading.Event()
    original = store.write

    def write(batch: list[tuple]) -> None:
        original(batch)
        written.set()

    buffer = MetricBuffer(write, interval=3600, max_points=100)
    buffer.extend([("r", "m", 1.0, i, 0) for i in range(100)])  # reaches max_points
    assert written.wait(5)
    assert len(store.rows) == 100
    written.clear()
    timed = MetricBuffer(write, interval=0.05, max_points=10**9)
    timed.add(("r", "m", 1.0, 0, 0))
    assert written.wait(5)
    assert len(store.rows) == 101
    buffer.close()
    timed.close()


def test_concurrent_producers_lose_nothing() -> None:
    store = FlakyStore()
    buffer = MetricBuffer(store.write, interval=0.001, max_points=50)

    def produce(worker: int) -> None:
        for i in range(5000):
            buffer.add(("r", f"w{worker}", 1.0, i, 0))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    buffer.close()
    assert len(store.rows) == 20000
    for w in range(4):
        assert [r[3] for r in store.rows if r[1] == f"w{w}"] == list(range(5000))
