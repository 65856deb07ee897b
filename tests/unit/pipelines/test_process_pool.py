"""The default executor: spawned worker processes, in parallel, surviving a killed worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.pipelines import ProcessExecutor, StepStatus, pipeline, step

pytestmark = pytest.mark.slow


@step
def meet(me: str, other: str, folder: str) -> str:
    """Finishes only if the other step runs at the same time (gives up after 60 s)."""
    Path(folder, me).touch()
    deadline = time.monotonic() + 60
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{other} never started while {me} ran: the steps ran one by one")
        time.sleep(0.02)
    cv.log_metric("pid", os.getpid())
    return me


@pipeline
def rendezvous(folder: str):
    return meet("a", "b", folder), meet("b", "a", folder)


def test_independent_steps_run_in_parallel_worker_processes(tmp_path: Path, conveyor_home: Path) -> None:
    executor = ProcessExecutor(max_workers=2)
    try:
        run = rendezvous.run(folder=str(tmp_path), executor=executor)
    finally:
        executor.shutdown()
    assert run.status is RunStatus.FINISHED, {n: s.error for n, s in run.steps.items()}
    assert (run.output(0), run.output(1)) == ("a", "b")
    pids = {cv.get_run(s.run_id).metrics["pid"] for s in run.steps.values() if s.run_id}
    assert len(pids) == 2 and os.getpid() not in pids


@step(retries=1, retry_delay=0)
def die_once(marker: str) -> int:
    if not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return 1


@step
def die_always() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


@pipeline
def dying(marker: str):
    return die_once(marker)


@pipeline
def doomed():
    return die_always()


def test_a_killed_worker_is_retried(tmp_path: Path, conveyor_home: Path) -> None:
    run = dying.run(marker=str(tmp_path / "died"), executor="process")
    assert run.status is RunStatus.FINISHED
    assert run["die_once"].attempts == 2 and run.output() == 1


def test_a_killed_worker_without_retries_is_failed_never_finished(conveyor_home: Path) -> None:
    run = doomed.run(executor="process")
    assert run["die_always"].status is StepStatus.FAILED
    assert "WorkerLost" in run["die_always"].error
    child = cv.get_run(run["die_always"].run_id or "")
    assert child.status is RunStatus.FAILED
    assert "conveyor.cache.entry" not in child.tags
