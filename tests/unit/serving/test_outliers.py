"""Which monitor's detector scores a served model, how its flags land in the log, and bad options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import conveyor as cv
from conveyor.cli.main import cli
from conveyor.core.errors import InvalidArgument
from conveyor.monitoring.evaluation import outlier_flags
from conveyor.monitoring.outliers import OutlierDetector
from conveyor.serving.config import ServeConfig
from conveyor.serving.live import LiveModel
from conveyor.serving.outliers import OutlierWatch, choose
from conveyor.stores.metadata.monitors import MonitorRecord
from conveyor.stores.predictions import PredictionLog, _merge
from conveyor.tracking import fluent

DATA = Path(__file__).resolve().parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "hr", "weathersit", "temp", "hum"]


@pytest.fixture(scope="module")
def y2011() -> pd.DataFrame:
    bikes = pd.read_csv(DATA)
    return bikes[bikes["yr"] == 0].reset_index(drop=True)


def _record(name: str, model: str, outliers: dict[str, Any] | None, created_at: int = 0) -> MonitorRecord:
    return MonitorRecord(id=f"id-{name}", project="p", name=name, model=model, config={"window": "1d",
                         "drift_threshold": 0.3, "features": FEATURES}, reference={}, outliers=outliers,
                         created_by="test", created_at=created_at)


def test_the_monitor_on_the_served_alias_wins_then_the_bare_name_then_the_newest(y2011: pd.DataFrame) -> None:
    fits = OutlierDetector.fit(y2011, columns=FEATURES).to_dict()
    wider = OutlierDetector.fit(y2011, columns=[*FEATURES, "windspeed"]).to_dict()
    records = [
        _record("bare-old", "bike", fits, created_at=1),
        _record("bare-new", "bike", fits, created_at=2),
        _record("champion", "bike@champion", fits),
        _record("other-model", "taxi", fits, created_at=9),
        _record("no-detector", "bike@champion", None),
        _record("wider", "bike@champion", wider, created_at=9),
    ]
    assert choose(records, "bike", "champion", FEATURES)[0].name == "champion"
    assert choose(records, "bike", "challenger", FEATURES)[0].name == "bare-new"
    assert choose(records, "bike", None, [*FEATURES, "windspeed"])[0].name == "bare-new"
    assert choose(records, "bike", "champion", None)[0].name == "wider"  # no signature: nothing to check
    assert choose(records, "bus", None, FEATURES) == (None, None)  # no monitor: nothing to say

    record, why = choose([records[-1]], "bike", "champion", FEATURES)
    assert record is None and why is not None and "'windspeed'" in why and "not scored" in why
    assert choose(records, "bike", "champion", FEATURES, named="bare-old")[0].name == "bare-old"
    for named, words in [("nope", "no monitor named 'nope'"), ("other-model", "watches 'taxi'"),
                         ("no-detector", "no outlier detector"), ("wider", "'windspeed'")]:
        record, why = choose(records, "bike", "champion", FEATURES, named=named)
        assert record is None and why is not None and words in why


def test_logged_flags_of_answered_rows_and_nulls_for_error_rows(conveyor_home: Path, y2011: pd.DataFrame) -> None:
    from sklearn.linear_model import Ridge

    cv.set_project("p")
    with cv.start_run():
        cv.log_model(Ridge().fit(y2011[FEATURES], y2011["cnt"]), name="bike", input_example=y2011[FEATURES].head(3))
    monitor = cv.monitoring.create_monitor("bikes", model="bike", reference=y2011)
    registry = cv.models.registry()
    live = LiveModel(registry, "models:/bike/1")
    live.refresh()
    scored: list[tuple[str, str, int, int]] = []
    watch = OutlierWatch(registry, [live], counted=lambda *counts: scored.append(counts))
    assert watch.refresh() and watch.current is not None and watch.current.monitor == "bikes"
    assert not watch.refresh()  # nothing changed

    rows = y2011[FEATURES].iloc[:4].copy()
    rows.loc[3, "temp"] = 40.0
    answered = {**{c: rows[c].to_numpy() for c in FEATURES}, "_request_id": list("abcd"),
                "_ts": np.full(4, 1_700_000_000_000), "_version": np.ones(4, dtype=np.int64)}
    failed = {"_request_id": ["e"], "_ts": [1_700_000_000_001], "_version": [None], "_error": ["ValueError: x"]}
    other_version = {**{c: rows[c].to_numpy()[:1] for c in FEATURES}, "_request_id": ["f"],
                     "_ts": [1_700_000_000_002], "_version": [7]}
    log = PredictionLog(fluent.client().content.backend)
    log.append_columns("bike", watch.annotate(_merge([answered, failed, other_version])))
    df = log.read("bike", include_errors=True, with_labels=False).set_index("_request_id")
    assert df.loc[list("abcd"), "_outlier"].tolist() == [False, False, False, True]
    assert df.loc[["e", "f"], "_outlier"].isna().all() and df.loc[["e", "f"], "_outlier_score"].isna().all()
    assert df.loc[list("abcd"), "_outlier_monitor"].eq(monitor.id).all()
    detector = OutlierDetector.from_dict(monitor.record.outliers)
    assert df.loc[list("abcd"), "_outlier_detector"].eq(detector.fingerprint).all()
    assert scored == [("bike", "bikes", 4, 1)]

    # monitoring keeps the verdicts of its own detector, and scores again those of another
    window = df.loc[list("abcd")].reset_index()
    window.loc[0, "_outlier"] = True
    flags, logged = outlier_flags(detector, window)
    assert flags.tolist() == [True, False, False, True] and logged == 4
    window["_outlier_detector"] = "0123456789abcdef"
    flags, logged = outlier_flags(detector, window)
    assert flags.tolist() == [False, False, False, True] and logged == 0


def test_a_category_read_back_as_float_is_still_the_same_category(y2011: pd.DataFrame) -> None:
    detector = OutlierDetector.fit(y2011, columns=FEATURES)
    rows = y2011[FEATURES].iloc[:50]
    with_null = rows.astype({"weathersit": float})  # what Parquet gives back for integers with a null
    with_null.iloc[0, with_null.columns.get_loc("weathersit")] = np.nan
    assert detector.flags(with_null).tolist() == detector.flags(rows).tolist()
    assert not detector.flags(rows).any()


@pytest.mark.parametrize(("options", "field"), [
    ({"outlier_monitor": "not a name!"}, "outlier_monitor"),
    ({"outlier_monitor": "bikes", "outliers": False}, "outlier_monitor"),
    ({"outlier_monitor": "bikes", "log_predictions": False}, "outlier_monitor"),
])
def test_bad_outlier_options_are_refused(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ServeConfig(model="models:/bike@champion", **options)
    assert caught.value.field == field


def test_each_worker_gets_the_outlier_options() -> None:
    config = ServeConfig(model="models:/bike@champion", outlier_monitor="bikes")
    assert ServeConfig.from_json(config.to_json()) == config  # what `conveyor serve` hands its workers
    assert not ServeConfig.from_json(ServeConfig(model="models:/bike/1", outliers=False).to_json()).outliers


def test_the_cli_refuses_bad_outlier_options_in_one_line(conveyor_home: Path) -> None:
    for args in (["--outlier-monitor", "not a name!"], ["--outlier-monitor", "bikes", "--no-outliers"]):
        result = CliRunner().invoke(cli, ["serve", "models:/bike@champion", *args], prog_name="conveyor")
        assert result.exit_code != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "outlier" in errors[0], result.stderr
