"""Shared parts of the automation tests: a small real pipeline, a project with data, live traffic.

The fixtures ``bikes`` and ``world`` are registered by ``conftest.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.automation.agent import Agent
from conveyor.core.ids import new_id, now_ms
from conveyor.stores.predictions import PredictionLog
from conveyor.tracking import fluent

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "hr", "workingday", "weathersit", "temp", "hum"]

PIPELINE = textwrap.dedent('''
    import time

    import pandas as pd
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import Ridge

    import conveyor as cv
    from conveyor.pipelines import pipeline, step

    FEATURES = {features!r}


    @step(files=("path",))
    def load(path: str) -> pd.DataFrame:
        return pd.read_csv(path)


    @step
    def fit(df: pd.DataFrame, kind: str = "ridge", fail: bool = False, pause: float = 0.0) -> int:
        if fail:
            raise RuntimeError("training exploded")
        time.sleep(pause)
        x, y = df[FEATURES], df["cnt"]
        model = Ridge(alpha=1.0) if kind == "ridge" else DummyRegressor(strategy="constant", constant=1.0)
        model.fit(x, y)
        pred = model.predict(x)
        cv.log_metric("rmse", float(((pred - y) ** 2).mean() ** 0.5))
        return cv.log_model(model, name="toy", input_example=x.head(3)).version


    @pipeline
    def release(path: str, kind: str = "ridge", fail: bool = False, pause: float = 0.0):
        return fit(load(path), kind=kind, fail=fail, pause=pause)
''').format(features=FEATURES)


@pytest.fixture
def bikes() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture
def world(conveyor_home: Path, tmp_path: Path, bikes: pd.DataFrame) -> dict[str, Any]:
    """A project with the toy pipeline, data version 1 (Jan-Feb 2011) and a holdout (March 2011)."""
    cv.set_project("auto")
    (tmp_path / "toy.py").write_text(PIPELINE)
    jan_feb = bikes[bikes["dteday"] < "2011-03-01"]
    jan_feb.to_csv(tmp_path / "v1.csv", index=False)
    cv.data.add(tmp_path / "v1.csv", name="bikes")
    march = bikes[bikes["dteday"].str.startswith("2011-03")]
    cv.data.log(march[[*FEATURES, "cnt"]], name="holdout")
    return {"dir": tmp_path, "pipeline": f"{tmp_path / 'toy.py'}:release", "bikes": bikes, "home": conveyor_home}


def spec(world: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base = {"name": "retrain", "pipeline": world["pipeline"], "data": {"dataset": "bikes"},
            "on": ["new_data:bikes", "manual"], "executor": "inprocess",
            "promote": {"model": "toy", "gate": {"rules": ["rmse <= champion.rmse * 1.05"],
                                                 "dataset": "holdout@latest", "target": "cnt"}}}
    return base | extra


def agent(**options: Any) -> Agent:
    return cv.automation.build_agent(**({"interval": 0.05, "lease_ttl": 5.0} | options))


def add_data(world: dict[str, Any], until: str, name: str) -> str:
    part = world["bikes"][world["bikes"]["dteday"] < until]
    part.to_csv(world["dir"] / f"{name}.csv", index=False)
    return cv.data.add(world["dir"] / f"{name}.csv", name="bikes").ref


def champion() -> int | None:
    return cv.models.get_model("toy").aliases.get("champion")


def serve_rows(version: int, rows: pd.DataFrame, predictions: np.ndarray, variant: str = "primary") -> None:
    """What a serving process logs for ``version``: the rows, its predictions, then the labels."""
    log = PredictionLog(fluent.client().content.backend)
    ids = [new_id() for _ in range(len(rows))]
    ts = now_ms()
    log.append("toy", [{**{c: row[c] for c in FEATURES}, "_request_id": rid, "_ts": ts, "_model": "toy",
                        "_version": version, "_latency_ms": 1.0, "_variant": variant, "_prediction": float(p)}
                       for rid, (_, row), p in zip(ids, rows.iterrows(), predictions, strict=True)])
    log.add_feedback("toy", list(zip(ids, rows["cnt"].astype(float), strict=True)))


def predict(version: int, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(cv.load_model(f"models:/toy/{version}").predict(rows[FEATURES]), dtype=float)


def states(firing: Any) -> list[str]:
    return [s["state"] for s in firing.steps]
