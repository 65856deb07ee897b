"""Stored monitors over a real prediction log: bike sharing, a LightGBM model, real files for alerts."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.stores.predictions import PredictionLog

DATA = Path(__file__).resolve().parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]
NOW = 1_800_000_000_000
HOUR = 3_600_000


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture
def model(data_home: Path, bikes: pd.DataFrame) -> Any:
    """LightGBM trained on 2011, its holdout RMSE logged to the run, registered as bike-demand."""
    import lightgbm as lgb

    y2011 = bikes[bikes["yr"] == 0]
    train, holdout = y2011.iloc[::2], y2011.iloc[1::2]
    cv.set_project("monitoring")
    with cv.start_run():
        fitted = lgb.LGBMRegressor(n_estimators=60, num_leaves=31, verbose=-1, random_state=0).fit(
            train[FEATURES], train["cnt"])
        rmse = float(np.sqrt(np.mean((fitted.predict(holdout[FEATURES]) - holdout["cnt"]) ** 2)))
        cv.log_metric("rmse", rmse)
        cv.log_model(fitted, name="bike-demand", input_example=train[FEATURES].head(5))
    return fitted


def _serve(model: Any, rows: pd.DataFrame, *, now: int = NOW, labels: bool = True, prefix: str = "r",
           label_values: list[Any] | None = None) -> None:
    """Write ``rows`` to the prediction log as served in the hour before ``now``, with their labels."""
    log = PredictionLog.open()
    ids = [f"{prefix}{i}" for i in range(len(rows))]
    columns: dict[str, list[Any]] = {c: rows[c].tolist() for c in FEATURES}
    columns |= {"_request_id": ids, "_ts": [now - HOUR + i for i in range(len(rows))],
                "_version": [1] * len(rows), "_latency_ms": [1.0] * len(rows), "_variant": ["primary"] * len(rows),
                "_prediction": model.predict(rows[FEATURES]).tolist()}
    log.append_columns("bike-demand", columns)
    if labels:
        values = label_values if label_values is not None else rows["cnt"].tolist()
        log.add_feedback("bike-demand", list(zip(ids, values, strict=True)))


def _reference(bikes: pd.DataFrame) -> pd.DataFrame:
    return bikes[bikes["yr"] == 0]


def _create(bikes: pd.DataFrame, **overrides: Any) -> Any:
    options: dict[str, Any] = {"model": "bike-demand", "reference": _reference(bikes), "window": "1d",
                               "drift_threshold": 0.3, "metric": "rmse",
                               "metric_threshold": "rmse > 1.2 * baseline", "target": "cnt"}
    options.update(overrides)
    return cv.monitoring.create_monitor("bikes", **options)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"window": "yesterday"}, "window"),
    ({"window": "0d"}, "window"),
    ({"drift_threshold": 1.5}, "drift_threshold"),
    ({"metric": "roc_auc"}, "metric"),
    ({"metric_threshold": "rmse > champion.rmse"}, "metric_threshold"),
    ({"metric_threshold": "rmse >"}, "metric_threshold"),
    ({"metric": None}, "metric"),
    ({"alerts": ["pager=123"]}, "alerts"),
    ({"alerts": ["webhook=http://169.254.169.254/latest/meta-data/"]}, "alerts"),
    ({"alerts": "webhook=https://hooks.example/x"}, "alerts"),
    ({"features": ["temp", "nope"]}, "features"),
    ({"target": "count"}, "target"),
    ({"model": "bike demand"}, "model"),
    ({"reference": [1, 2, 3]}, "reference"),
    ({"slices": "season"}, "slices"),
    ({"slices": ["season", "nope"]}, "slices"),
    ({"slices": ["season"], "metric": None, "metric_threshold": None}, "slices"),
    ({"slice_rule": True}, "slice_rule"),
    ({"slices": ["season"], "slice_rule": "yes"}, "slice_rule"),
])
def test_bad_input_names_the_field_and_stores_nothing(
    model: Any, bikes: pd.DataFrame, overrides: dict[str, Any], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_ALERT_ALLOW_HOSTS", raising=False)
    with pytest.raises(InvalidArgument) as err:
        _create(bikes, **overrides)
    assert err.value.field == field
    assert cv.monitoring.list_monitors() == []


def test_a_monitor_is_stored_with_its_profile_and_found_by_name(model: Any, bikes: pd.DataFrame) -> None:
    made = _create(bikes)
    assert made.features == FEATURES  # the model's inputs, from its signature
    assert made.record.reference["rows"] == len(_reference(bikes))
    assert {c["name"] for c in made.record.reference["columns"]} == {*FEATURES, "_label"}
    assert made.record.outliers["method"] == "robust_z"
    assert cv.monitoring.get_monitor("bikes") == made
    assert [m.name for m in cv.monitoring.list_monitors()] == ["bikes"]
    with pytest.raises(NotFound):
        cv.monitoring.create_monitor("other", model="no-such-model", reference=_reference(bikes))
    cv.monitoring.delete_monitor("bikes")
    with pytest.raises(NotFound):
        cv.monitoring.get_monitor("bikes")


def test_an_empty_window_is_no_data_never_ok(model: Any, bikes: pd.DataFrame) -> None:
    _create(bikes)
    outcome = cv.monitoring.run_monitor("bikes", now=NOW)
    assert outcome.status == "no-data" and outcome.result.rows == 0 and outcome.change is None
    _serve(model, _reference(bikes).sample(200, random_state=1))
    later = cv.monitoring.run_monitor("bikes", now=NOW + 2 * 86_400_000)  # the rows are outside that window
    assert later.status == "no-data"


def test_summer_traffic_drifts_against_a_whole_year_and_reports_temp(model: Any, bikes: pd.DataFrame) -> None:
    _create(bikes, metric=None, metric_threshold=None)
    summer = _reference(bikes)[_reference(bikes)["mnth"].isin([7, 8])].sample(400, random_state=2)
    _serve(model, summer, labels=False)
    outcome = cv.monitoring.run_monitor("bikes", now=NOW)
    result = outcome.result
    assert result.status == "drift" and result.rows == 400 and result.labelled_rows == 0
    assert {"temp", "atemp", "season", "mnth"} <= set(result.drifted_columns)
    assert result.share_drifted is not None and result.share_drifted >= 0.3
    assert result.outlier_rate is not None and 0 <= result.outlier_rate <= 1
    stored = cv.monitoring.list_results("bikes", with_reports=True)[0]
    assert stored.report is not None and stored.report["columns"]["temp"]["drifted"] is True


def test_rebasing_on_the_data_now_served_ends_the_drift_and_keeps_the_history(
    model: Any, bikes: pd.DataFrame
) -> None:
    from click.testing import CliRunner

    from conveyor.cli.main import cli

    made = _create(bikes, metric=None, metric_threshold=None)
    summer = _reference(bikes)[_reference(bikes)["mnth"].isin([7, 8])]
    _serve(model, summer.sample(400, random_state=2), labels=False)
    assert cv.monitoring.run_monitor("bikes", now=NOW).change == "opened"
    with pytest.raises(InvalidArgument) as err:  # the new data must hold every watched column
        cv.monitoring.rebase_monitor("bikes", summer.drop(columns=["temp"]))
    assert err.value.field == "reference" and "temp" in err.value.message
    assert cv.monitoring.get_monitor("bikes") == made

    cv.data.log(summer, name="summer-2011")
    runner = CliRunner()
    bad = runner.invoke(cli, ["monitor", "rebase", "bikes", "--reference", "no-such-data@1"], prog_name="conveyor")
    assert bad.exit_code != 0 and cv.monitoring.get_monitor("bikes") == made
    done = runner.invoke(cli, ["monitor", "rebase", "bikes", "--reference", "summer-2011@1"], prog_name="conveyor")
    assert done.exit_code == 0, done.output
    assert "now compares against summer-2011@1 (was <dataframe>)" in done.output

    rebased = cv.monitoring.get_monitor("bikes")
    assert rebased.id == made.id and rebased.features == made.features
    assert rebased.record.reference["rows"] == len(summer)
    outcome = cv.monitoring.run_monitor("bikes", now=NOW)  # the same traffic, now against summer
    assert outcome.status == "ok" and outcome.change == "resolved", outcome.result.reasons
    assert [r.status for r in cv.monitoring.list_results("bikes")] == ["ok", "drift"]


def test_a_breach_alerts_once_and_a_healthy_window_resolves_it(
    model: Any, bikes: pd.DataFrame, tmp_path: Path
) -> None:
    alerts = tmp_path / "alerts.jsonl"
    _create(bikes, alerts=[f"log={alerts}"])
    y2012 = bikes[bikes["yr"] == 1].sample(300, random_state=4)
    _serve(model, y2012, prefix="a")
    first = cv.monitoring.run_monitor("bikes", now=NOW)
    assert first.status == "degraded" and first.change == "opened"
    assert first.result.baseline is not None and first.result.metric_value > 1.2 * first.result.baseline
    assert first.result.labelled_rows == 300
    second = cv.monitoring.run_monitor("bikes", now=NOW)
    assert second.status == "degraded" and second.change is None and second.incident.id == first.incident.id
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [a["severity"] for a in sent] == ["critical"] and sent[0]["details"]["status"] == "degraded"

    later = NOW + 3 * 86_400_000
    _serve(model, _reference(bikes).sample(300, random_state=5), now=later, prefix="b")
    healed = cv.monitoring.run_monitor("bikes", now=later)
    assert healed.status == "ok" and healed.change == "resolved", healed.result.reasons
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [a["severity"] for a in sent] == ["critical", "resolved"]
    assert cv.monitoring.list_incidents("bikes")[0].status == "resolved"
    assert [r.status for r in cv.monitoring.list_results("bikes")] == ["ok", "degraded", "degraded"]


def test_a_failing_channel_is_recorded_and_never_breaks_the_evaluation(
    model: Any, bikes: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_ALERT_ALLOW_HOSTS", "127.0.0.1")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    alerts = tmp_path / "alerts.jsonl"
    _create(bikes, alerts=[f"webhook=http://127.0.0.1:{closed}/hook", f"log={alerts}"])
    _serve(model, bikes[bikes["yr"] == 1].sample(100, random_state=6))
    outcome = cv.monitoring.run_monitor("bikes", now=NOW)
    assert outcome.status == "degraded" and outcome.change == "opened"
    assert [(d["channel"], d["ok"]) for d in outcome.deliveries] == [("webhook", False), ("log", True)]
    assert "could not reach" in outcome.deliveries[0]["error"]
    assert [d["ok"] for d in cv.monitoring.list_incidents("bikes")[0].deliveries] == [False, True]
    assert len(alerts.read_text().splitlines()) == 1


def test_every_public_monitoring_name_resolves() -> None:
    assert cv.monitoring.__all__ == sorted(cv.monitoring.__all__)
    for name in cv.monitoring.__all__:
        assert getattr(getattr(cv.monitoring, name), "__name__", name) == name


def test_labels_that_are_not_numbers_leave_performance_unjudged_not_crashed(model: Any, bikes: pd.DataFrame) -> None:
    _create(bikes, target=None)
    rows = _reference(bikes).sample(50, random_state=7)
    _serve(model, rows, label_values=["high"] * len(rows))
    outcome = cv.monitoring.run_monitor("bikes", now=NOW)
    assert outcome.status != "degraded" and outcome.result.metric_value is None
    assert any("not numbers" in r for r in outcome.result.reasons)


def test_reports_are_stored_without_nan_or_infinity() -> None:
    from conveyor.monitoring.evaluation import json_safe

    assert json_safe({"a": [float("nan"), 1.5], "b": float("-inf"), "c": (float("inf"), "x")}) == {
        "a": [None, 1.5], "b": "-inf", "c": ["inf", "x"]}


def _rmse(rows: pd.DataFrame, model: Any, labels: Any = None) -> float:
    y = rows["cnt"].to_numpy(float) if labels is None else np.asarray(labels, dtype=float)
    return float(np.sqrt(np.mean((model.predict(rows[FEATURES]) - y) ** 2)))


def test_the_live_metric_per_season_with_row_counts_small_slices_unjudged(model: Any, bikes: pd.DataFrame) -> None:
    y2012 = bikes[bikes["yr"] == 1]
    rows = pd.concat([y2012[y2012["season"] != 4].sample(300, random_state=8),
                      y2012[y2012["season"] == 4].sample(6, random_state=8)])  # too few labels to judge
    # "casual" is in the reference but not a model input, so the log does not have it
    made = _create(bikes, slices=["season", "casual"])
    assert made.slices == ["season", "casual"] and made.slice_rule is False
    _serve(model, rows)
    _serve(model, y2012[y2012["season"] == 1].sample(20, random_state=9), labels=False, prefix="u")
    outcome = cv.monitoring.run_monitor("bikes", now=NOW)
    assert outcome.result.rows == 326 and outcome.result.labelled_rows == 306
    report = cv.monitoring.list_results("bikes", with_reports=True)[0].report
    assert report is not None
    slices = report["performance"]["slices"]
    assert "not in the prediction log" in slices["casual"]["error"]
    by_value = {s["value"]: s for s in slices["season"]["values"]}
    assert list(by_value) == ["1", "2", "3", "4"]
    served = rows["season"].value_counts()
    assert by_value["1"]["rows"] == served[1] + 20 and by_value["1"]["labelled"] == served[1]
    assert sum(s["rows"] for s in by_value.values()) == 326
    for season in (1, 2, 3):
        entry = by_value[str(season)]
        part = rows[rows["season"] == season]
        assert entry["judged"] is True
        assert entry["metric"] == pytest.approx(_rmse(part, model), rel=1e-9)
        assert entry["breaks"] is (entry["metric"] > 1.2 * outcome.result.baseline)
    assert by_value["4"]["labelled"] == 6 and by_value["4"]["judged"] is False and by_value["4"]["metric"] is None
    assert "at least 10" in by_value["4"]["note"]
    assert slices["season"]["more_values"] == 0


def test_slice_rule_degrades_a_window_when_one_season_breaks_the_rule(model: Any, bikes: pd.DataFrame) -> None:
    ref = _reference(bikes)
    fine = ref[ref["season"] != 1].sample(360, random_state=10)
    broken = ref[ref["season"] == 1].sample(40, random_state=10)
    rows = pd.concat([fine, broken])
    labels = [*fine["cnt"].tolist(), *(broken["cnt"] + 400).tolist()]  # season 1 is badly served
    _serve(model, rows, label_values=labels)
    options = {"metric_threshold": "rmse > 3 * baseline", "baseline": 50.0, "slices": ["season"]}
    assert _rmse(rows, model, labels) < 150 < _rmse(broken, model, broken["cnt"] + 400)

    _create(bikes, **options)
    plain = cv.monitoring.run_monitor("bikes", now=NOW)
    assert plain.status != "degraded", plain.result.reasons  # the whole window is within the rule
    report = cv.monitoring.list_results("bikes", with_reports=True)[0].report
    assert report is not None
    breaks = {s["value"]: s["breaks"] for s in report["performance"]["slices"]["season"]["values"]}
    assert breaks == {"1": True, "2": False, "3": False, "4": False}

    cv.monitoring.delete_monitor("bikes")
    _create(bikes, **options, slice_rule=True)
    ruled = cv.monitoring.run_monitor("bikes", now=NOW)
    assert ruled.status == "degraded" and ruled.change == "opened"
    assert any("on season=1" in r and "rmse > 3 * baseline" in r for r in ruled.result.reasons)


def test_slices_of_a_column_with_many_values_keep_the_largest_groups() -> None:
    from conveyor.monitoring.slices import MAX_SLICE_VALUES, slice_performance

    window = pd.DataFrame({"hr": [float(i % 80) for i in range(800)] + [np.nan] * 30})
    labelled = np.ones(len(window), dtype=bool)
    found, broken = slice_performance(window, labelled, ["hr"], "rmse", lambda rows: float(len(rows)),
                                      lambda value: value > 20)
    values = found["hr"]["values"]
    assert len(values) == MAX_SLICE_VALUES and values[0]["value"] == "0" and values[-1]["value"] == "(null)"
    assert values[-1]["rows"] == 30 and values[-1]["metric"] == 30.0 and values[-1]["breaks"] is True
    assert found["hr"]["more_values"] == 81 - MAX_SLICE_VALUES
    assert found["hr"]["more_rows"] == 830 - sum(v["rows"] for v in values)
    assert broken == ["rmse 30 on hr=(null)"]
