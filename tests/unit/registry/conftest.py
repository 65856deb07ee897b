"""Real data for registry tests: small slices of the example datasets, real models on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"
BIKE_FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
                 "temp", "atemp", "hum", "windspeed"]
ADULT_NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]


@pytest.fixture(scope="session")
def bikes() -> dict[str, Any]:
    """Bike sharing, hourly: regression on ``cnt`` (train / holdout split by row)."""
    import pandas as pd

    frame = pd.read_csv(DATA / "bike_sharing_hourly.csv")
    sample = frame.sample(n=3000, random_state=7).reset_index(drop=True)
    train, holdout = sample.iloc[:2000], sample.iloc[2000:].reset_index(drop=True)
    return {"X": train[BIKE_FEATURES], "y": train["cnt"], "holdout": holdout[[*BIKE_FEATURES, "cnt"]]}


@pytest.fixture(scope="session")
def adult() -> dict[str, Any]:
    """Adult census: classification of ``income`` (>50K = 1); ``sex`` kept for slices."""
    import pandas as pd

    frame = pd.read_csv(DATA / "adult_census.csv", na_values="?", skipinitialspace=True)
    sample = frame.sample(n=3000, random_state=11).reset_index(drop=True)
    sample["label"] = (sample["income"].str.strip().str.startswith(">50K")).astype(int)
    train, holdout = sample.iloc[:2000], sample.iloc[2000:].reset_index(drop=True)
    return {
        "X": train[ADULT_NUMERIC], "y": train["label"],
        "holdout": holdout[[*ADULT_NUMERIC, "sex", "label"]],
        "raw": train,
    }


@pytest.fixture(scope="session")
def lgbm_regressor(bikes: dict[str, Any]) -> Any:
    import lightgbm as lgb

    return lgb.LGBMRegressor(n_estimators=20, num_leaves=15, verbose=-1, random_state=0).fit(bikes["X"], bikes["y"])
