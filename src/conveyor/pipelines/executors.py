"""Where steps run, behind one protocol shaped like ``concurrent.futures``.

The runner owns policy (caching, retries, lineage); an executor only runs
``fn(*args)`` somewhere and hands back a :class:`~concurrent.futures.Future`.
Executors are chosen by name from a table, so adding one is adding a row::

    class ThreadExecutor:
        max_workers = 4
        def __init__(self) -> None:
            self._pool = ThreadPoolExecutor(self.max_workers)
        def submit(self, fn, /, *args, resources=None, **kwargs):
            return self._pool.submit(fn, *args, **kwargs)
        def shutdown(self, wait=True, *, cancel_futures=False):
            self._pool.shutdown(wait, cancel_futures=cancel_futures)
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar, runtime_checkable

from conveyor.core.errors import InvalidArgument

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    """Runs callables somewhere; ``resources`` are the step's declared needs."""

    max_workers: int

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, float] | None = None, **kwargs: Any
    ) -> Future[T]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


class WorkerLost(Exception):
    """The process running a step died (killed, out of memory, crashed)."""


class InProcessExecutor:
    """Runs each step right here, one at a time: for debugging with breakpoints."""

    max_workers = 1

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, float] | None = None, **kwargs: Any
    ) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


class ProcessExecutor:
    """A pool of worker processes (spawned, so steps must be importable or in a file).

    A worker that dies breaks the standard pool for every task in it; this
    wrapper reports those tasks as :class:`WorkerLost` and starts a fresh pool
    for the next submission, so the runner can retry them.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or max(1, os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._preload: tuple[Any, ...] = ()

    def preload(self, refs: Sequence[Any]) -> None:
        """Steps each new worker imports as it starts (optional hook the runner calls).

        Workers start side by side when the pool opens, so a pipeline's imports
        (pandas, LightGBM, the user's module) are paid once, in parallel, not by
        whichever step first lands on a cold worker.
        """
        self._preload = tuple(dict.fromkeys(refs))

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None or getattr(self._pool, "_broken", False):
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = ProcessPoolExecutor(
                    self.max_workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_warm_worker,
                    initargs=(self._preload,),
                )
                # start every worker now, side by side, rather than one by one on demand
                for _ in range(self.max_workers):
                    self._pool.submit(int)
            return self._pool

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, float] | None = None, **kwargs: Any
    ) -> Future[T]:
        try:
            inner = self._current().submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            inner = self._current().submit(fn, *args, **kwargs)
        outer: Future[T] = Future()

        def relay(done: Future[T]) -> None:
            exc = done.exception()
            if isinstance(exc, BrokenProcessPool):
                outer.set_exception(WorkerLost(f"the worker process died: {exc}"))
            elif exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(done.result())

        inner.add_done_callback(relay)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait, cancel_futures=cancel_futures)


def _warm_worker(refs: tuple[Any, ...] = ()) -> None:
    """Import what the steps need once, when the worker starts; never fails the worker."""
    worker = importlib.import_module("conveyor.pipelines.worker")
    importlib.import_module("conveyor.tracking.fluent")
    for ref in refs:
        try:
            worker.resolve_step(ref)
        except Exception:  # the step's own attempt reports the error, with its run
            continue


# name -> "module:factory"; the factory takes the full spec text
_EXECUTORS: dict[str, str] = {
    "process": "conveyor.pipelines.executors:_process",
    "inprocess": "conveyor.pipelines.executors:_inprocess",
    "ray": "conveyor.pipelines.ray_executor:open_ray_executor",
}


def _process(spec: str) -> Executor:
    return ProcessExecutor()


def _inprocess(spec: str) -> Executor:
    return InProcessExecutor()


def open_executor(spec: str | Executor | None) -> tuple[Executor, bool]:
    """The executor ``spec`` names, and whether the caller owns it (must shut it down).

    ``None`` means the local process pool; ``"ray://host:port"`` a Ray cluster.
    """
    if spec is None:
        spec = "process"
    if not isinstance(spec, str):
        if isinstance(spec, Executor):
            return spec, False
        raise InvalidArgument(
            f"executor must be a name or have submit()/shutdown(), got {type(spec).__name__}",
            field="executor",
        )
    name = "ray" if spec.startswith("ray://") else spec
    target = _EXECUTORS.get(name)
    if target is None:
        raise InvalidArgument(
            f"unknown executor {spec!r}; expected one of {', '.join(sorted(_EXECUTORS))} or ray://host:port",
            field="executor",
        )
    module, factory = target.split(":")
    return getattr(importlib.import_module(module), factory)(spec), True
