"""The quickstart, end to end: real data, real LightGBM, a fresh SQLite store."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd  # the dev extras install pandas and LightGBM: a missing one must fail, not skip
import pytest

import conveyor as cv
from conveyor.core.errors import NotFound
from conveyor.quickstart.sweep import (
    CURVE_METRIC,
    IMPORTANCE_FILE,
    TARGET,
    VALIDATION_MONTHS,
    find_data,
    run_sweep,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    cv.configure(uri=f"sqlite:///{tmp_path}/c.db", artifacts=str(tmp_path / "a"))
    yield tmp_path
    cv.configure()


def _mean_baseline_rmse() -> float:
    """RMSE on the validation months of always predicting the training mean."""
    frame = pd.read_csv(find_data(), parse_dates=["dteday"])
    cutoff = frame["dteday"].max() - pd.DateOffset(months=VALIDATION_MONTHS)
    train, valid = frame[frame["dteday"] <= cutoff], frame[frame["dteday"] > cutoff]
    return float(((valid[TARGET] - train[TARGET].mean()) ** 2).mean() ** 0.5)


def test_quickstart_tracks_a_sweep_of_real_models(store: Path) -> None:
    out = io.StringIO()

    runs = run_sweep(runs=2, out=out)

    assert len(runs) == 2
    sweep = cv.get_run(runs[0].parent_id)
    assert sweep.name == "sweep"
    assert sweep.project == "quickstart"
    assert sweep.params["dataset_digest"].startswith("blake3:")
    baseline = _mean_baseline_rmse()  # about 204 rides an hour
    for run in runs:
        stored = cv.get_run(run.id)
        assert stored.status == cv.RunStatus.FINISHED
        assert stored.parent_id == sweep.id
        assert stored.tags["model"] == "lightgbm"
        # The models reach about 70-75; far better than the mean, and than 100.
        assert stored.metrics["rmse"] < min(100.0, baseline / 2)
        assert stored.metrics["r2"] > 0.8
        curve = cv.get_metric_history(run.id, CURVE_METRIC)
        steps = [p.step for p in curve]
        assert len(curve) > 1
        assert steps == sorted(steps) and len(set(steps)) == len(steps)
        assert curve[-1].value < curve[0].value  # boosting lowers the validation error
        assert IMPORTANCE_FILE in [a.path for a in stored.artifacts]

    best = min(runs, key=lambda r: r.metrics["rmse"])
    assert sweep.tags["best_run_id"] == best.id
    assert sweep.metrics["best_rmse"] == pytest.approx(best.metrics["rmse"])
    text = out.getvalue()
    header = next(line for line in text.splitlines() if line.startswith("run id"))
    assert header.split() == [
        "run", "id", "name", "num_leaves", "learning_rate", "rmse", "mae", "r2",
    ]  # fmt: skip
    assert f"{best.id}  {best.name}" in text
    assert f"conveyor runs show {best.id}" in text
    assert f"sqlite:///{store}/c.db" in text


def test_quickstart_names_the_flag_when_the_data_is_missing(store: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="--data"):
        run_sweep(data=tmp_path / "nowhere.csv", runs=1)
