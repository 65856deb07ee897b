"""Pipelines on a real local Ray instance: tasks with resources, retries, artifacts via the store."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.core.errors import BackendUnavailable
from conveyor.pipelines import StepStatus, pipeline, step
from conveyor.testing.ray import ray_local  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


@step(resources={"cpus": 1})
def make(n: int) -> np.ndarray:
    cv.log_metric("worker_pid", os.getpid())
    return np.arange(n, dtype=np.float64)


@step(retries=2, retry_delay=0)
def flaky_sum(values: np.ndarray, marker: str) -> float:
    attempts = int(Path(marker).read_text()) + 1 if Path(marker).exists() else 1
    Path(marker).write_text(str(attempts))
    if attempts == 1:
        raise ConnectionError("lost the connection on the first attempt")
    return float(values.sum())


@step(resources={"cpus": 64})
def greedy() -> int:
    return 1


@step(retries=1, retry_delay=0)
def crash_once(marker: str) -> str:
    if not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@pipeline
def crashing(marker: str):
    return crash_once(marker)


@pipeline
def on_ray(n: int, marker: str):
    return flaky_sum(make(n), marker)


@pipeline
def too_big():
    greedy()


def test_steps_run_as_ray_tasks_and_a_failing_step_is_retried(
    ray_local: Any, tmp_path: Path, conveyor_home: Path  # noqa: F811
) -> None:
    run = on_ray.run(n=5, marker=str(tmp_path / "attempts"), executor="ray")
    assert run.status is RunStatus.FINISHED, {n: s.error for n, s in run.steps.items()}
    assert run.output() == 10.0
    assert run["flaky_sum"].attempts == 2
    child = cv.get_run(run["make"].run_id or "")
    assert child.metrics["worker_pid"] != os.getpid()  # ran in a Ray worker, logged to its child run
    again = on_ray.run(n=5, marker=str(tmp_path / "attempts"), executor="ray")
    assert {s.status for s in again.steps.values()} == {StepStatus.CACHED}


def test_a_ray_worker_killed_mid_step_is_retried(
    ray_local: Any, tmp_path: Path, conveyor_home: Path  # noqa: F811
) -> None:
    run = crashing.run(marker=str(tmp_path / "crashed"), executor="ray")
    assert run.status is RunStatus.FINISHED, run["crash_once"].error
    assert run["crash_once"].attempts == 2 and run.output() == "survived"


def test_a_step_asking_more_than_the_cluster_has_fails_clearly(
    ray_local: Any, conveyor_home: Path  # noqa: F811
) -> None:
    run = too_big.run(executor="ray")
    assert run["greedy"].status is StepStatus.FAILED
    assert "asks for 64 cpus but the Ray cluster has 2" in run["greedy"].error


def test_an_unreachable_ray_address_is_a_clear_error(conveyor_home: Path) -> None:
    with pytest.raises(BackendUnavailable, match="cannot reach the Ray cluster at ray://127.0.0.1:9"):
        on_ray.run(n=1, marker="unused", executor="ray://127.0.0.1:9")
    assert len(cv.search_runs()) == 0  # nothing was recorded
