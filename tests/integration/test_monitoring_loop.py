"""The whole loop: train on 2011, register, serve, send 2012 traffic and labels, monitor, alert once.

Real parts only: a dataset version, LightGBM, the prediction service on a uvicorn
server, the prediction log, a webhook receiver on 127.0.0.1, and the CLI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import conveyor as cv
from conveyor.cli.main import cli
from conveyor.serving.app import create_app
from conveyor.serving.config import ServeConfig
from conveyor.testing.serving import running

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[Any]]]:
    """A webhook receiver on 127.0.0.1, allowed past the SSRF guard for this test only."""
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CONVEYOR_ALERT_ALLOW_HOSTS", "127.0.0.1")
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), prog_name="conveyor")
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_drift_and_degradation_of_a_served_model_alert_once(
    conveyor_home: Path, tmp_path: Path, hook: tuple[str, list[Any]]
) -> None:
    import lightgbm as lgb

    url, received = hook
    bikes = pd.read_csv(DATA)
    y2011, y2012 = bikes[bikes["yr"] == 0], bikes[bikes["yr"] == 1]
    y2011.to_csv(tmp_path / "bikes-2011.csv", index=False)
    reference = cv.data.add(tmp_path / "bikes-2011.csv", name="bikes-2011").ref

    cv.set_project("bikes")
    train, holdout = y2011.iloc[::2], y2011.iloc[1::2]
    with cv.start_run():
        model = lgb.LGBMRegressor(n_estimators=80, num_leaves=31, verbose=-1, random_state=0).fit(
            train[FEATURES], train["cnt"])
        cv.log_metric("rmse", float(np.sqrt(np.mean((model.predict(holdout[FEATURES]) - holdout["cnt"]) ** 2))))
        cv.log_model(model, name="bike-demand", input_example=train[FEATURES].head(5))
    cv.models.set_alias("bike-demand", "champion", version=1)

    out = _cli("monitor", "create", "bike-demand", "--model", "bike-demand@champion", "--reference", reference,
               "--window", "1d", "--drift-threshold", "0.3", "--metric", "rmse",
               "--metric-threshold", "rmse > 1.2 * baseline", "--target", "cnt", "--alert", f"webhook={url}",
               "--slice", "season")
    assert "bike-demand@champion against bikes-2011@1, 12 features" in out and "rmse by season" in out

    summer = y2012[y2012["mnth"].isin([6, 7, 8])].sample(600, random_state=0)
    config = ServeConfig(model="models:/bike-demand@champion", poll=0.1)
    with running(create_app(config, cv.models.registry())) as base, httpx.Client(base_url=base) as http:
        labels = []
        for start in range(0, len(summer), 50):
            chunk = summer.iloc[start:start + 50]
            r = http.post("/v1/models/bike-demand/predict", json={"records": chunk[FEATURES].to_dict("records")})
            assert r.status_code == 200, r.text
            rid = r.json()["request_id"]
            labels += [{"request_id": f"{rid}:{k}", "label": int(y)} for k, y in enumerate(chunk["cnt"])]
        r = http.post("/v1/models/bike-demand/feedback", json={"labels": labels[:500]})  # partial labels
        assert r.status_code == 200 and r.json()["accepted"] == 500
    # leaving the block stopped the server, which flushed the prediction log

    first = cv.monitoring.run_monitor("bike-demand")
    result = first.result
    assert result.rows == 600 and result.labelled_rows == 500
    assert result.status == "degraded" and first.change == "opened"
    assert {"yr", "season", "mnth", "temp", "atemp"} <= set(result.drifted_columns)
    assert result.share_drifted is not None and result.share_drifted >= 0.3
    assert result.baseline is not None and result.metric_value is not None
    assert result.metric_value > 1.2 * result.baseline
    stored = cv.monitoring.list_results("bike-demand", with_reports=True)[0].report
    assert stored is not None and stored["performance"]["labelled_share"] == pytest.approx(500 / 600)
    assert stored["columns"]["_label"]["drifted"] is True  # 2012 demand is higher than 2011's
    assert len(received) == 1
    alert = received[0]
    assert alert["monitor"] == "bike-demand" and alert["severity"] == "critical"
    assert "rmse" in alert["summary"] and alert["details"]["incident"] == first.incident.id

    second = cv.monitoring.run_monitor("bike-demand")
    assert second.status == "degraded" and second.change is None and len(received) == 1

    status = _cli("monitor", "status", "bike-demand")
    assert status.startswith("OPEN INCIDENT") and status.count("degraded") == 2
    seasons = stored["performance"]["slices"]["season"]["values"]
    assert {s["value"] for s in seasons} <= {"2", "3"} and sum(s["rows"] for s in seasons) == 600  # summer
    assert "rmse by season" in status
    for entry in seasons:
        assert any(line.split()[:3] == [entry["value"], str(entry["rows"]), str(entry["labelled"])]
                   for line in status.splitlines())
    listed = json.loads(_cli("monitor", "list", "--json"))
    assert [m["name"] for m in listed] == ["bike-demand"] and listed[0]["reference"] == reference
    page = tmp_path / "report.html"
    _cli("monitor", "report", "bike-demand", "--html", str(page))
    text = page.read_text()
    assert "rmse over time" in text and "latest drift report" in text and "<script" not in text
    assert "rmse by season" in text and "<th>breaks the rule</th>" in text
