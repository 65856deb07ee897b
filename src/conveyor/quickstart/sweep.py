"""The quickstart: a small LightGBM sweep on real data, tracked end to end.

``conveyor quickstart --sweep`` calls :func:`run_sweep`. It
trains a few gradient-boosted regressors on the UCI Bike Sharing data shipped in
``examples/data/``, logs each one as a child of a ``sweep`` run (params, the
validation curve, final scores, a feature-importance file) and prints the runs
best first, with where they were stored and what to try next.

Example::

    from conveyor.quickstart.sweep import run_sweep

    runs = run_sweep(runs=2)                   # embedded store under ~/.conveyor
    print(min(r.metrics["rmse"] for r in runs))

pandas and LightGBM (the ``ml`` extra) are imported only when it runs.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import conveyor as cv
from conveyor.core.errors import InvalidArgument, MissingExtra, NotFound

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.core.entities import Run

DATA_FILE = Path("examples/data/bike_sharing_hourly.csv")
DATA_SOURCE = "https://archive.ics.uci.edu/dataset/275/bike+sharing+dataset"
FEATURES = (
    "season", "yr", "mnth", "hr", "holiday", "weekday", "workingday",
    "weathersit", "temp", "atemp", "hum", "windspeed",
)  # fmt: skip
TARGET = "cnt"
VALIDATION_MONTHS = 3
GRID = tuple(itertools.product((15, 31, 63), (0.05, 0.1)))  # (num_leaves, learning_rate)
N_ESTIMATORS = 200
EARLY_STOPPING_ROUNDS = 20
N_JOBS = 2
IMPORTANCE_FILE = "feature_importance.json"
CURVE_METRIC = "valid_rmse"


def run_sweep(
    data: Path | str | None = None,
    runs: int = 6,
    project: str = "quickstart",
    out: TextIO = sys.stdout,
) -> list[Run]:
    """Train ``runs`` LightGBM models on the bike-sharing data and track them in ``project``.

    Args:
        data: The hourly bike-sharing CSV; by default ``examples/data/`` under the
            current folder, then under the repository this module is installed from.
        runs: How many points of the hyper-parameter grid to train (1 to 6).
        project: The project the runs are logged to; created on first use.
        out: Where the summary is printed.

    Returns:
        The child runs, finished, in training order.

    Raises:
        NotFound: The data file cannot be found (pass ``--data``).
        InvalidArgument: ``runs`` is outside the grid, or the CSV lacks a column.
        MissingExtra: pandas or LightGBM is not installed.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= len(GRID):
        raise InvalidArgument(f"runs must be between 1 and {len(GRID)}, got {runs!r}", field="runs")
    path = find_data(data)
    pd, lgb = _import_ml()
    from conveyor.stores.artifacts.cas import hash_file

    frame = _load(pd, path)
    train, valid = _time_split(pd, frame, VALIDATION_MONTHS)
    digest, _size = hash_file(path)

    cv.set_project(project)
    train_set = lgb.Dataset(train[list(FEATURES)], label=train[TARGET], free_raw_data=False)
    valid_set = lgb.Dataset(valid[list(FEATURES)], label=valid[TARGET], reference=train_set)
    with cv.start_run(name="sweep", tags={"kind": "sweep"}) as sweep:
        cv.log_params(
            {
                "dataset": path.name,
                "dataset_digest": digest,
                "dataset_rows": len(frame),
                "features": ",".join(FEATURES),
                "target": TARGET,
                "train_rows": len(train),
                "valid_rows": len(valid),
                "valid_from": valid["dteday"].min().date().isoformat(),
                "runs": runs,
            }
        )
        child_ids = [
            _train_one(lgb, train_set, valid_set, valid, num_leaves, learning_rate)
            for num_leaves, learning_rate in GRID[:runs]
        ]
        children = [cv.get_run(run_id) for run_id in child_ids]
        best = min(children, key=lambda r: r.metrics["rmse"])
        cv.set_tag("best_run_id", best.id)
        cv.log_metric("best_rmse", best.metrics["rmse"])

    ranked = cv.search_runs(
        project=project,
        filter=f"tags.model = 'lightgbm' and attributes.parent_id = '{sweep.id}'",
        order_by=["metrics.rmse ASC"],
    )
    _report(out, project, sweep.id, best.id, ranked, train, valid)
    return children


def find_data(data: Path | str | None = None) -> Path:
    """The quickstart CSV: ``data`` if given, else ``examples/data/`` here or in the repository."""
    if data is not None:
        path = Path(data).expanduser()
        if not path.is_file():
            raise NotFound(
                f"quickstart data {path} is not a file; pass --data with the path to "
                f"the hourly bike-sharing CSV ({DATA_SOURCE}, file hour.csv)",
                field="data",
            )
        return path
    candidates = [Path.cwd() / DATA_FILE, Path(__file__).resolve().parents[3] / DATA_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise NotFound(
        f"cannot find the quickstart data (looked at {looked}); pass --data with the path "
        f"to the hourly bike-sharing CSV ({DATA_SOURCE}, file hour.csv)",
        field="data",
    )


def _import_ml() -> tuple[Any, Any]:
    try:
        import lightgbm
        import pandas
    except ImportError as exc:
        raise MissingExtra(
            f"the quickstart needs pandas and LightGBM ({exc.name} is missing); "
            "install them with: pip install 'conveyor-mlops[ml]'"
        ) from exc
    return pandas, lightgbm


def _load(pd: Any, path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, parse_dates=["dteday"])
    missing = [c for c in ("dteday", *FEATURES, TARGET) if c not in frame.columns]
    if missing:
        raise InvalidArgument(
            f"{path} lacks the column(s) {', '.join(missing)}; "
            f"is it the hourly bike-sharing CSV from {DATA_SOURCE}?",
            field="data",
        )
    return frame.sort_values(["dteday", "hr"], kind="stable").reset_index(drop=True)


def _time_split(pd: Any, frame: pd.DataFrame, months: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    # This is a forecasting problem: a deployed model predicts hours that come after
    # everything it learned from. A shuffled split would let the model peek at the
    # future (neighbouring hours, the growth from 2011 to 2012) and report a score it
    # can never reach in production, so the last months are held out, in order.
    cutoff = frame["dteday"].max() - pd.DateOffset(months=months)
    later = frame["dteday"] > cutoff
    return frame[~later], frame[later]


def _train_one(
    lgb: Any,
    train_set: Any,
    valid_set: Any,
    valid: pd.DataFrame,
    num_leaves: int,
    learning_rate: float,
) -> str:
    """Train one model as a child run of the active run; returns its id."""
    params = {
        "objective": "regression",
        "metric": "rmse",
        "num_leaves": num_leaves,
        "learning_rate": learning_rate,
        "num_threads": N_JOBS,
        "seed": 0,
        "verbose": -1,
    }
    name = f"lgbm-leaves{num_leaves}-lr{learning_rate}"
    with cv.start_run(name=name, nested=True, tags={"model": "lightgbm"}) as run:
        cv.log_params(
            {
                "num_leaves": num_leaves,
                "learning_rate": learning_rate,
                "n_estimators": N_ESTIMATORS,
                "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
            }
        )
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=N_ESTIMATORS,
            valid_sets=[valid_set],
            valid_names=["valid"],
            callbacks=[
                lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False),
                _log_curve(run.id),
            ],
        )
        predicted = booster.predict(valid[list(FEATURES)], num_iteration=booster.best_iteration)
        cv.log_metrics(_scores(valid[TARGET].to_numpy(dtype=float), predicted))
        cv.log_metric("best_iteration", booster.best_iteration)
        cv.log_dict(_importances(booster), IMPORTANCE_FILE)
    return run.id


def _log_curve(run_id: str) -> Callable[[Any], None]:
    """A LightGBM callback logging the validation rmse of every boosting round."""

    def callback(env: Any) -> None:
        for _data, metric, value, *_ in env.evaluation_result_list:
            if metric == "rmse":
                cv.log_metric(CURVE_METRIC, float(value), step=env.iteration + 1, run_id=run_id)

    return callback


def _scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = predicted - actual
    spread = float(((actual - actual.mean()) ** 2).sum())
    return {
        "rmse": float((error**2).mean() ** 0.5),
        "mae": float(abs(error).mean()),
        "r2": 1.0 - float((error**2).sum()) / spread if spread else float("nan"),
    }


def _importances(booster: Any) -> dict[str, dict[str, float]]:
    """Gain and split counts per feature, largest gain first."""
    gain = booster.feature_importance(importance_type="gain")
    split = booster.feature_importance(importance_type="split")
    rows = sorted(zip(booster.feature_name(), gain, split, strict=True), key=lambda r: -r[1])
    return {name: {"gain": round(float(g), 3), "split": int(s)} for name, g, s in rows}


def _report(
    out: TextIO,
    project: str,
    sweep_id: str,
    best_id: str,
    ranked: list[Run],
    train: pd.DataFrame,
    valid: pd.DataFrame,
) -> None:
    def span(part: pd.DataFrame) -> str:
        first, last = part["dteday"].min().date(), part["dteday"].max().date()
        return f"{len(part):,} hours ({first} to {last})"

    def param(run: Run, key: str) -> str:
        return run.params.get(key, "-")

    def metric(run: Run, key: str) -> str:
        value = run.metrics.get(key)
        return "-" if value is None else f"{value:.3f}" if key == "r2" else f"{value:.2f}"

    print(f"Trained on {span(train)}; validated on {span(valid)}.", file=out)
    print(f"Sweep run {sweep_id} in project {project!r}, best first:\n", file=out)
    rows = [
        (r.id, r.name, param(r, "num_leaves"), param(r, "learning_rate"),
         metric(r, "rmse"), metric(r, "mae"), metric(r, "r2"),
         "* best" if r.id == best_id else "")
        for r in ranked
    ]  # fmt: skip
    header = ("run id", "name", "num_leaves", "learning_rate", "rmse", "mae", "r2", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            cell.ljust(width) if i < 2 or i == len(row) - 1 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
    # The client, not conveyor's public surface, knows which stores this process uses.
    from conveyor.tracking.fluent import client

    settings = client().settings
    print("\nStored in", file=out)
    print(f"  metadata   {settings.metadata_uri}", file=out)
    print(f"  artifacts  {settings.artifacts_uri}", file=out)
    print("\nNext", file=out)
    print(f"  conveyor runs list --project {project}", file=out)
    print(f"  conveyor runs show {best_id}", file=out)
