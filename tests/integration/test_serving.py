"""The prediction service over a real uvicorn server and a real LightGBM model on bike sharing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
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


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    return pd.read_csv(DATA).sample(n=3000, random_state=3).reset_index(drop=True)


def _train(bikes: pd.DataFrame, trees: int) -> Any:
    import lightgbm as lgb

    return lgb.LGBMRegressor(n_estimators=trees, num_leaves=15, verbose=-1, random_state=0).fit(
        bikes[FEATURES], bikes["cnt"])


@pytest.fixture
def registered(conveyor_home: Path, bikes: pd.DataFrame) -> dict[str, Any]:
    cv.set_project("serving")
    models = {}
    for trees in (10, 30):
        with cv.start_run():
            model = _train(bikes, trees)
            mv = cv.log_model(model, name="bike-demand", input_example=bikes[FEATURES].head(5))
        models[mv.version] = model
    cv.models.set_alias("bike-demand", "champion", version=1)
    cv.models.set_alias("bike-demand", "challenger", version=2)
    return models


def _app(**overrides: Any) -> Any:
    config = ServeConfig(model="models:/bike-demand@champion", poll=0.1, **overrides)
    return create_app(config, cv.models.registry())


def _records(bikes: pd.DataFrame, n: int, start: int = 0) -> list[dict[str, Any]]:
    return bikes[FEATURES].iloc[start : start + n].to_dict(orient="records")


def test_predictions_match_the_model_in_every_input_shape(registered: dict[int, Any], bikes: pd.DataFrame) -> None:
    want = registered[1].predict(bikes[FEATURES].iloc[:3])
    split = {"columns": FEATURES, "data": bikes[FEATURES].iloc[:3].values.tolist()}
    with running(_app()) as url, httpx.Client(base_url=url) as http:
        r = http.post("/v1/models/bike-demand/predict", json={"records": _records(bikes, 3)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "bike-demand" and body["version"] == 1 and body["request_id"]
        assert np.allclose(body["predictions"], want)
        assert r.headers["x-model-version"] == "1"
        r = http.post("/v1/models/bike-demand/predict", json=split)
        assert np.allclose(r.json()["predictions"], want)
        for shape in ({"dataframe_split": split}, {"dataframe_records": _records(bikes, 3)}):
            r = http.post("/invocations", json=shape)
            assert r.status_code == 200 and np.allclose(r.json()["predictions"], want)
        meta = http.get("/v1/models/bike-demand").json()
        assert meta["version"] == 1 and meta["primary"]["follows"] == "champion"
        assert [c["name"] for c in meta["primary"]["signature"]["inputs"]["columns"]] == FEATURES
        assert http.get("/ready").json()["ready"] is True
        assert http.get("/health").status_code == 200


def test_bad_input_gets_4xx_with_the_reason_and_never_reaches_the_model(
    registered: dict[int, Any], bikes: pd.DataFrame
) -> None:
    record = _records(bikes, 1)[0]
    missing = {k: v for k, v in record.items() if k != "temp"}
    typed = {**record, "hr": "eight"}
    with running(_app(max_rows=5, max_body_bytes=10_000)) as url, httpx.Client(base_url=url) as http:
        post = lambda body, **kw: http.post("/v1/models/bike-demand/predict", **({"json": body} | kw))  # noqa: E731
        r = http.post("/v1/models/bike-demand/predict", content=b"{not json")
        assert r.status_code == 400 and r.json()["error"]["field"] == "body"
        r = post({"rows": []})
        assert r.status_code == 400
        r = post({"records": [missing, {**record, "extra": 1}]})
        assert r.status_code == 422
        problems = {p["column"]: p["problem"] for p in r.json()["error"]["problems"]}
        assert "temp" in problems and "extra" in problems
        r = post({"records": [typed]})
        assert r.status_code == 422 and r.json()["error"]["problems"][0]["column"] == "hr"
        r = post({"records": _records(bikes, 6)})
        assert r.status_code == 413 and "rows" in r.json()["error"]["message"]
        r = http.post("/v1/models/bike-demand/predict", content=b"x" * 20_000)
        assert r.status_code == 413
        r = http.post("/v1/models/other/predict", json={"records": [record]})
        assert r.status_code == 404
        metrics = http.get("/metrics").text
        assert 'status="422"' in metrics and 'status="413"' in metrics and "conveyor_model_version" in metrics


def test_concurrent_single_rows_are_batched_and_each_gets_its_own_answer(
    registered: dict[int, Any], bikes: pd.DataFrame
) -> None:
    rows = _records(bikes, 200)
    want = registered[1].predict(bikes[FEATURES].iloc[:200])

    async def fire(url: str) -> list[float]:
        async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=32)) as http:
            async def one(row: dict[str, Any]) -> float:
                r = await http.post("/v1/models/bike-demand/predict", json={"records": [row]})
                assert r.status_code == 200, r.text
                return float(r.json()["predictions"][0])
            return list(await asyncio.gather(*(one(r) for r in rows)))

    with running(_app(max_wait_ms=2)) as url:
        got = asyncio.run(fire(url))
        metrics = httpx.get(f"{url}/metrics").text
    assert np.allclose(got, want)
    count = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("conveyor_batch_rows_count")))
    assert count < 200  # fewer model calls than requests: they were grouped


def test_the_service_follows_its_alias_without_failing_requests(
    registered: dict[int, Any], bikes: pd.DataFrame
) -> None:
    record = _records(bikes, 1)
    with running(_app()) as url, httpx.Client(base_url=url) as http:
        assert http.post("/v1/models/bike-demand/predict", json={"records": record}).json()["version"] == 1
        cv.models.set_alias("bike-demand", "champion", version=2)
        versions = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = http.post("/v1/models/bike-demand/predict", json={"records": record})
            assert r.status_code == 200
            versions.append(r.json()["version"])
            if versions[-1] == 2:
                break
            time.sleep(0.05)
        assert versions[-1] == 2 and http.get("/v1/models/bike-demand").json()["version"] == 2
        want = registered[2].predict(bikes[FEATURES].iloc[:1])
        assert np.allclose(r.json()["predictions"], want)


def test_canary_split_is_sticky_and_weighted(registered: dict[int, Any], bikes: pd.DataFrame) -> None:
    record = _records(bikes, 1)
    with running(_app(canary="models:/bike-demand@challenger", canary_weight=0.3)) as url, \
            httpx.Client(base_url=url) as http:
        seen = []
        for i in range(300):
            r = http.post("/v1/models/bike-demand/predict", json={"records": record},
                          headers={"x-client-key": f"client-{i}"})
            seen.append(r.json()["version"])
        again = {http.post("/v1/models/bike-demand/predict", json={"records": record},
                           headers={"x-client-key": "client-7"}).json()["version"] for _ in range(10)}
    share = seen.count(2) / len(seen)
    assert 0.2 < share < 0.4
    assert again == {seen[7]}


def test_shadow_answers_are_logged_never_returned_and_feedback_joins(
    registered: dict[int, Any], bikes: pd.DataFrame, conveyor_home: Path
) -> None:
    with running(_app(shadow="models:/bike-demand@challenger")) as url, httpx.Client(base_url=url) as http:
        ids = []
        for i in range(5):
            r = http.post("/v1/models/bike-demand/predict", json={"records": _records(bikes, 1, i)})
            assert r.json()["version"] == 1
            ids.append(r.json()["request_id"])
        r = http.post("/v1/models/bike-demand/feedback", json={"request_id": ids[0], "label": 118})
        assert r.status_code == 200
        bad = http.post("/v1/models/bike-demand/feedback", json={"label": 1})
        assert bad.status_code == 400
        time.sleep(0.3)  # let the shadow calls finish before the log is flushed at shutdown
    log = PredictionLog.open()
    df = log.read("bike-demand")
    assert set(df["_variant"]) == {"primary", "shadow"}
    primary = df[df["_variant"] == "primary"]
    assert sorted(primary["_request_id"]) == sorted(ids) and (primary["_version"] == 1).all()
    assert (df[df["_variant"] == "shadow"]["_version"] == 2).all()
    labelled = primary.set_index("_request_id")["_label"]
    assert labelled[ids[0]] == 118 and labelled.drop(ids[0]).isna().all()
    assert "temp" in df.columns


def test_rate_limit_answers_429_with_retry_after(registered: dict[int, Any], bikes: pd.DataFrame) -> None:
    record = _records(bikes, 1)
    with running(_app(rate_limit=2, rate_burst=2)) as url, httpx.Client(base_url=url) as http:
        codes = [http.post("/v1/models/bike-demand/predict", json={"records": record}).status_code
                 for _ in range(4)]
        r = http.post("/v1/models/bike-demand/predict", json={"records": record})
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


class Fussy:
    """A python-function model that fails on one impossible hour and doubles the rest."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["hr"] == 99).any():
            raise ValueError("hour 99 does not exist")
        return frame["temp"].to_numpy() * 2


def test_a_row_that_breaks_the_model_fails_only_its_own_request(conveyor_home: Path, bikes: pd.DataFrame) -> None:
    cv.set_project("serving")
    with cv.start_run():
        cv.log_model(Fussy(), name="fussy", input_example=bikes[FEATURES].head(5))
    cv.models.set_alias("fussy", "champion", version=1)
    config = ServeConfig(model="models:/fussy@champion", max_wait_ms=20)
    good = _records(bikes, 8)
    bad = {**good[0], "hr": 99}

    async def fire(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url) as http:
            calls = [http.post("/v1/models/fussy/predict", json={"records": [row]}) for row in [*good, bad]]
            return list(await asyncio.gather(*calls))

    with running(create_app(config, cv.models.registry())) as url:
        answers = asyncio.run(fire(url))
        assert httpx.get(f"{url}/health").status_code == 200  # the process survived
    *ok, failed = answers
    assert [r.status_code for r in ok] == [200] * 8
    assert [r.json()["predictions"][0] for r in ok] == pytest.approx([row["temp"] * 2 for row in good])
    assert failed.status_code == 500
    body = failed.json()["error"]
    assert body["code"] == "PREDICTION_FAILED" and "ValueError" in body["message"] and body["request_id"]
    assert "Traceback" not in failed.text and "hour 99" not in failed.text


def _tamper(version: int) -> None:
    """Overwrite the start of the version's own stored files (not its manifest, nothing shared)."""
    registry = cv.models.registry()
    mv = registry.get_version("bike-demand", version)
    from conveyor.registry.package import read_manifest
    from conveyor.stores.artifacts.cas import blob_key

    _, files = read_manifest(registry.content, mv.package_digest)
    others = set()
    for other in range(1, version):  # blobs shared with other versions stay intact
        _, theirs = read_manifest(registry.content, registry.get_version("bike-demand", other).package_digest)
        others |= {f.digest for f in theirs}
    for f in files:
        if f.path.endswith(".json") or f.digest in others:
            continue
        path = registry.content.backend.local_path(blob_key(f.digest))
        if path is not None and path.exists():
            path.chmod(0o644)
            path.write_bytes(b"tampered" + path.read_bytes()[8:])


def test_a_tampered_version_is_refused_and_the_previous_one_keeps_serving(
    registered: dict[int, Any], bikes: pd.DataFrame
) -> None:
    _tamper(2)
    record = _records(bikes, 1)
    with running(_app()) as url, httpx.Client(base_url=url) as http:
        cv.models.set_alias("bike-demand", "champion", version=2)
        time.sleep(1.0)  # several polls
        r = http.post("/v1/models/bike-demand/predict", json={"records": record})
        assert r.status_code == 200 and r.json()["version"] == 1
        meta = http.get("/v1/models/bike-demand").json()
        assert meta["version"] == 1 and "not loaded" in meta["primary"]["error"]


def test_a_service_whose_model_is_tampered_never_becomes_ready(
    registered: dict[int, Any], bikes: pd.DataFrame
) -> None:
    _tamper(2)
    config = ServeConfig(model="models:/bike-demand/2")
    with running(create_app(config, cv.models.registry())) as url, httpx.Client(base_url=url) as http:
        r = http.get("/ready")
        assert r.status_code == 503 and "not loaded" in r.json()["errors"][0]
        answer = http.post("/v1/models/bike-demand/predict", json={"records": _records(bikes, 1)})
        assert answer.status_code == 503 and "not loaded" in answer.json()["error"]["message"]
