"""Drift reports on real data, their edge cases, stored profiles and the HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from conveyor.core.errors import InvalidArgument
from conveyor.monitoring import OutlierDetector, ReferenceProfile, drift

BIKES = Path(__file__).parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "hr", "temp", "atemp", "hum", "windspeed", "weathersit", "workingday", "cnt", "registered"]


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    return pd.read_csv(BIKES)


def test_2012_against_2011_shows_the_growth_in_demand(bikes: pd.DataFrame) -> None:
    rep = drift(bikes[bikes.yr == 0][FEATURES], bikes[bikes.yr == 1][FEATURES], target="cnt")
    assert rep.target_drift is not None and rep.target_drift.drifted
    assert "registered" in rep.drifted_columns
    # Weather has the same seasons in both years: no drift in temperature year over year.
    assert rep.columns["temp"].method == "wasserstein" and not rep.columns["temp"].drifted
    assert "cnt" not in rep.drifted_columns  # the target is reported apart from the features
    assert rep.columns["season"].kind == "categorical"  # few distinct codes


def test_summer_against_winter_shows_seasonal_drift(bikes: pd.DataFrame) -> None:
    y2011 = bikes[bikes.yr == 0]
    rep = drift(y2011[y2011.season == 1][FEATURES], y2011[y2011.season == 3][FEATURES], target="cnt")
    assert {"temp", "atemp", "registered"} <= set(rep.drifted_columns)
    assert rep.dataset_drift and rep.target_drift is not None and rep.target_drift.drifted
    assert rep.columns["temp"].out_of_range_share > 0.1  # summer is warmer than any winter hour


def test_january_against_a_resample_of_itself_does_not_drift(bikes: pd.DataFrame) -> None:
    jan = bikes[(bikes.yr == 0) & (bikes.mnth == 1)][FEATURES]
    rep = drift(jan, jan.sample(frac=1.0, replace=True, random_state=4), target="cnt")
    assert rep.drifted_columns == [] and not rep.dataset_drift
    small = jan.iloc[:500]
    rep = drift(small, jan.iloc[:500].sample(frac=1.0, random_state=5), target="cnt")
    assert rep.columns["temp"].method == "ks" and rep.columns["temp"].p_value == pytest.approx(1.0)
    assert rep.drifted_columns == []


def test_a_stored_profile_gives_the_same_report(bikes: pd.DataFrame) -> None:
    ref, cur = bikes[bikes.yr == 0][FEATURES], bikes[bikes.yr == 1][FEATURES]
    profile = ReferenceProfile.from_frame(ref)
    stored = ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    direct, again = drift(ref, cur).to_dict(), drift(stored, cur).to_dict()
    assert direct == again


def test_polars_input_and_overrides(bikes: pd.DataFrame) -> None:
    ref = pl.from_pandas(bikes[bikes.yr == 0][FEATURES])
    cur = pl.from_pandas(bikes[bikes.yr == 1][FEATURES])
    rep = drift(ref, cur, column_types={"hr": "categorical"}, methods={"temp": "psi"},
                thresholds={"cnt": 0.9})
    assert rep.columns["hr"].kind == "categorical" and rep.columns["hr"].method == "jensenshannon"
    assert rep.columns["temp"].method == "psi" and rep.columns["temp"].threshold == 0.1
    assert not rep.columns["cnt"].drifted  # 0.68 is under the raised threshold


def test_edge_cases_are_reported_never_silently_clean() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({
        "x": rng.normal(size=300), "gone": rng.normal(size=300), "nulls": rng.normal(size=300),
        "const": np.ones(300), "typed": rng.normal(size=300), "never": [None] * 300,
    })
    cur = pd.DataFrame({
        "x": rng.normal(size=200), "nulls": [None] * 200, "const": np.ones(200),
        "typed": ["a"] * 200, "never": [None] * 200,
    })
    rep = drift(ref, cur)
    c = rep.columns
    assert c["gone"].status == "missing" and c["gone"].drifted and rep.missing_columns == ["gone"]
    assert c["nulls"].status == "empty" and c["nulls"].drifted and c["nulls"].current_null_share == 1.0
    assert c["typed"].status == "type_changed" and c["typed"].drifted
    assert c["never"].status == "empty" and not c["never"].drifted
    assert not c["const"].drifted and not c["x"].drifted
    json.dumps(rep.to_dict())  # always serialisable
    with pytest.raises(InvalidArgument, match="no rows") as err:
        drift(ref, cur.iloc[:0])
    assert err.value.field == "current"
    with pytest.raises(InvalidArgument, match="unknown drift method") as err:
        drift(ref, cur, methods={"x": "magic"})
    with pytest.raises(InvalidArgument, match="does not apply"):
        drift(ref, cur, methods={"x": "chisquare"})
    with pytest.raises(InvalidArgument, match="no target column"):
        drift(ref, cur, target="y")


def test_a_constant_column_that_moves_drifts() -> None:
    ref = pd.DataFrame({"c": np.ones(2000)})
    rep = drift(ref, pd.DataFrame({"c": np.full(2000, 2.0)}))
    assert rep.columns["c"].drifted


def test_a_hundred_thousand_categories_and_new_ones() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"user": rng.integers(0, 100_000, 200_000).astype(str)})
    cur = pd.DataFrame({"user": np.concatenate([
        rng.integers(0, 100_000, 50_000).astype(str), np.array([f"new-{i}" for i in range(5_000)])
    ])})
    rep = drift(ref, cur)
    col = rep.columns["user"]
    assert col.method == "jensenshannon" and col.statistic is not None and np.isfinite(col.statistic)
    # Beyond 10,000 counted categories the rest is one bucket: new ones cannot be named.
    assert col.new_categories == [] and col.new_category_share == 0.0
    few = drift(pd.DataFrame({"c": ["a", "b"] * 100}), pd.DataFrame({"c": ["a", "b", "z", "z"] * 50}))
    assert few.columns["c"].new_categories == ["z"] and few.columns["c"].new_category_share == 0.5
    assert few.columns["c"].drifted


def test_html_is_self_contained_and_escapes_names(bikes: pd.DataFrame, tmp_path: Path) -> None:
    ref = bikes[bikes.yr == 0][["temp", "cnt"]].rename(columns={"temp": "<script>alert(1)</script>"})
    cur = bikes[bikes.yr == 1][["temp", "cnt"]].rename(columns={"temp": "<script>alert(1)</script>"})
    out = tmp_path / "drift.html"
    page = drift(ref, cur, target="cnt").to_html(str(out))
    assert out.read_text() == page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<svg" in page


def test_outliers_learnt_from_the_reference(bikes: pd.DataFrame) -> None:
    ref = bikes[bikes.yr == 0][["temp", "hum", "windspeed", "weathersit"]]
    detector = OutlierDetector.fit(ref)
    assert detector.rate(ref) < 0.01
    odd = ref.iloc[:100].copy()
    odd.loc[odd.index[:10], "hum"] = 25.0  # humidity given in percent instead of a share
    odd.loc[odd.index[10:15], "weathersit"] = 9  # a weather code that does not exist
    flags = detector.flags(odd)
    assert flags[:15].all() and flags.sum() == 15
    stored = OutlierDetector.from_dict(json.loads(json.dumps(detector.to_dict())))
    assert (stored.score(odd) == detector.score(odd)).all()
    forest = OutlierDetector.fit(ref, method="isolation_forest")
    assert forest.rate(ref) == pytest.approx(0.01, abs=0.005)
    # Trees cut only inside the training range, so the forest finds odd *combinations*:
    # scorching, bone-dry, stormy hours never happened in 2011.
    strange = pd.DataFrame({"temp": [1.0, 0.02], "hum": [0.0, 1.0], "windspeed": [0.85, 0.8],
                            "weathersit": [1, 1]})
    assert forest.flags(strange).all() and not forest.flags(ref.iloc[:50]).any()
    with pytest.raises(InvalidArgument, match="no column"):
        detector.score(odd.drop(columns=["hum"]))


def test_drift_leaves_the_callers_frames_as_they_were(bikes: pd.DataFrame) -> None:
    ref, cur = bikes[bikes.yr == 0].reset_index(drop=True), bikes[bikes.yr == 1].reset_index(drop=True)
    before = ref.copy(), cur.copy()
    drift(ref, cur)
    pd.testing.assert_frame_equal(ref, before[0])
    pd.testing.assert_frame_equal(cur, before[1])


def test_strided_columns_nulls_and_nullable_integers_are_read_right() -> None:
    from conveyor.monitoring.profile import profile_column

    rng = np.random.default_rng(5)
    ref = pd.DataFrame(rng.normal(size=(3_000, 7)), columns=[f"x{i}" for i in range(7)])  # strided columns
    cur = pd.DataFrame(rng.normal(0.2, 1, size=(2_500, 7)), columns=ref.columns)
    ref.loc[::3, "x1"] = np.nan
    cur.loc[::4, "x2"] = np.nan
    cur["x3"] = pd.array(rng.integers(0, 50, 2_500), dtype="Int64")
    cur.loc[::5, "x3"] = pd.NA
    cur["x4"] = np.nan  # empty in the current window
    before = ref.copy(), cur.copy()
    profile = ReferenceProfile.from_frame(ref)
    for name in ref.columns:  # the one-column path (a mask, then a sorted copy) agrees
        assert profile.columns[name].to_dict() == profile_column(name, ref[name], None).to_dict()
    assert profile.columns["x1"].nulls == 1_000 and profile.columns["x1"].count == 2_000
    report = drift(profile, cur).to_dict()["columns"]
    assert report["x2"]["current_null_share"] == pytest.approx(0.25)
    assert report["x3"]["current_null_share"] == pytest.approx(0.2) and report["x3"]["status"] == "ok"
    assert report["x4"]["status"] == "empty" and report["x4"]["drifted"] is True
    assert drift(ref, cur).to_dict()["columns"] == report
    pd.testing.assert_frame_equal(ref, before[0])
    pd.testing.assert_frame_equal(cur, before[1])
