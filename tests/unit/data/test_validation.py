"""Validation: suites by hand and from profiles, every check kind, reports, recorded results."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import conveyor as cv
from conveyor.core.errors import DataValidationFailed, InvalidArgument
from conveyor.data import Check, Suite

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(DATA / "adult_census.csv")


def failed(report: cv.data.ValidationReport) -> set[tuple[str | None, str]]:
    return {(f.column, f.check) for f in report.failures}


def test_the_reference_data_passes_its_own_strict_suite(conveyor_home: Path, adult: pd.DataFrame) -> None:
    ds = cv.data.log(adult, name="adult")
    for tolerance in ("strict", "relaxed"):
        suite = Suite.from_profile(ds, tolerance=tolerance)
        report = cv.data.validate(ds, suite)
        assert report.ok, report.to_text()
        assert len(report.results) > 2 * len(adult.columns)


def test_a_tainted_batch_is_stopped_with_the_reasons(conveyor_home: Path, adult: pd.DataFrame) -> None:
    ds = cv.data.log(adult, name="adult")
    suite = Suite.from_profile(ds, tolerance="relaxed")
    batch = adult.sample(5000, random_state=0).reset_index(drop=True)
    batch.loc[:999, "hours_per_week"] = None  # a broken upstream join: 20% nulls
    batch.loc[:1499, "workclass"] = "Gig-economy"  # a category never seen
    batch["age"] = batch["age"] + 30  # a shifted population
    batch = batch.drop(columns=["fnlwgt"])  # a dropped column
    report = cv.data.validate(batch, suite)
    assert not report.ok
    assert {
        ("hours_per_week", "null_rate"),
        ("workclass", "new_categories"),
        ("age", "drift"),
        ("age", "range"),
        ("fnlwgt", "columns"),
    } <= failed(report)
    assert ("education", "drift") not in failed(report)  # untouched columns stay quiet
    failure = next(f for f in report.failures if f.check == "new_categories")
    assert failure.observed["examples"] == ["Gig-economy"]
    assert failure.expected == {"max_share": 0.05}
    with pytest.raises(DataValidationFailed) as info:
        cv.data.validate_or_raise(batch, suite)
    assert info.value.report.failures == report.failures
    assert (info.value.exit_code, info.value.http_status) == (1, 422)
    assert info.value.to_dict()["error"]["report"]["ok"] is False
    assert cv.data.validate_or_raise(adult, suite).ok


def frame() -> pl.DataFrame:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "email": ["a@x.io", "b@x.io", "bad", None],
            "price": [9.5, 10.0, 11.0, 250.0],
            "color": ["red", "blue", "red", "green"],
            "seen": [now - dt.timedelta(hours=h) for h in (30, 20, 10, 1)],
        }
    )


@pytest.mark.parametrize(
    ("build", "passes"),
    [
        (lambda s: s.columns({"id": "int", "price": "float", "color": "string"}), True),
        (lambda s: s.columns({"id": "string"}), False),
        (lambda s: s.columns(["id", "missing"]), False),
        (lambda s: s.not_null("id"), True),
        (lambda s: s.not_null("email"), False),
        (lambda s: s.not_null("email", max_share=0.25), True),
        (lambda s: s.unique("id"), True),
        (lambda s: s.unique("color"), False),
        (lambda s: s.between("price", 0, 100), False),
        (lambda s: s.between("price", min=0), True),
        (lambda s: s.isin("color", ["red", "blue", "green"]), True),
        (lambda s: s.isin("color", ["red", "blue"]), False),
        (lambda s: s.matches("email", r"[^@]+@[^@]+\.[a-z]+"), False),
        (lambda s: s.matches("color", r"[a-z]+"), True),
        (lambda s: s.row_count(min=1, max=4), True),
        (lambda s: s.row_count(min=5), False),
        (lambda s: s.fresh("seen", max_age_seconds=2 * 3600), True),
        (lambda s: s.fresh("seen", max_age_seconds=600), False),
        (lambda s: s.custom("prices rise with id", lambda df: df["price"].is_sorted()), True),
        (lambda s: s.custom("mean price", lambda df: (df["price"].mean() < 50, df["price"].mean())), False),
        (lambda s: s.custom("raises", lambda df: df["nope"].sum()), False),
        (lambda s: s.new_categories("color", ["red", "blue"], max_share=0.25), True),
        (lambda s: s.new_categories("color", ["red"], max_share=0.25), False),
        (lambda s: s.null_rate("email", reference=0.2, max_increase=0.1), True),
        (lambda s: s.null_rate("email", reference=0.0, max_increase=0.1), False),
        (lambda s: s.not_null("absent"), False),
        (lambda s: s.isin("color", [1, 2]), False),  # cannot run on text: fails closed
    ],
)
def test_each_check_kind_passes_and_fails_where_it_should(build, passes: bool) -> None:  # type: ignore[no-untyped-def]
    suite = build(Suite("by hand"))
    report = cv.data.validate(frame(), suite, record=False)
    assert report.ok is passes, report.to_text()


def test_drift_is_measured_against_the_reference_histogram() -> None:
    rng = np.random.default_rng(7)
    reference = pl.DataFrame({"x": rng.normal(0, 1, 20_000), "c": rng.choice(["a", "b", "c"], 20_000)})
    profile = cv.data.profile_frame(reference)
    suite = Suite.from_profile(profile, tolerance="strict")
    same = pl.DataFrame({"x": rng.normal(0, 1, 20_000), "c": rng.choice(["a", "b", "c"], 20_000)})
    shifted = pl.DataFrame(
        {"x": rng.normal(0.8, 1, 20_000), "c": rng.choice(["a", "b", "c"], 20_000, p=[0.8, 0.1, 0.1])}
    )
    drift = lambda r: {f.column for f in r.failures if f.check == "drift"}  # noqa: E731
    assert drift(cv.data.validate(same, suite, record=False)) == set()
    assert drift(cv.data.validate(shifted, suite, record=False)) == {"x", "c"}


def test_suites_round_trip_through_yaml_and_json(tmp_path: Path, adult: pd.DataFrame) -> None:
    suite = Suite.from_profile(cv.data.profile_frame(adult), tolerance="relaxed", name="adult")
    suite.matches("sex", "Male|Female")
    assert Suite.from_yaml(suite.to_yaml()) == suite
    assert Suite.from_json(suite.to_json()) == suite
    assert Suite.load(suite.save(tmp_path / "suite.yaml")) == suite
    assert Suite.load(suite.save(tmp_path / "suite.json")) == suite
    assert cv.data.validate(adult, Suite.load(tmp_path / "suite.yaml"), record=False).ok


def test_custom_checks_cannot_be_saved_as_data() -> None:
    suite = Suite("s").custom("positive", lambda df: True)
    with pytest.raises(InvalidArgument, match="custom Python checks \\(positive\\)"):
        suite.to_yaml()


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Suite("s").add(Check(kind="bogus")), "kind"),
        (lambda: Suite("s").matches("a", "(unclosed"), "pattern"),
        (lambda: Suite("s").between("a", 5, 1), "min"),
        (lambda: Suite("s").between("a"), "min"),
        (lambda: Suite("s").columns({"a": "integer"}), "types.a"),
        (lambda: Suite("s").fresh("a", -1), "max_age_seconds"),
        (lambda: Suite("s").not_null(""), "column"),
        (lambda: Suite.from_yaml("format: conveyor.suite/9\nname: x\n"), "format"),
        (lambda: Suite.from_yaml("name: [unclosed"), "suite"),
        (lambda: Suite.from_dict({"format": "conveyor.suite/1", "name": "x", "checks": [{"kind": 3}]}), "suite"),
        (lambda: Suite.from_profile({"num_rows": 1}, tolerance="strict"), "ds"),
        (lambda: Suite.from_profile({"num_rows": 1, "columns": {}}, tolerance="lenient"), "tolerance"),
    ],
)
def test_a_bad_suite_names_the_field(make, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as info:
        make()
    assert info.value.field == field


def test_reports_render_as_text_json_and_self_contained_escaped_html() -> None:
    hostile = '<script>alert("x")</script>'
    df = pl.DataFrame({hostile: [1, None], "v": ["<b>bold</b>", "ok"]})
    suite = Suite("<i>suite</i>").not_null(hostile).isin("v", ["ok"])
    report = cv.data.validate(df, suite, record=False)
    assert not report.ok and len(report.failures) == 2
    page = report.to_html()
    assert "<script" not in page and "<b>bold" not in page and "<i>suite" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert not re.search(r"(src|href)\s*=|https?://|@import", page)  # nothing fetched from anywhere
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["failed"] == 2
    assert {f["check"] for f in data["failures"]} == {"not_null", "allowed"}
    text = report.to_text()
    assert text.startswith("FAILED") and "0/2 checks passed" in text


def test_validation_results_are_recorded_and_queryable(conveyor_home: Path, adult: pd.DataFrame) -> None:
    ds = cv.data.log(adult, name="adult")
    suite = Suite.from_profile(ds, tolerance="strict")
    with cv.start_run() as run:
        cv.data.validate(adult.head(100), suite)
    cv.data.validate(ds, suite)
    cv.data.validate(adult, Suite("unsourced").row_count(min=1))  # no dataset: not recorded
    elsewhere = Suite("from another store", source="elsewhere@3").row_count(min=1)
    assert cv.data.validate(adult, elsewhere).ok
    assert [c.version for c in cv.data.checks("elsewhere")] == [3]
    found = cv.data.checks("adult")
    assert [(c.ok, c.version, c.run_id) for c in found] == [(True, 1, None), (False, 1, run.id)]
    assert found[1].target == "<DataFrame>" and found[0].target == "adult@1"
    assert found[1].num_failures == len(found[1].report["failures"]) > 0


def test_inside_a_run_the_report_is_stored_with_it_and_linked_in_lineage(
    conveyor_home: Path, adult: pd.DataFrame
) -> None:
    ds = cv.data.log(adult, name="adult")
    suite = Suite.from_profile(ds, tolerance="strict")
    with cv.start_run() as run:
        report = cv.data.validate(adult.head(100), suite)
        cv.data.validate(adult, Suite("unsourced").row_count(min=1))
    [check] = cv.data.checks("adult")
    artifacts = {a.path for a in cv.client().list_artifacts(run.id)}
    assert f"data-checks/{check.id}.json" in artifacts and len(artifacts) == 2
    stored = cv.download_artifacts(run.id, f"data-checks/{check.id}.json", conveyor_home / "dl")
    assert json.loads(stored.read_text())["failed"] == len(report.failures) > 0
    edges = [e for e in cv.client().store.list_lineage(ds.lineage_node) if e["relation"] == "validated"]
    assert [(e["dst"], e["attributes"]["check"], e["attributes"]["ok"]) for e in edges] == [
        (("run", run.id), check.id, False)
    ]
