"""The bike-sharing example end to end: real LightGBM on real data, cached re-runs, a sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.pipelines import ProcessExecutor, StepStatus
from conveyor.pipelines.loading import load_pipeline

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bikes" / "pipeline.py"


@pytest.fixture
def training(conveyor_home: Path):  # noqa: ANN201
    return load_pipeline(f"{EXAMPLE}:training")


def test_the_example_trains_a_model_that_beats_the_mean(training) -> None:  # noqa: ANN001
    run = training.run(rounds=60, executor="inprocess")
    assert run.status is RunStatus.FINISHED, {n: s.error for n, s in run.steps.items()}
    scores, model = run.output(0), run.output(1)
    features = model.feature_name()
    assert "casual" not in features and "registered" not in features and "cnt" not in features
    tr, va = run["split_by_time"].load(0), run["split_by_time"].load(1)
    assert tr["timestamp"].max() < va["timestamp"].min()  # split by time, not at random
    baseline = float(np.sqrt(np.mean((va["cnt"] - tr["cnt"].mean()) ** 2)))
    assert scores["rmse"] < 0.5 * baseline and scores["r2"] > 0.7
    assert run.metrics["rmse"] == scores["rmse"]
    again = training.run(rounds=60, executor="inprocess")
    assert {s.status for s in again.steps.values()} == {StepStatus.CACHED}


def test_the_validate_step_stops_tainted_data(training, tmp_path: Path) -> None:  # noqa: ANN001
    df = pd.read_csv(EXAMPLE.parents[1] / "data" / "bike_sharing_hourly.csv").head(1500)
    df.loc[3, "cnt"] = -5
    bad = tmp_path / "tainted.csv"
    df.to_csv(bad, index=False)
    run = training.run(path=str(bad), rounds=5, executor="inprocess")
    assert run["validate"].status is StepStatus.FAILED
    assert "cnt range: 1 values outside [0, 10000]" in run["validate"].error  # the suite's report
    assert run["train"].status is StepStatus.SKIPPED


def test_a_sweep_shares_upstream_steps_and_orders_by_rmse(training) -> None:  # noqa: ANN001
    executor = ProcessExecutor(max_workers=2)
    try:
        runs = training.sweep(lr=[0.05, 0.2], num_leaves=[15], rounds=40, order_by="metrics.rmse", executor=executor)
    finally:
        executor.shutdown()
    assert len(runs) == 2 and all(r.ok for r in runs)
    assert runs[0].metrics["rmse"] <= runs[1].metrics["rmse"]
    for name in ("load", "validate", "features", "split_by_time"):
        assert sorted(r[name].status.value for r in runs) == ["cached", "succeeded"], name
    assert {r["train"].status for r in runs} == {StepStatus.SUCCEEDED}
    assert {r.params["lr"] for r in runs} == {0.05, 0.2}
    assert len(cv.search_runs(filter="tags.`conveyor.pipeline` = 'training'")) == 2


def test_release_registers_the_trained_model_with_its_lineage(conveyor_home: Path) -> None:
    release = load_pipeline(f"{EXAMPLE}:release")
    run = release.run(rounds=30, executor="inprocess")
    assert run.ok, run
    version = run["register"].load()
    mv = cv.models.get_version("bike-demand", version)
    assert mv.flavour == "lightgbm" and mv.run_id == run["register"].run_id
    model = cv.load_model(mv.uri)
    valid = run["split_by_time"].load(1)
    assert len(model.predict(valid.drop(columns=["timestamp", "cnt"]))) == len(valid)
    graph = cv.models.lineage(mv.uri)
    assert any(e["relation"] == "produced" for e in graph.edges)  # run -> model version
