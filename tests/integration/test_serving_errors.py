"""Requests that fail inside the service become error rows of the prediction log; client errors do not."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.serving.app import create_app
from conveyor.serving.config import ServeConfig
from conveyor.stores.predictions import PredictionLog
from conveyor.testing.serving import running

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]


class Moody:
    """Fails on the impossible hour 99, takes 4 s over hour 98, doubles the temperature otherwise."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["hr"] == 99).any():
            raise ValueError("hour 99 does not exist")
        if (frame["hr"] == 98).any():
            time.sleep(4.0)
        return frame["temp"].to_numpy() * 2


@pytest.fixture
def rows(conveyor_home: Path) -> list[dict[str, Any]]:
    bikes = pd.read_csv(DATA).head(50)
    cv.set_project("serving")
    with cv.start_run():
        cv.log_model(Moody(), name="moody", input_example=bikes[FEATURES].head(5))
    cv.models.set_alias("moody", "champion", version=1)
    records: list[dict[str, Any]] = bikes[FEATURES].to_dict(orient="records")
    return records


def test_model_errors_and_timeouts_are_logged_and_counted_per_version(rows: list[dict[str, Any]]) -> None:
    config = ServeConfig(model="models:/moody@champion", timeout=1.5, max_wait_ms=5)  # slack for a busy CI
    good, bad, slow = rows[:6], {**rows[6], "hr": 99}, {**rows[7], "hr": 98}
    started = int(time.time() * 1000)

    async def fire(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url) as http:
            calls = [http.post("/v1/models/moody/predict", json={"records": [row]}, headers={"x-request-id": f"g{i}"})
                     for i, row in enumerate(good)]
            calls.append(http.post("/v1/models/moody/predict", json={"records": [bad]}, headers={"x-request-id": "bad"}))
            calls.append(http.post("/v1/models/moody/predict", json={"records": rows[10:13]},
                                   headers={"x-request-id": "three"}))
            return list(await asyncio.gather(*calls))

    with running(create_app(config, cv.models.registry())) as url, httpx.Client(base_url=url) as http:
        answers = asyncio.run(fire(url))
        assert [r.status_code for r in answers] == [200] * 6 + [500, 200]
        r = http.post("/v1/models/moody/predict", json={"records": [slow]}, headers={"x-request-id": "slow"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "TIMEOUT"
        time.sleep(3.0)  # the slow call finishes on the model thread
        # client errors are the client's, not the model's: none of these is logged
        assert http.post("/v1/models/moody/predict", content=b"{oops").status_code == 400
        assert http.post("/v1/models/moody/predict", json={"records": [{"hr": 1}]}).status_code == 422
        assert http.post("/v1/models/other/predict", json={"records": [rows[0]]}).status_code == 404
    log = PredictionLog.open()
    answered = log.read("moody")
    assert "_error" not in answered.columns and sorted(set(answered["_request_id"])) == sorted(
        [f"g{i}" for i in range(6)] + ["three:0", "three:1", "three:2"])
    everything = log.read("moody", include_errors=True)
    errors = everything[everything["_error"].notna()].set_index("_request_id")
    assert sorted(errors.index) == ["bad", "slow"]
    assert errors.loc["bad", "_error"] == "ValueError: hour 99 does not exist"
    assert errors.loc["slow", "_error"].startswith("TimeoutError")
    assert (errors["_version"] == 1).all() and errors["_prediction"].isna().all() and errors["temp"].isna().all()
    assert (errors["_ts"] >= started).all() and set(errors["_model"]) == {"moody"}
    end = int(time.time() * 1000) + 1
    rates = log.error_rates("moody", started, end)
    assert list(rates) == [1]
    assert (rates[1].answered, rates[1].failed) == (7, 2)  # the 3-row request counts once
    assert log.error_rate("moody", started, end, version=1) == pytest.approx(2 / 9)
    assert log.error_rates("moody", started, end, version=2) == {}
    assert log.error_rate("moody", 0, started - 10_000) == 0.0


def test_monitoring_reads_only_answered_rows(rows: list[dict[str, Any]]) -> None:
    config = ServeConfig(model="models:/moody@champion")
    with running(create_app(config, cv.models.registry())) as url, httpx.Client(base_url=url) as http:
        for i, row in enumerate(rows[:5]):
            assert http.post("/v1/models/moody/predict", json={"records": [row]}).status_code == 200
            bad = http.post("/v1/models/moody/predict", json={"records": [{**row, "hr": 99}]})
            assert bad.status_code == 500, i
    from conveyor.monitoring.evaluation import read_window

    registry = cv.models.registry()
    monitor: Any = SimpleNamespace(model="moody@champion")  # read_window only needs the model it watches
    window = read_window(monitor, registry.content, registry, 0, int(time.time() * 1000) + 1)
    assert len(window) == 5 and "_error" not in window.columns and window["_prediction"].notna().all()
