"""Adaptive micro-batching: concurrent requests share one model call.

Requests queue up while the model is busy; when it is free, everything waiting
(up to ``max_batch_size`` rows) becomes one call, and each request gets its
own slice of the result back. Under light load a request runs at once (no
fixed wait is added unless ``max_wait_ms`` asks for one), so batching costs
nothing at concurrency 1 and multiplies throughput under load.

If a batched call raises, the requests of that batch are retried one by one,
so a row that breaks the model fails only its own request.

The queue is bounded: when ``max_queue`` rows are already waiting, ``submit``
raises :class:`Overloaded` (HTTP 503) instead of letting latency grow without
limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import BackendUnavailable


class Overloaded(BackendUnavailable):
    """Too many rows are waiting for the model; try again shortly."""

    code = "OVERLOADED"


@dataclass
class _Item:
    payload: Any
    future: asyncio.Future[Any]


Predict = Callable[[list[Any]], list[Any]]  # payloads in, one result per payload out, in order


class MicroBatcher:
    """Groups concurrent requests into model calls made on one worker thread.

    Args:
        predict_items: takes the queued payloads, returns one result per payload, in
            order; a result that is an exception is raised to that payload's caller.
        max_batch_size: rows per model call at most.
        max_wait_ms: extra time to wait for more rows once the first arrives.
        max_queue: rows allowed to wait before new requests are refused.
        size: the row count of a payload.
    """

    def __init__(
        self,
        predict_items: Predict,
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        max_queue: int = 2048,
        on_batch: Callable[[int, float], None] | None = None,
        size: Callable[[Any], int] = len,
    ) -> None:
        self._predict = predict_items
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._size = size
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-model")

    async def submit(self, payload: Any) -> Any:
        """Queue one request's rows (``size(payload)`` of them) and wait for its result."""
        n = self._size(payload)
        if self._queued_rows and self._queued_rows + n > self.max_queue:  # one request always fits
            raise Overloaded(f"{self._queued_rows} rows are already waiting for the model; retry shortly")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())
        item = _Item(payload, loop.create_future())
        self._queue.append(item)
        self._queued_rows += n
        assert self._wake is not None
        self._wake.set()
        return await item.future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=True)

    def _take(self) -> list[_Item]:
        """The next batch; requests that stopped waiting (timed out, client gone) are dropped unseen."""
        taken: list[_Item] = []
        rows = 0
        while self._queue and (not taken or rows + self._size(self._queue[0].payload) <= self.max_batch_size):
            item = self._queue.popleft()
            n = self._size(item.payload)
            self._queued_rows -= n
            if item.future.done():
                continue
            rows += n
            taken.append(item)
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if self.max_wait and self._queued_rows < self.max_batch_size:
                    await asyncio.sleep(self.max_wait)
                batch = self._take()
                if not batch:
                    continue
                started = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._pool, self._predict, [i.payload for i in batch])
                except Exception:
                    results = await loop.run_in_executor(self._pool, self._one_by_one, [i.payload for i in batch])
                if self._on_batch is not None:
                    self._on_batch(sum(self._size(i.payload) for i in batch), time.perf_counter() - started)
                for item, result in zip(batch, results, strict=True):
                    if item.future.done():  # the client went away
                        continue
                    if isinstance(result, BaseException):
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)

    def _one_by_one(self, items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for payload in items:
            try:
                out.extend(self._predict([payload]))
            except Exception as exc:  # this request's own failure
                out.append(exc)
        return out
