"""The executor seam: chosen by name, or any object shaped like concurrent.futures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.entities import RunStatus
from conveyor.core.errors import InvalidArgument
from conveyor.pipelines import Executor, InProcessExecutor, pipeline, step
from conveyor.pipelines.executors import open_executor


class ThreadExecutor:
    """A user's own executor: threads, recording the resources each step asked for."""

    max_workers = 2

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.max_workers)
        self.asked: list[dict[str, float]] = []

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, resources: Mapping[str, float] | None = None, **kwargs: Any
    ) -> Future[Any]:
        self.asked.append(dict(resources or {}))
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait, cancel_futures=cancel_futures)


@step(resources={"cpus": 1.5})
def heavy(x: int) -> int:
    return x * 10


@step
def light(x: int) -> int:
    return x + 1


@pipeline
def mixed(x: int = 1):
    return light(heavy(x))


def test_any_object_with_the_protocol_runs_steps_and_sees_their_resources(conveyor_home: Path) -> None:
    executor = ThreadExecutor()
    assert isinstance(executor, Executor)
    try:
        run = mixed.run(x=2, executor=executor)
    finally:
        executor.shutdown()
    assert run.status is RunStatus.FINISHED and run.output() == 21
    assert executor.asked == [{"cpus": 1.5}, {}]


def test_executors_are_chosen_by_name() -> None:
    executor, owned = open_executor("inprocess")
    assert isinstance(executor, InProcessExecutor) and owned
    mine = InProcessExecutor()
    assert open_executor(mine) == (mine, False)  # the caller's own: not shut down by the runner


def test_an_object_without_the_protocol_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="executor must be a name or have submit"):
        open_executor(42)  # type: ignore[arg-type]


def test_the_in_process_executor_hands_back_failures_as_futures() -> None:
    future = InProcessExecutor().submit(int, "x")
    assert isinstance(future.exception(), ValueError)
