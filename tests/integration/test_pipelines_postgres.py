"""The same runner on PostgreSQL: runs, cache hits and resume go through the shared store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.pipelines import StepStatus, pipeline, resume, step


@step
def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"v": range(n)})


@step
def checked(df: pd.DataFrame, marker: str) -> int:
    if not Path(marker).exists():
        raise RuntimeError("not yet")
    cv.log_metric("rows", len(df))
    return len(df)


@pipeline
def pg_pipeline(n: int, marker: str):
    return checked(frame(n), marker)


def test_cache_and_resume_on_postgres(postgres_uri: str, tmp_path: Path, conveyor_home: Path) -> None:
    cv.configure(uri=postgres_uri, artifacts=str(tmp_path / "artifacts"))
    cv.set_project(f"pg-{uuid.uuid4().hex[:8]}")
    marker = tmp_path / "ready"
    failed = pg_pipeline.run(n=3, marker=str(marker), executor="inprocess")
    assert failed.status is RunStatus.FAILED
    marker.touch()
    resumed = resume(failed.id, executor="inprocess")
    assert resumed["frame"].status is StepStatus.REUSED and resumed.output() == 3
    again = pg_pipeline.run(n=3, marker=str(marker), executor="inprocess")
    assert {s.status for s in again.steps.values()} == {StepStatus.CACHED}
    assert cv.get_run(again.id).metrics["rows"] == 3.0
