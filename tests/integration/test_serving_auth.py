"""The prediction service with auth on: the tracking server's own tokens, roles on the model's project."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import conveyor as cv
from conveyor.serving.app import create_app
from conveyor.serving.config import ServeConfig
from conveyor.testing.serving import free_port, running

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]


@pytest.fixture
def served(conveyor_home: Path) -> dict[str, Any]:
    """A champion in project ``serving`` and tokens for each kind of caller, made by the governance store."""
    import lightgbm as lgb

    bikes = pd.read_csv(DATA).sample(n=1500, random_state=4).reset_index(drop=True)
    cv.set_project("serving")
    with cv.start_run():
        model = lgb.LGBMRegressor(n_estimators=10, verbose=-1, random_state=0).fit(bikes[FEATURES], bikes["cnt"])
        cv.log_model(model, name="bike-demand", input_example=bikes[FEATURES].head(5))
    cv.models.set_alias("bike-demand", "champion", version=1)
    gov = cv.models.registry().store.governance
    tokens = {
        "admin": gov.create_principal("root", admin=True).token,
        "viewer": gov.create_principal("vera").token,
        "editor": gov.create_principal("eddie").token,
        "stranger": gov.create_principal("sam", kind="service").token,  # no role anywhere
        "elsewhere": gov.create_principal("olga").token,  # viewer on another project only
    }
    gov.grant("vera", project="serving", role="viewer")
    gov.grant("eddie", project="serving", role="editor")
    gov.grant("olga", project="other", role="owner")
    return {"tokens": tokens, "gov": gov, "record": bikes[FEATURES].head(1).to_dict(orient="records")}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _app(**overrides: Any) -> Any:
    config = ServeConfig(model="models:/bike-demand@champion", auth=True, **overrides)
    return create_app(config, cv.models.registry())


def test_every_route_but_health_needs_a_live_token_with_the_right_role(served: dict[str, Any]) -> None:
    tokens, record = served["tokens"], {"records": served["record"]}
    predict, feedback = "/v1/models/bike-demand/predict", "/v1/models/bike-demand/feedback"
    with running(_app()) as url, httpx.Client(base_url=url) as http:
        assert http.get("/health").status_code == 200 and http.get("/ready").status_code == 200
        for method, path, body in (("POST", predict, record), ("POST", "/invocations", {"dataframe_records": record["records"]}),
                                   ("POST", feedback, {"request_id": "r", "label": 1}),
                                   ("GET", "/v1/models/bike-demand", None), ("GET", "/metrics", None)):
            for headers in ({}, {"Authorization": "Basic abc"}, _bearer("cvt_" + "x" * 43)):
                r = http.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.json()["error"]["code"] == "UNAUTHENTICATED"
                assert r.headers["www-authenticate"] == "Bearer"
        # viewer: predicts and reads, may not send labels
        viewer = _bearer(tokens["viewer"])
        r = http.post(predict, json=record, headers=viewer)
        assert r.status_code == 200 and r.json()["version"] == 1
        request_id = r.json()["request_id"]
        assert http.post("/invocations", json={"dataframe_records": record["records"]}, headers=viewer).status_code == 200
        assert http.get("/v1/models/bike-demand", headers=viewer).json()["version"] == 1
        assert "conveyor_requests_total" in http.get("/metrics", headers=viewer).text
        r = http.post(feedback, json={"request_id": request_id, "label": 3}, headers=viewer)
        assert r.status_code == 403 and r.json()["error"]["code"] == "PERMISSION_DENIED"
        assert "editor" in r.json()["error"]["message"]
        # editor and admin: labels too
        assert http.post(feedback, json={"request_id": request_id, "label": 3},
                         headers=_bearer(tokens["editor"])).status_code == 200
        assert http.post(feedback, json={"request_id": request_id, "label": 4},
                         headers=_bearer(tokens["admin"])).status_code == 200
        # known callers without a role on this project
        for who in ("stranger", "elsewhere"):
            r = http.post(predict, json=record, headers=_bearer(tokens[who]))
            assert r.status_code == 403 and r.json()["error"]["code"] == "PERMISSION_DENIED", who
        # the checks come before the body is read: bad input from a stranger is still a 401
        assert http.post(predict, content=b"{not json").status_code == 401


def test_revoked_and_expired_tokens_stop_working(served: dict[str, Any]) -> None:
    gov, record = served["gov"], {"records": served["record"]}
    predict = "/v1/models/bike-demand/predict"
    short = gov.create_token("vera", name="short", expires_in=1)
    doomed = gov.create_token("vera", name="doomed")
    with running(_app(auth_cache_seconds=0.2)) as url, httpx.Client(base_url=url) as http:
        assert http.post(predict, json=record, headers=_bearer(doomed.token)).status_code == 200
        assert http.post(predict, json=record, headers=_bearer(short.token)).status_code == 200
        gov.revoke_token(doomed.info.id)
        time.sleep(1.3)  # past the cache and past the short token's expiry
        for token in (doomed.token, short.token):
            r = http.post(predict, json=record, headers=_bearer(token))
            assert r.status_code == 401 and "expired or revoked" in r.json()["error"]["message"]
        assert http.post(predict, json=record, headers=_bearer(served["tokens"]["viewer"])).status_code == 200


def test_serve_turns_auth_on_for_a_non_loopback_bind(served: dict[str, Any]) -> None:
    cv.flush()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "serve", "models:/bike-demand@champion", "--host", "0.0.0.0",
         "--port", str(port), "--project", "serving"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the server did not become ready"
            time.sleep(0.2)
        body = {"records": served["record"]}
        assert httpx.post(f"{url}/v1/models/bike-demand/predict", json=body).status_code == 401
        r = httpx.post(f"{url}/v1/models/bike-demand/predict", json=body, headers=_bearer(served["tokens"]["viewer"]))
        assert r.status_code == 200, r.text
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
