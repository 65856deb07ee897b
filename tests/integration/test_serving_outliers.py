"""Outlier flags at serving time: a stored monitor's detector scores the prediction log.

Real parts only: LightGBM trained on 2011 bike sharing, a monitor made from the
2011 dataset version, the prediction service on a uvicorn server on 127.0.0.1,
the Parquet prediction log, and (last test) a tracking server for the metadata.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.monitoring.outliers import OutlierDetector
from conveyor.server.config import ServerConfig
from conveyor.serving.app import create_app
from conveyor.serving.config import ServeConfig
from conveyor.stores.predictions import PredictionLog
from conveyor.testing.server import serve
from conveyor.testing.serving import running
from conveyor.tracking import fluent

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]
MODEL = "bike-demand"


@pytest.fixture(scope="module")
def y2011() -> pd.DataFrame:
    bikes = pd.read_csv(DATA)
    return bikes[bikes["yr"] == 0].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(y2011: pd.DataFrame) -> Any:
    import lightgbm as lgb

    train = y2011.iloc[::2]
    return lgb.LGBMRegressor(n_estimators=40, num_leaves=15, verbose=-1, random_state=0).fit(
        train[FEATURES], train["cnt"])


@pytest.fixture
def project(conveyor_home: Path, tmp_path: Path, y2011: pd.DataFrame, trained: Any) -> dict[str, Any]:
    return _prepare(tmp_path, y2011, trained)


def _prepare(tmp_path: Path, y2011: pd.DataFrame, trained: Any) -> dict[str, Any]:
    """Project ``outliers``: version 1 of the model as champion and the 2011 dataset to monitor against."""
    cv.set_project("outliers")
    y2011.to_csv(tmp_path / "bikes-2011.csv", index=False)
    reference = cv.data.add(tmp_path / "bikes-2011.csv", name="bikes-2011").ref
    with cv.start_run():
        cv.log_model(trained, name=MODEL, input_example=y2011[FEATURES].head(5))
    cv.models.set_alias(MODEL, "champion", version=1)
    return {"reference": reference, "holdout": y2011.iloc[1::2]}


def _tainted(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows no 2011 day looked like: 50 (normalised) degrees, negative humidity, an unknown weather code."""
    bad = rows.copy()
    third = len(bad) // 3
    bad.iloc[:third, bad.columns.get_loc("temp")] = 50.0
    bad.iloc[third : 2 * third, bad.columns.get_loc("hum")] = -3.0
    bad.iloc[2 * third :, bad.columns.get_loc("weathersit")] = 9
    return bad


def _send(http: httpx.Client, rows: pd.DataFrame, per_request: int, columns: list[str] = FEATURES) -> list[str]:
    """Post ``rows`` in requests of ``per_request``; the log's request ids of every row."""
    ids = []
    for start in range(0, len(rows), per_request):
        chunk = rows.iloc[start : start + per_request]
        r = http.post(f"/v1/models/{MODEL}/predict", json={"records": chunk[columns].to_dict("records")})
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        ids += [rid] if len(chunk) == 1 else [f"{rid}:{k}" for k in range(len(chunk))]
    return ids


def _until(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _app(**overrides: Any) -> Any:
    return create_app(ServeConfig(model=f"models:/{MODEL}@champion", poll=0.1, **overrides), cv.models.registry())


def _log() -> pd.DataFrame:
    return PredictionLog(fluent.client().content.backend).read(MODEL, with_labels=False)


def test_tainted_rows_are_flagged_in_the_log_and_the_monitor_reads_the_same_rate(
    project: dict[str, Any],
) -> None:
    monitor = cv.monitoring.create_monitor("bikes-2011", model=f"{MODEL}@champion",
                                           reference=project["reference"], window="1d")
    detector = OutlierDetector.from_dict(monitor.record.outliers)
    normal = project["holdout"].sample(240, random_state=1)
    tainted = _tainted(project["holdout"].sample(30, random_state=2))
    with running(_app()) as base, httpx.Client(base_url=base) as http:
        described = http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]
        assert described["monitor"] == "bikes-2011" and described["columns"] == detector.columns
        normal_ids = _send(http, normal, per_request=40)
        tainted_ids = _send(http, tainted.iloc[:15], per_request=1) + _send(http, tainted.iloc[15:], per_request=15)
        scored = 'conveyor_outlier_scored_rows_total{model="bike-demand"}'

        def all_scored() -> str | None:
            text = http.get("/metrics").text
            return text if _metric(text, scored) == 270 else None

        page = _until(all_scored)
        assert page, "the scored rows never reached /metrics"
        flagged = _metric(page, 'conveyor_outliers_total{model="bike-demand",monitor="bikes-2011"}')

    log = _log().set_index("_request_id")
    assert log["_outlier_monitor"].eq(monitor.id).all()
    assert log.loc[tainted_ids, "_outlier"].tolist() == [True] * 30  # every tainted row, in any request shape
    assert (log.loc[tainted_ids, "_outlier_score"] > detector.threshold).all()
    ok = log.loc[normal_ids]
    np.testing.assert_allclose(ok["_outlier_score"], detector.score(normal[FEATURES]))
    assert ok["_outlier"].tolist() == detector.flags(normal[FEATURES]).tolist()
    assert ok["_outlier"].mean() < 0.05 and ok["_outlier_score"].median() < 2  # 2011 rows look like 2011
    assert flagged == int(log["_outlier"].sum())

    run = cv.monitoring.run_monitor("bikes-2011")
    assert run.result.rows == 270
    assert run.result.outlier_rate == pytest.approx(log["_outlier"].mean())
    assert run.result.outlier_rate == pytest.approx(detector.rate(log[FEATURES]))  # recomputing agrees
    report = cv.monitoring.list_results("bikes-2011", with_reports=True)[0].report
    assert report is not None and report["outliers"]["flagged_by_serving"] == 270


def test_serving_without_a_monitor_logs_no_flags_and_picks_one_up_when_created(
    project: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor.serving.outliers")
    holdout = project["holdout"]
    before = pd.concat([holdout.iloc[:20], _tainted(holdout.iloc[20:26])])
    after = pd.concat([holdout.iloc[100:120], _tainted(holdout.iloc[120:126])])
    with running(_app()) as base, httpx.Client(base_url=base) as http:
        assert http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["monitor"] is None
        before_ids = _send(http, before, per_request=13)
        assert _until(lambda: len(_log()) == 26)  # written (rows are scored when written, not when answered)
        # a monitor whose detector reads a column the model does not take is refused, with a reason
        cv.monitoring.create_monitor("with-label", model=MODEL, reference=project["reference"],
                                     features=["temp", "cnt"])
        error = _until(lambda: http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["error"])
        assert error and "'cnt'" in error and "not scored" in error
        monitor = cv.monitoring.create_monitor("bikes-2011", model=MODEL, reference=project["reference"])
        assert _until(lambda: http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["monitor"] == "bikes-2011")
        after_ids = _send(http, after, per_request=13)
    assert sum("'cnt'" in r.getMessage() for r in caplog.records) == 1  # said once, not once per poll

    log = _log().set_index("_request_id")
    assert log.loc[before_ids, "_outlier"].isna().all() and log.loc[before_ids, "_outlier_score"].isna().all()
    detector = OutlierDetector.from_dict(monitor.record.outliers)
    assert log.loc[after_ids, "_outlier"].tolist() == detector.flags(after[FEATURES]).tolist()
    assert log.loc[after_ids[-6:], "_outlier"].all()
    # the window mixes rows scored by serving and rows logged before the monitor existed: the
    # monitor reads the first and scores the second, and gets the detector's rate on all of them
    run = cv.monitoring.run_monitor("bikes-2011")
    assert run.result.rows == 52 and run.result.outlier_rate == pytest.approx(detector.rate(log[FEATURES]))
    assert run.result.outlier_rate >= 12 / 52  # the tainted rows, before and after
    report = cv.monitoring.list_results("bikes-2011", with_reports=True)[0].report
    assert report is not None and report["outliers"]["flagged_by_serving"] == 26


def test_no_outliers_and_a_broken_detector_never_fail_a_request(
    project: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor.serving.outliers")
    good = cv.monitoring.create_monitor("bikes-2011", model=MODEL, reference=project["reference"])
    rows = project["holdout"].iloc[:30]
    with running(_app(outliers=False)) as base, httpx.Client(base_url=base) as http:
        assert "outliers" not in http.get(f"/v1/models/{MODEL}").json()
        plain_ids = _send(http, rows, per_request=10)
    assert "_outlier" not in _log().columns

    # a stored detector whose centre is not a number: it loads, then fails on every segment
    store = fluent.client().store
    broken = dict(good.record.outliers, centre={**good.record.outliers["centre"], "temp": "warm"})
    store.monitors.create_monitor(project="outliers", name="broken", model=f"{MODEL}@champion",
                                  config=good.record.config, reference=good.record.reference, outliers=broken)
    with running(_app(outlier_monitor="broken")) as base, httpx.Client(base_url=base) as http:
        assert http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["monitor"] == "broken"
        broken_ids = _send(http, rows, per_request=10)
        _until(lambda: http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["error"])
        broken_ids += _send(http, rows, per_request=1)
    failures = [r.getMessage() for r in caplog.records if "failed on logged rows" in r.getMessage()]
    assert len(failures) == 1 and "'broken'" in failures[0]

    log = _log().set_index("_request_id")
    assert len(log) == 90 and log["_prediction"].notna().all()
    assert log.loc[plain_ids, "_outlier"].isna().all()
    assert log.loc[broken_ids, "_outlier"].isna().all() and log.loc[broken_ids, "_outlier_score"].isna().all()
    # monitoring does not trust null flags: it scores those rows from their inputs
    run = cv.monitoring.run_monitor("bikes-2011")
    assert run.result.outlier_rate == pytest.approx(
        OutlierDetector.from_dict(good.record.outliers).rate(log[FEATURES]))


def test_a_new_version_with_other_inputs_stops_the_scoring_until_a_monitor_fits(
    project: dict[str, Any], y2011: pd.DataFrame
) -> None:
    from sklearn.linear_model import Ridge

    cv.monitoring.create_monitor("bikes-2011", model=MODEL, reference=project["reference"])
    fewer = [f for f in FEATURES if f != "hum"]
    with cv.start_run():
        cv.log_model(Ridge().fit(y2011[fewer], y2011["cnt"]), name=MODEL, input_example=y2011[fewer].head(5))
    holdout = project["holdout"]
    with running(_app()) as base, httpx.Client(base_url=base) as http:
        v1_ids = _send(http, _tainted(holdout.iloc[:6]), per_request=6)
        cv.models.set_alias(MODEL, "champion", version=2)
        assert _until(lambda: http.get(f"/v1/models/{MODEL}").json()["version"] == 2)
        error = _until(lambda: http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["error"])
        assert error and "'hum'" in error
        r = http.post(f"/v1/models/{MODEL}/predict", json={"records": holdout[fewer].iloc[:5].to_dict("records")})
        assert r.status_code == 200 and r.json()["version"] == 2
        v2_ids = [f"{r.json()['request_id']}:{k}" for k in range(5)]
        assert _until(lambda: len(_log()) == 11)  # written while no detector fits version 2
        # a monitor made for version 2's inputs is picked up within the poll interval
        cv.monitoring.create_monitor("no-hum", model=f"{MODEL}@champion", reference=project["reference"])
        assert _until(lambda: http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["monitor"] == "no-hum")
        v2_scored = _send(http, _tainted(holdout.iloc[:6]), per_request=6, columns=fewer)
    log = _log().set_index("_request_id")
    assert log.loc[v1_ids, "_outlier"].tolist() == [True] * 6
    assert log.loc[v2_ids, "_outlier"].isna().all()
    no_hum = cv.monitoring.get_monitor("no-hum")
    assert "hum" not in no_hum.features and log.loc[v2_scored, "_outlier_monitor"].eq(no_hum.id).all()
    assert log.loc[v2_scored, "_outlier"].tolist() == [True] * 2 + [False] * 2 + [True] * 2  # no hum to taint


def test_a_rebased_monitor_scores_with_its_new_detector_within_the_poll(
    project: dict[str, Any], y2011: pd.DataFrame
) -> None:
    """Rebasing keeps the monitor's id but refits its detector: serving switches, monitoring re-scores the old rows."""
    monitor = cv.monitoring.create_monitor("bikes-2011", model=MODEL, reference=project["reference"])
    old = OutlierDetector.from_dict(monitor.record.outliers)
    winter = y2011[y2011["season"] == 1]
    summer = y2011[y2011["season"] == 3]
    with running(_app()) as base, httpx.Client(base_url=base) as http:
        before_ids = _send(http, summer.iloc[:40], per_request=20)
        assert _until(lambda: len(_log()) == 40)
        rebased = cv.monitoring.rebase_monitor("bikes-2011", winter)  # a reference with winter only
        new = OutlierDetector.from_dict(rebased.record.outliers)
        assert rebased.id == monitor.id and new.fingerprint != old.fingerprint
        assert _until(lambda: http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["detector"]
                      == new.fingerprint)
        after_ids = _send(http, summer.iloc[40:80], per_request=20)
    log = _log().set_index("_request_id")
    assert log.loc[before_ids, "_outlier_detector"].eq(old.fingerprint).all()
    assert log.loc[after_ids, "_outlier_detector"].eq(new.fingerprint).all()
    assert log.loc[after_ids, "_outlier"].tolist() == new.flags(summer.iloc[40:80][FEATURES]).tolist()
    assert log.loc[after_ids, "_outlier"].all()  # season 3 was never seen in winter
    assert not log.loc[before_ids, "_outlier"].any()
    report = cv.monitoring.run_monitor("bikes-2011")
    assert report.result.outlier_rate == 1.0  # the rows flagged by the old detector are scored again
    stored = cv.monitoring.list_results("bikes-2011", with_reports=True)[0].report
    assert stored is not None and stored["outliers"]["flagged_by_serving"] == 40


@pytest.fixture(params=["rest", pytest.param("postgres", marks=pytest.mark.postgres)])
def remote(request: pytest.FixtureRequest, conveyor_home: Path, tmp_path: Path) -> Iterator[str]:
    """The metadata on a tracking server (``CONVEYOR_URI=http://...``) or on PostgreSQL; the log in a shared folder."""
    shared = str(tmp_path / "shared-artifacts")
    if request.param == "postgres":
        from conveyor.stores.metadata.sql.store import SqlMetadataStore
        from conveyor.testing.postgres import truncate_all

        uri = request.getfixturevalue("postgres_uri")
        SqlMetadataStore(uri).close()  # creates the schema on first use
        truncate_all(uri)
        cv.configure(uri=uri, artifacts=shared)
        yield request.param
        cv.configure()
        return
    with serve(ServerConfig(backend=f"sqlite:///{tmp_path / 'server.db'}", artifacts=shared)) as url:
        cv.configure(uri=url, artifacts=shared)
        yield request.param
        cv.configure()


def test_flags_work_with_the_metadata_on_a_server_or_postgresql(
    remote: str, tmp_path: Path, y2011: pd.DataFrame, trained: Any
) -> None:
    project = _prepare(tmp_path, y2011, trained)
    registry = cv.models.registry()
    assert type(registry.store).__name__ == ("RestMetadataStore" if remote == "rest" else "SqlMetadataStore")
    tainted = _tainted(project["holdout"].iloc[:9])
    with running(_app()) as base, httpx.Client(base_url=base) as http:
        monitor = cv.monitoring.create_monitor("bikes-2011", model=MODEL, reference=project["reference"])
        assert _until(lambda: http.get(f"/v1/models/{MODEL}").json()["outliers"][MODEL]["monitor"] == "bikes-2011")
        ids = _send(http, tainted, per_request=3)
    log = _log().set_index("_request_id")
    assert log.loc[ids, "_outlier"].tolist() == [True] * 9
    assert log.loc[ids, "_outlier_monitor"].eq(monitor.id).all()
    assert cv.monitoring.run_monitor("bikes-2011").result.outlier_rate == 1.0
