"""``validate_step``: tainted data fails the pipeline at the check, with the report kept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import conveyor as cv
from conveyor.data import validate_step
from conveyor.pipelines import StepStatus, pipeline, step

SUITE = Path(__file__).resolve().parents[3] / "examples" / "bikes" / "suite.yaml"
DATA = Path(__file__).resolve().parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"


@step
def read(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


@step
def mean_count(df: pd.DataFrame) -> float:
    return float(df["cnt"].mean())


@pipeline
def checked(path: str, suite: str):
    return mean_count(validate_step(read(path), suite=suite))


def test_clean_data_passes_and_tainted_data_stops_the_pipeline(conveyor_home: Path, tmp_path: Path) -> None:
    good = checked.run(path=str(DATA), suite=str(SUITE), executor="inprocess")
    assert good.ok and good["mean_count"].load() > 100
    bad_rows = pd.read_csv(DATA).head(2000)
    bad_rows.loc[5, "hr"] = 31
    bad = tmp_path / "bad.csv"
    bad_rows.to_csv(bad, index=False)
    run = checked.run(path=str(bad), suite=str(SUITE), executor="inprocess")
    assert run["validate_step"].status is StepStatus.FAILED
    assert "hr range" in (run["validate_step"].error or "")
    assert run["mean_count"].status is StepStatus.SKIPPED
    step_run = cv.get_run(run["validate_step"].run_id)
    assert any(a.path.startswith("data-checks/") for a in step_run.artifacts)  # the report, kept
