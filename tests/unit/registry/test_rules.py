"""The gate rule language: arithmetic and one comparison over metric names, never eval."""

from __future__ import annotations

import math

import pytest

from conveyor.core.errors import InvalidArgument
from conveyor.registry.rules import Rule

TABLES = {"candidate": {"rmse": 40.0, "roc_auc": 0.91}, "champion": {"rmse": 42.0, "roc_auc": 0.912}}


@pytest.mark.parametrize(
    ("text", "value", "threshold", "passed"),
    [
        ("rmse <= champion.rmse * 0.98", 40.0, 42.0 * 0.98, True),
        ("auc >= champion.auc - 0.002", 0.91, 0.912 - 0.002, True),
        ("candidate.auc > 0.95", 0.91, 0.95, False),
        ("(rmse - champion.rmse) / champion.rmse <= -0.05", (40 - 42) / 42, -0.05, False),
        ("-rmse < -39.5", -40.0, -39.5, True),
        ("rmse == 4e1", 40.0, 40.0, True),
        ("rmse != 40", 40.0, 40.0, False),
        ("1 + 2 * 3 == 7", 7.0, 7.0, True),
    ],
)
def test_rules_compute_value_and_threshold(text: str, value: float, threshold: float, passed: bool) -> None:
    outcome = Rule.parse(text).check(TABLES)
    assert outcome["value"] == pytest.approx(value)
    assert outcome["threshold"] == pytest.approx(threshold)
    assert outcome["passed"] is passed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("rmse", "ends too early"),
        ("rmse <= ", "ends too early"),
        ("rmse < 1 < 2", "unexpected '<'"),
        ("rmse + 1", "ends too early"),
        ("os.system > 0", "must be a metric"),
        ("rmse <= __import__('os')", "unexpected character"),
        ("(rmse <= 1", "missing '\\)'"), ("rmse 1", "expected a comparison"),
        ("rmse ** 2 < 1", "unexpected '*'"),
        ("", "non-empty"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why) as info:
        Rule.parse(text, field="gate.rules[3]")
    assert info.value.field == "gate.rules[3]"


def test_a_missing_metric_or_nan_fails_the_rule() -> None:
    assert Rule.parse("f1 >= champion.f1").check(TABLES)["detail"] == "candidate has no metric 'f1'"
    nan = {"candidate": {"rmse": math.nan}, "champion": {"rmse": 1.0}}
    assert Rule.parse("rmse <= champion.rmse").check(nan)["passed"] is False
    assert Rule.parse("rmse <= champion.rmse / 0").check(TABLES)["passed"] is False


def test_rules_know_whether_they_need_a_champion() -> None:
    assert Rule.parse("rmse <= champion.rmse").needs_champion
    assert not Rule.parse("rmse <= 50").needs_champion


def test_auc_is_roc_auc() -> None:
    assert Rule.parse("auc >= champion.auc - 0.002").metrics == {("candidate", "roc_auc"), ("champion", "roc_auc")}
