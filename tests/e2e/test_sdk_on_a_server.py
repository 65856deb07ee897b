"""The SDK against a live server: models, datasets and monitors with ``CONVEYOR_URI=http://…``.

Metadata goes through the server's routes and, except for the monitor's
prediction log, the bytes go through its blob routes (the SDK's ``http``
artifact backend). Real data from ``examples/data``, real scikit-learn models.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.errors import GateFailed, NotFound, PermissionDenied
from conveyor.core.ids import now_ms
from conveyor.core.settings import reset_settings
from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]

pytestmark = pytest.mark.usefixtures("conveyor_home")


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A server on SQLite with auth off; the SDK pointed at it for metadata and bytes."""
    artifacts = tmp_path / "server-artifacts"
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'server.db'}", artifacts=str(artifacts))
    with serve(config) as url:
        cv.configure(uri=url, artifacts=url)
        yield url, tmp_path
        cv.configure()


def _server_store(tmp_path: Path) -> SqlMetadataStore:
    """The server's own database, to check what landed there (not what the client believes)."""
    return SqlMetadataStore(f"sqlite:///{tmp_path / 'server.db'}")


def test_models_are_logged_loaded_and_promoted_through_a_gate(
    server: tuple[str, Path], bikes: pd.DataFrame
) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeRegressor

    _, tmp_path = server
    train, holdout = bikes.iloc[:8000], bikes.iloc[8000:10000]
    cv.set_project("bikes")
    holdout_ds = cv.data.log(holdout[[*FEATURES, "cnt"]], name="bikes-holdout")
    weak = LinearRegression().fit(train[FEATURES], train["cnt"])
    strong = DecisionTreeRegressor(max_depth=10, random_state=0).fit(train[FEATURES], train["cnt"])
    with cv.start_run() as run:
        first = cv.log_model(weak, name="bike-demand", input_example=train[FEATURES].head(5))
        second = cv.log_model(strong, name="bike-demand", input_example=train[FEATURES].head(5),
                              datasets={"valid": holdout_ds})
        third = cv.log_model(LinearRegression().fit(train[FEATURES].iloc[:200], train["cnt"].iloc[:200]),
                             name="bike-demand", input_example=train[FEATURES].head(5))
    assert [mv.version for mv in (first, second, third)] == [1, 2, 3] and first.run_id == run.id

    loaded = cv.load_model("models:/bike-demand/2")  # the package came back through the server, verified
    np.testing.assert_allclose(loaded.predict(holdout[FEATURES]), strong.predict(holdout[FEATURES]))

    gate = {"rules": ["rmse <= champion.rmse"], "dataset": holdout_ds.ref, "target": "cnt"}
    cv.models.promote("bike-demand", 1, to="champion", gate=gate)
    passed = cv.models.promote("bike-demand", 2, to="champion", gate=gate)
    assert passed.passed and passed.champion_version == 1
    with pytest.raises(GateFailed, match="refused by its gate"):
        cv.models.promote("bike-demand", 3, to="champion", gate=gate)
    assert cv.models.get_model("bike-demand").aliases == {"champion": 2}
    assert cv.load_model("models:/bike-demand@champion").metadata["version"] == 2
    assert [(e.version, e.passed) for e in cv.models.evaluations("bike-demand")] == [(1, True), (2, True), (3, False)]
    kinds = {n["kind"] for n in cv.models.lineage("models:/bike-demand/2").nodes}
    assert {"model_version", "run", "dataset_version"} <= kinds

    server_side = _server_store(tmp_path)
    try:
        assert server_side.registry.get_model("bikes", "bike-demand").aliases == {"champion": 2}
        assert len(server_side.registry.list_versions("bikes", "bike-demand")) == 3
    finally:
        server_side.close()


def test_the_gate_reads_the_training_data_validation_through_a_server(
    server: tuple[str, Path], bikes: pd.DataFrame
) -> None:
    from sklearn.linear_model import Ridge

    cv.set_project("bikes")
    clean = bikes.iloc[:3000][[*FEATURES, "cnt"]]
    tainted = clean.assign(hum=-1.0)  # a broken sensor feed
    suite = cv.data.Suite("bikes").between("hum", 0.0, 1.0)
    versions = {}
    for label, frame in (("clean", clean), ("tainted", tainted)):
        ds = cv.data.log(frame, name="bikes-train")
        assert cv.data.validate(ds, suite).ok is (label == "clean")
        versions[label] = cv.log_model(Ridge().fit(frame[FEATURES], frame["cnt"]), name="bike-demand",
                                       input_example=frame[FEATURES].head(5), datasets={"train": ds}).version
    assert cv.models.promote("bike-demand", versions["clean"], to="champion").passed
    with pytest.raises(GateFailed, match=r"\[FAIL\] training data bikes-train@2 passed validation \(suite 'bikes'\)"):
        cv.models.promote("bike-demand", versions["tainted"], to="champion")
    assert cv.models.get_model("bike-demand").aliases == {"champion": versions["clean"]}


def test_datasets_are_versioned_and_read_back_through_a_server(
    server: tuple[str, Path], bikes: pd.DataFrame
) -> None:
    _, tmp_path = server
    january = bikes[bikes["mnth"] == 1].reset_index(drop=True)
    first = cv.data.log(january, name="bikes-january", tags={"source": "uci"})
    again = cv.data.log(january, name="bikes-january")  # unchanged content: the same version
    second = cv.data.log(january.iloc[:100], name="bikes-january")
    assert (first.ref, again.ref, second.ref) == ("bikes-january@1", "bikes-january@1", "bikes-january@2")
    back = cv.data.get("bikes-january@1").to_pandas()
    pd.testing.assert_frame_equal(back.reset_index(drop=True), january, check_dtype=False)
    assert len(cv.data.get("bikes-january@2").to_pandas()) == 100
    assert [(d.name, d.latest_version) for d in cv.data.list_datasets()] == [("bikes-january", 2)]
    with pytest.raises(NotFound):
        cv.data.get("bikes-january@3")

    server_side = _server_store(tmp_path)
    try:
        assert [v.version for v in server_side.datasets.list_versions("bikes-january")] == [1, 2]
        assert server_side.datasets.get_version("bikes-january", 1).tags == {"source": "uci"}
    finally:
        server_side.close()


def test_monitors_are_stored_and_run_through_a_server(
    tmp_path: Path, bikes: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prediction log is not served by the server (its blob routes take content-addressed
    blobs only), so serving and monitoring share an artifact store, as a team shares a bucket;
    the monitor, its results and its incidents go through the server."""
    from sklearn.tree import DecisionTreeRegressor

    from conveyor.stores.predictions import PredictionLog

    shared = tmp_path / "shared-artifacts"
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'server.db'}", artifacts=str(shared))
    with serve(config) as url:
        cv.configure(uri=url, artifacts=str(shared))
        try:
            y2011, y2012 = bikes[bikes["yr"] == 0], bikes[bikes["yr"] == 1]
            cv.set_project("bikes")
            reference = cv.data.log(y2011, name="bikes-2011")
            with cv.start_run():
                model = DecisionTreeRegressor(max_depth=8, random_state=0).fit(y2011[FEATURES], y2011["cnt"])
                cv.log_model(model, name="bike-demand", input_example=y2011[FEATURES].head(5))
            cv.models.set_alias("bike-demand", "champion", version=1)
            alerts = tmp_path / "alerts.jsonl"
            monitor = cv.monitoring.create_monitor("bike-demand", model="bike-demand@champion",
                                                   reference=reference.ref, window="1d", drift_threshold=0.3,
                                                   alerts=[f"log={alerts}"])
            assert [m.name for m in cv.monitoring.list_monitors()] == ["bike-demand"]

            summer = y2012[y2012["mnth"].isin([6, 7, 8])].sample(400, random_state=0)
            now = now_ms()
            predictions = model.predict(summer[FEATURES])
            rows = [{"_request_id": f"r{i}", "_ts": now - 1000 + i, "_version": 1, "_latency_ms": 1.0,
                     "_prediction": float(p), **{f: row[f] for f in FEATURES}}
                    for i, (p, (_, row)) in enumerate(zip(predictions, summer.iterrows(), strict=True))]
            PredictionLog.open(str(shared)).append("bike-demand", rows)

            first = cv.monitoring.run_monitor("bike-demand", now=now + 1)
            assert first.result.rows == 400 and first.status == "drift" and first.change == "opened"
            assert {"yr", "temp"} <= set(first.result.drifted_columns)
            second = cv.monitoring.run_monitor("bike-demand", now=now + 2)
            assert second.change is None and second.incident.id == first.incident.id  # one incident, one alert
            assert len(alerts.read_text().splitlines()) == 1
            assert [r.status for r in cv.monitoring.list_results("bike-demand")] == ["drift", "drift"]

            server_side = _server_store(tmp_path)
            try:
                incident = server_side.monitors.open_incident(monitor.id)
                assert incident is not None and [d["channel"] for d in incident.deliveries] == ["log"]
            finally:
                server_side.close()
            cv.monitoring.delete_monitor("bike-demand")
            with pytest.raises(NotFound):
                cv.monitoring.get_monitor("bike-demand")
        finally:
            cv.configure()


def test_a_forced_promotion_needs_the_owner_role(
    tmp_path: Path, bikes: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LinearRegression

    uri = f"sqlite:///{tmp_path / 'server.db'}"
    admin_side = SqlMetadataStore(uri)
    gov = admin_side.governance
    tokens = {name: gov.create_principal(name).token for name in ("eddie", "olga", "sam")}
    gov.grant("eddie", project="bikes", role="editor")
    gov.grant("olga", project="bikes", role="owner")
    admin_side.close()

    def as_user(name: str, url: str) -> None:
        monkeypatch.setenv("CONVEYOR_TOKEN", tokens[name])
        reset_settings()
        cv.configure(uri=url, artifacts=url)

    train = bikes.iloc[:4000]
    config = ServerConfig(backend=uri, artifacts=str(tmp_path / "artifacts"), auth=True)
    with serve(config) as url:
        try:
            as_user("eddie", url)
            cv.set_project("bikes")
            # Version 2 needs every feature; the champion's callers send only "hr": its signature gate fails.
            # (A gate with only the signature check needs no package download: with auth on, blob reads
            # are still limited to blobs a run recorded.)
            narrow = LinearRegression().fit(train[["hr"]], train["cnt"])
            wide = LinearRegression().fit(train[FEATURES], train["cnt"])
            with cv.start_run():  # an editor's run links its datasets and model: lineage by project role
                train_ds = cv.data.log(train[["hr", "cnt"]], name="bikes-train")
                first = cv.log_model(narrow, name="bike-demand", input_example=train[["hr"]].head(5),
                                     datasets={"train": train_ds})
            kinds = {n["kind"] for n in cv.models.lineage("models:/bike-demand/1").nodes}
            assert {"model_version", "run", "dataset_version"} <= kinds
            stranger = httpx.get(f"{url}/api/v1/lineage", params={"kind": "model_version", "id": first.id},
                                 headers={"Authorization": f"Bearer {tokens['sam']}"})
            assert stranger.status_code == 403, stranger.text
            cv.log_model(wide, name="bike-demand", input_example=train[FEATURES].head(5))
            gate: dict[str, Any] = {}
            cv.models.promote("bike-demand", 1, to="champion", gate=gate)
            with pytest.raises(GateFailed, match="signature"):
                cv.models.promote("bike-demand", 2, to="champion", gate=gate)
            with pytest.raises(PermissionDenied, match="eddie needs the owner role on bikes"):
                cv.models.promote("bike-demand", 2, to="champion", gate=gate, force=True, reason="hotfix")
            assert cv.models.get_model("bike-demand").aliases == {"champion": 1}
            assert [e.forced for e in cv.models.evaluations("bike-demand")] == [False, False]

            as_user("olga", url)
            cv.set_project("bikes")
            forced = cv.models.promote("bike-demand", 2, to="champion", gate=gate, force=True, reason="hotfix")
            assert forced.forced and not forced.passed and forced.actor == "olga"
            assert cv.models.get_model("bike-demand").aliases == {"champion": 2}
            audit = cv.client().store.governance.list_audit(project="bikes")
            events = [(e.action, e.actor, e.details.get("reason")) for e in audit if e.action.startswith("gate.")]
            assert events == [("gate.passed", "eddie", ""), ("gate.failed", "eddie", ""),
                              ("gate.forced", "olga", "hotfix")]
        finally:
            cv.configure()
            monkeypatch.delenv("CONVEYOR_TOKEN")
            reset_settings()
