"""Bike rentals: load → validate → features → split by time → train LightGBM → evaluate.

Run it::

    conveyor pipelines run examples/bikes/pipeline.py:training -p lr=0.1
    conveyor pipelines graph examples/bikes/pipeline.py:training --format mermaid

or from Python::

    from examples.bikes.pipeline import training      # or load it by path
    run = training.run(lr=0.1)
    run.metrics["rmse"]

The target is ``cnt`` (rentals per hour). ``casual`` and ``registered`` add up to
``cnt`` and are never features. The last ``valid_months`` months are held out,
as a forecast would be: ridership grows by about 60% from 2011 to 2012, so a
random split would flatter the model.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

import conveyor as cv
from conveyor.pipelines import pipeline, step

DATA = str(Path(__file__).resolve().parents[1] / "data" / "bike_sharing_hourly.csv")
TARGET = "cnt"
LEAKS = ("casual", "registered")  # parts of the target
CALENDAR = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday"]
WEATHER = ["weathersit", "temp", "atemp", "hum", "windspeed"]
SUITE = str(Path(__file__).resolve().with_name("suite.yaml"))


@step(files=("path",))
def load(path: str) -> pd.DataFrame:
    """The hourly table, with a timestamp per row, in time order."""
    df = pd.read_csv(path)
    df["timestamp"] = pd.to_datetime(df["dteday"]) + pd.to_timedelta(df["hr"], unit="h")
    return df.sort_values("timestamp").reset_index(drop=True)


@step(files=("suite",))
def validate(df: pd.DataFrame, suite: str = SUITE) -> pd.DataFrame:
    """Stop tainted data here: the checks of ``suite.yaml`` (types, nulls, ranges, codes, row count).

    A failure fails the step with the data-validation report (stored with the
    step's run); the suite file is part of the cache key.
    """
    cv.data.validate_or_raise(df, cv.data.Suite.load(suite))
    cv.log_metric("rows", len(df))
    return df


@step
def features(df: pd.DataFrame, window: int = 24) -> pd.DataFrame:
    """Calendar and weather columns plus the rentals ``window`` hours earlier (known at forecast time)."""
    out = df[["timestamp", *CALENDAR, *WEATHER, TARGET]].copy()
    out[f"cnt_lag_{window}"] = df[TARGET].shift(window)
    out[f"cnt_mean_{window}"] = df[TARGET].shift(window).rolling(window, min_periods=1).mean()
    return out.dropna().reset_index(drop=True)


@step
def split_by_time(df: pd.DataFrame, valid_months: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Everything before the last ``valid_months`` months trains; those months validate."""
    cutoff = df["timestamp"].max() - pd.DateOffset(months=valid_months)
    return df[df["timestamp"] <= cutoff], df[df["timestamp"] > cutoff]


def _xy(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    x = df.drop(columns=["timestamp", TARGET, *[c for c in LEAKS if c in df.columns]])
    return x, df[TARGET]


@step
def train(train_df: pd.DataFrame, lr: float = 0.05, num_leaves: int = 31, rounds: int = 300) -> lgb.Booster:
    x, y = _xy(train_df)
    params = {
        "objective": "regression", "learning_rate": lr, "num_leaves": num_leaves,
        "verbosity": -1, "seed": 7, "deterministic": True, "num_threads": 1,
    }
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds)


@step
def evaluate(model: lgb.Booster, valid_df: pd.DataFrame) -> dict:
    """RMSE, MAE and R² on the held-out months, logged as metrics and returned."""
    x, y = _xy(valid_df)
    predicted = model.predict(x)
    error = y.to_numpy() - predicted
    scores = {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(1 - np.sum(error**2) / np.sum((y - y.mean()) ** 2)),
    }
    cv.log_metrics(scores)
    return scores


@step
def register(model: lgb.Booster, valid_df: pd.DataFrame, scores: dict, name: str = "bike-demand") -> int:
    """Log the model to the registry (signature from the validation rows); returns its version.

    The scores are logged on this step's run too: it is the run the version
    points to, so a monitor finds the version's baseline there.
    """
    x, _ = _xy(valid_df)
    cv.log_metrics(scores)
    mv = cv.log_model(model, name=name, input_example=x.head(5), description=f"rmse {scores['rmse']:.1f}")
    return mv.version


def _fit(path: str, lr: float, num_leaves: int, rounds: int, window: int, valid_months: int):  # noqa: ANN202
    """The shared wiring of both pipelines (called while they are traced)."""
    raw = validate(load(path))
    tr, va = split_by_time(features(raw, window=window), valid_months=valid_months)
    model = train(tr, lr=lr, num_leaves=num_leaves, rounds=rounds)
    return model, va


@pipeline
def training(
    path: str = DATA,
    lr: float = 0.05,
    num_leaves: int = 31,
    rounds: int = 300,
    window: int = 24,
    valid_months: int = 3,
):
    model, va = _fit(path, lr, num_leaves, rounds, window, valid_months)
    return evaluate(model, va), model


@pipeline
def release(
    path: str = DATA,
    lr: float = 0.05,
    num_leaves: int = 31,
    rounds: int = 300,
    window: int = 24,
    valid_months: int = 3,
    name: str = "bike-demand",
):
    """``training``, then the model goes to the registry as the next version of ``name``."""
    model, va = _fit(path, lr, num_leaves, rounds, window, valid_months)
    return register(model, va, evaluate(model, va), name=name)


if __name__ == "__main__":
    run = training.run()
    print(run.status, run.metrics)
