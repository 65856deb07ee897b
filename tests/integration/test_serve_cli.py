"""``conveyor serve`` as a real multi-worker process, and ``conveyor predict`` on files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
from click.testing import CliRunner

import conveyor as cv
from conveyor.cli.main import cli
from conveyor.testing.serving import free_port

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]


@pytest.fixture
def champion(conveyor_home: Path) -> tuple[Any, pd.DataFrame]:
    import lightgbm as lgb

    bikes = pd.read_csv(DATA).sample(n=4000, random_state=5).reset_index(drop=True)
    cv.set_project("cli-serving")
    model = lgb.LGBMRegressor(n_estimators=15, verbose=-1, random_state=0).fit(bikes[FEATURES], bikes["cnt"])
    with cv.start_run():
        cv.log_model(model, name="bike-demand", input_example=bikes[FEATURES].head(5))
    cv.models.set_alias("bike-demand", "champion", version=1)
    cv.flush()
    return model, bikes


def test_predict_scores_a_file_in_chunks(champion: tuple[Any, pd.DataFrame], tmp_path: Path) -> None:
    model, bikes = champion
    src, dest = tmp_path / "in.parquet", tmp_path / "out.parquet"
    bikes[FEATURES].to_parquet(src)
    result = CliRunner().invoke(cli, ["predict", "models:/bike-demand@champion", "--input", str(src),
                                      "--output", str(dest), "--chunk-rows", "700", "--project", "cli-serving"])
    assert result.exit_code == 0, result.output
    out = pd.read_parquet(dest)
    assert len(out) == 4000 and np.allclose(out["prediction"], model.predict(bikes[FEATURES]))
    bikes[FEATURES].drop(columns=["temp"]).to_csv(tmp_path / "bad.csv", index=False)
    result = CliRunner().invoke(cli, ["predict", "models:/bike-demand@champion", "--input",
                                      str(tmp_path / "bad.csv"), "--output", str(tmp_path / "bad.parquet"),
                                      "--project", "cli-serving"])
    assert result.exit_code == 2 and "temp" in result.output
    assert not (tmp_path / "bad.parquet").exists() and not list(tmp_path.glob(".*partial"))


@pytest.mark.slow
def test_two_workers_keep_answering_when_one_is_killed(champion: tuple[Any, pd.DataFrame]) -> None:
    _, bikes = champion
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "serve", "models:/bike-demand@champion", "--port", str(port),
         "--workers", "2", "--project", "cli-serving"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,  # an unread pipe could stall it
    )
    url = f"http://127.0.0.1:{port}"
    record = {"records": bikes[FEATURES].head(1).to_dict(orient="records")}
    try:
        deadline = time.monotonic() + 90
        ready_in_a_row = 0  # new connections land on either worker: both are ready after many in a row
        while ready_in_a_row < 20:
            try:
                ready = httpx.get(f"{url}/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            ready_in_a_row = ready_in_a_row + 1 if ready else 0
            assert time.monotonic() < deadline and server.poll() is None, "the server did not become ready"
            if not ready:
                time.sleep(0.2)
        workers = psutil.Process(server.pid).children()
        assert len(workers) >= 2
        os.kill(workers[0].pid, signal.SIGKILL)
        ok = failed = 0
        end = time.monotonic() + 30  # a count of answers, not a rate: a loaded machine only takes longer
        while ok < 30 and time.monotonic() < end:
            try:
                with httpx.Client(base_url=url, timeout=10) as http:  # a new connection each time
                    r = http.post("/v1/models/bike-demand/predict", json=record)
                ok += r.status_code == 200
                failed += r.status_code != 200
            except httpx.TransportError:
                failed += 1
        assert ok == 30 and failed <= 2, (ok, failed)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
