"""The gate's must-have check on the training data: its newest recorded validation passed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.errors import GateFailed, InvalidArgument
from conveyor.registry.gate import Gate, format_report
from conveyor.stores.metadata.sql.audit import iter_events

pytestmark = pytest.mark.usefixtures("conveyor_home")

DATA = Path(__file__).resolve().parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "hr", "workingday", "weathersit", "temp", "hum", "windspeed"]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """A clean training sample of the bike data and the same rows tainted by a broken sensor feed."""
    frame = pd.read_csv(DATA).sample(n=2000, random_state=3).reset_index(drop=True)[[*FEATURES, "cnt"]]
    tainted = frame.copy()
    rows = tainted.sample(frac=0.1, random_state=4).index
    tainted.loc[rows, "hum"] = -1.0  # humidity below 0: a unit / sentinel bug upstream
    tainted.loc[rows, "temp"] = tainted.loc[rows, "temp"] * 41  # Celsius where the feed sends a 0-1 scale
    return {"clean": frame, "tainted": tainted}


def fit(frame: pd.DataFrame, kind: str = "lightgbm") -> Any:
    if kind == "lightgbm":
        import lightgbm as lgb

        return lgb.LGBMRegressor(n_estimators=20, num_leaves=15, verbose=-1, random_state=0).fit(
            frame[FEATURES], frame["cnt"])
    from sklearn.linear_model import Ridge

    return Ridge().fit(frame[FEATURES], frame["cnt"])


def log(frame: pd.DataFrame, train: Any, kind: str = "lightgbm") -> int:
    with cv.start_run():
        mv = cv.log_model(fit(frame, kind), name="bike-demand", input_example=frame[FEATURES].head(5),
                          datasets={"train": train})
    return mv.version


def audit_actions() -> list[str]:
    with cv.client().store.engine.connect() as conn:  # type: ignore[attr-defined]
        return [e.action for e in iter_events(conn)]


def data_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in report["checks"] if c["kind"] == "data"]


def test_validated_training_data_passes_and_tainted_data_is_refused(frames: dict[str, pd.DataFrame]) -> None:
    cv.set_project("bikes")
    clean = cv.data.log(frames["clean"], name="bikes-train")
    suite = cv.data.Suite.from_profile(clean, tolerance="strict")
    assert cv.data.validate(clean, suite).ok
    assert log(frames["clean"], clean) == 1
    first = cv.models.promote("bike-demand", version=1, to="champion")
    [line] = data_lines(first.report)
    assert first.passed and line["passed"] and not line.get("skipped")
    assert (line["dataset"], line["suite"], line["value"]) == ("bikes-train@1", suite.name, 0)
    assert f"[PASS] training data bikes-train@1 passed validation (suite '{suite.name}')" in format_report(
        first.report)

    tainted = cv.data.log(frames["tainted"], name="bikes-train")  # bikes-train@2
    report = cv.data.validate(tainted, suite)
    assert not report.ok and len(report.failures) >= 2
    assert log(frames["tainted"], tainted, kind="sklearn") == 2
    before = audit_actions()
    with pytest.raises(GateFailed) as info:
        cv.models.promote("bike-demand", version=2, to="champion")
    [line] = data_lines(info.value.report)
    assert line["passed"] is False and line["value"] == len(report.failures)
    assert (line["dataset"], line["suite"]) == ("bikes-train@2", suite.name)
    message = str(info.value)
    assert f"[FAIL] training data bikes-train@2 passed validation (suite '{suite.name}')" in message
    assert f"value={len(report.failures)} threshold=0" in message and "checks failed" in message
    # refused: the alias did not move, the verdict is recorded and audited, nothing else happened
    assert cv.models.get_model("bike-demand").aliases == {"champion": 1}
    assert audit_actions()[len(before):] == ["gate.failed"]
    [recorded] = cv.models.evaluations("bike-demand", 2)
    assert recorded.passed is False and data_lines(recorded.report)[0]["passed"] is False


def test_the_newest_validation_of_each_suite_counts(frames: dict[str, pd.DataFrame]) -> None:
    cv.set_project("bikes")
    clean = cv.data.log(frames["clean"], name="bikes-train")
    strict = cv.data.Suite.from_profile(clean, tolerance="strict")
    assert cv.data.validate(clean, strict).ok
    log(frames["clean"], clean)
    # A new batch checked against a suite derived from bikes-train@1 is recorded under
    # bikes-train@1 too; its failure says nothing about bikes-train@1 itself.
    assert not cv.data.validate(frames["tainted"], strict).ok
    assert cv.data.checks("bikes-train")[0].version == 1
    assert cv.models.promote("bike-demand", version=1, to="champion").passed

    # A hand-written suite that bikes-train@1 fails: a later pass of another suite does not hide it.
    hand = cv.data.Suite("hand").between("hum", 0.2, 1.0)
    assert not cv.data.validate(clean, hand).ok
    assert cv.data.validate(clean, strict).ok
    log(frames["clean"], clean, kind="sklearn")
    with pytest.raises(GateFailed) as info:
        cv.models.promote("bike-demand", version=2, to="challenger")
    verdicts = {c["suite"]: c["passed"] for c in data_lines(info.value.report)}
    assert verdicts == {"hand": False, strict.name: True}
    # once the suite is fixed and passes, its newest result is what counts
    assert cv.data.validate(clean, cv.data.Suite("hand").between("hum", 0.0, 1.0)).ok
    assert cv.models.promote("bike-demand", version=2, to="challenger").passed


def test_no_validation_is_skipped_unless_the_gate_requires_it(frames: dict[str, pd.DataFrame],
                                                              tmp_path: Path) -> None:
    cv.set_project("bikes")
    train = cv.data.log(frames["clean"], name="bikes-train")
    log(frames["clean"], train)
    log(frames["clean"], train, kind="sklearn")
    before = audit_actions()
    strict_yaml = tmp_path / "gate.yaml"
    strict_yaml.write_text("gate:\n  require_validated_data: true\n")
    with pytest.raises(GateFailed) as info:
        cv.models.promote("bike-demand", version=1, to="champion", gate=str(strict_yaml))
    [line] = data_lines(info.value.report)
    assert line["passed"] is False and not line.get("skipped")
    assert "no validation of bikes-train@1 recorded" in line["detail"] and "[FAIL]" in str(info.value)
    assert cv.models.get_model("bike-demand").aliases == {}
    assert audit_actions()[len(before):] == ["gate.failed"]

    skipped = cv.models.promote("bike-demand", version=1, to="champion")  # the default gate
    [line] = data_lines(skipped.report)
    assert skipped.passed and line["passed"] and line["skipped"]
    assert "[SKIP] training data bikes-train@1 passed validation" in format_report(skipped.report)

    # declared in a TOML policy: the requirement is stored with the model's gate
    policy = tmp_path / "gate.toml"
    policy.write_text("[gate]\nrequire_validated_data = true\n")
    cv.models.set_gate("bike-demand", str(policy))
    assert cv.models.get_model("bike-demand").gate["require_validated_data"] is True
    with pytest.raises(GateFailed):
        cv.models.promote("bike-demand", version=2, to="champion")
    assert cv.models.get_model("bike-demand").aliases == {"champion": 1}
    assert cv.data.validate(train, cv.data.Suite.from_profile(train)).ok
    assert cv.models.promote("bike-demand", version=2, to="champion").passed


def test_a_model_without_training_data_and_bad_options() -> None:
    cv.set_project("bikes")
    frame = pd.DataFrame({"x": np.arange(50, dtype=float), "cnt": np.arange(50) * 2.0})
    from sklearn.linear_model import LinearRegression

    cv.log_model(LinearRegression().fit(frame[["x"]], frame["cnt"]), name="plain", input_example=frame[["x"]].head(3))
    with pytest.raises(GateFailed, match="no training dataset is linked"):
        cv.models.promote("plain", version=1, gate=Gate(require_validated_data=True))
    [line] = data_lines(cv.models.promote("plain", version=1).report)
    assert line["skipped"] and line["rule"] == "training data passed validation"
    with pytest.raises(InvalidArgument) as info:
        cv.models.promote("plain", version=1, gate={"require_validated_data": "yes"})
    assert info.value.field == "gate.require_validated_data"
    assert Gate.from_dict(Gate(require_validated_data=True).to_dict()).require_validated_data is True
