"""Promotion gates: what a version must show before an alias moves to it.

A gate is declared per registered model (``cv.models.set_gate``, or a YAML /
TOML policy file) or given inline to ``promote``. It re-scores *both* the
candidate and the current alias holder (the champion) on the same holdout
rows; logged numbers are never trusted. Its checks:

- metric rules (see :mod:`.rules`), e.g. ``rmse <= champion.rmse * 0.98``;
- slice rules: per value of a column, the candidate's metric may be worse
  than the champion's by at most a relative ``max_worse`` (0.05 = 5 %);
- latency: p95 of single-row ``predict`` on the input example, in ms;
- must-haves: the candidate's signature must accept what the champion's callers
  send, and the newest recorded validation of each training dataset version
  linked to the candidate (lineage role ``train...``) must have passed, per suite.
  A version with no recorded validation is skipped, or fails the gate when
  ``require_validated_data`` is set.

Example::

    gate = Gate(rules=["rmse <= champion.rmse * 0.98"], dataset="bikes-holdout@2", target="cnt",
                slices=[{"by": "season", "metric": "rmse", "max_worse": 0.05}], latency_p95_ms=20)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.registry import datasets
from conveyor.registry.evaluate import LOWER_IS_BETTER, TASKS, score
from conveyor.registry.rules import METRIC_ALIASES, Rule

_KEYS = {"rules", "dataset", "target", "task", "slices", "latency_p95_ms", "check_signature",
         "require_validated_data"}
LATENCY_CALLS = 100


@dataclass(frozen=True)
class SliceRule:
    by: str
    metric: str
    max_worse: float

    def describe(self) -> str:
        return f"no {self.by} slice {self.metric} worse than champion by more than {self.max_worse:.1%}"


@dataclass(frozen=True)
class Gate:
    """The checks a version must pass to take an alias (see the module docstring)."""

    rules: tuple[str, ...] = ()
    dataset: Any = None
    target: str | None = None
    task: str = "regression"
    slices: tuple[SliceRule, ...] = ()
    latency_p95_ms: float | None = None
    check_signature: bool = True
    require_validated_data: bool = False
    parsed: tuple[Rule, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "parsed", tuple(
            Rule.parse(text, field=f"gate.rules[{i}]") for i, text in enumerate(self.rules)))
        object.__setattr__(self, "slices", tuple(_slice(s, i) for i, s in enumerate(self.slices)))
        if self.task not in TASKS:
            raise InvalidArgument(f"gate.task must be one of {list(TASKS)}", field="gate.task")
        if (self.parsed or self.slices) and (self.dataset is None or not self.target):
            raise InvalidArgument("a gate with metric or slice rules needs a dataset and a target",
                                  field="gate.dataset" if self.dataset is None else "gate.target")
        if self.latency_p95_ms is not None and not (
            isinstance(self.latency_p95_ms, int | float) and self.latency_p95_ms > 0
        ):
            raise InvalidArgument("gate.latency_p95_ms must be a positive number", field="gate.latency_p95_ms")
        if not isinstance(self.require_validated_data, bool):
            raise InvalidArgument("gate.require_validated_data must be true or false",
                                  field="gate.require_validated_data")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        unknown = set(data) - _KEYS
        if unknown:
            raise InvalidArgument(f"unknown gate key(s) {sorted(unknown)}; known: {sorted(_KEYS)}",
                                  field=f"gate.{sorted(unknown)[0]}")
        rules = data.get("rules", ())
        if isinstance(rules, str) or not isinstance(rules, list | tuple):
            raise InvalidArgument("gate.rules must be a list of rule strings", field="gate.rules")
        return cls(rules=tuple(rules), dataset=data.get("dataset"), target=data.get("target"),
                   task=data.get("task", "regression"), slices=tuple(data.get("slices", ())),
                   latency_p95_ms=data.get("latency_p95_ms"), check_signature=bool(data.get("check_signature", True)),
                   require_validated_data=data.get("require_validated_data", False))

    @classmethod
    def from_file(cls, path: str | Path) -> Gate:
        """A gate from a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON policy file."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"gate file {str(path)!r} does not exist", field="gate")
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("gate"), dict):
            data = data["gate"]
        if not isinstance(data, dict):
            raise InvalidArgument(f"gate file {str(path)!r} must hold a mapping", field="gate")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The storable form; the dataset must then be a reference or a path, not a frame."""
        if self.dataset is not None and not isinstance(self.dataset, str | Path):
            raise InvalidArgument("a declared gate names its dataset by reference or path, not a DataFrame",
                                  field="gate.dataset")
        return {
            "rules": list(self.rules), "dataset": str(self.dataset) if self.dataset is not None else None,
            "target": self.target, "task": self.task,
            "slices": [{"by": s.by, "metric": s.metric, "max_worse": s.max_worse} for s in self.slices],
            "latency_p95_ms": self.latency_p95_ms, "check_signature": self.check_signature,
            "require_validated_data": self.require_validated_data,
        }


def as_gate(value: Gate | Mapping[str, Any] | str | Path | None) -> Gate | None:
    if value is None or isinstance(value, Gate):
        return value
    if isinstance(value, Mapping):
        return Gate.from_dict(value)
    if isinstance(value, str | Path):
        return Gate.from_file(value)
    raise InvalidArgument(f"gate must be a Gate, a dict or a policy file, got {type(value).__name__}", field="gate")


def _slice(value: Any, i: int) -> SliceRule:
    if isinstance(value, SliceRule):
        return value
    where = f"gate.slices[{i}]"
    if not isinstance(value, Mapping) or not {"by", "metric"} <= set(value):
        raise InvalidArgument(f"{where} must be a mapping with 'by', 'metric' and 'max_worse'", field=where)
    worse = value.get("max_worse", 0.0)
    if isinstance(worse, bool) or not isinstance(worse, int | float) or worse < 0:
        raise InvalidArgument(f"{where}.max_worse must be a non-negative fraction", field=where)
    metric = str(value["metric"])
    return SliceRule(str(value["by"]), METRIC_ALIASES.get(metric, metric), float(worse))


def p95_latency_ms(model: Any, example: Any, calls: int = LATENCY_CALLS) -> float:
    """p95 wall time of ``predict`` on one row of ``example``, over ``calls`` calls."""
    import numpy as np

    rows = len(example)
    model.predict(example.iloc[[0]] if hasattr(example, "iloc") else example[:1])  # warm-up
    times = []
    for i in range(calls):
        row = example.iloc[[i % rows]] if hasattr(example, "iloc") else example[i % rows : i % rows + 1]
        start = time.perf_counter()
        model.predict(row)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 95))


def _worse(metric: str, candidate: float, champion: float, max_worse: float) -> bool:
    if math.isnan(candidate) or math.isnan(champion):
        return not (math.isnan(candidate) and math.isnan(champion))
    if metric in LOWER_IS_BETTER:
        return candidate > champion * (1 + max_worse) + 1e-12
    return candidate < champion * (1 - max_worse) - 1e-12


def run(gate: Gate, candidate: Any, champion: Any | None,
        training: Sequence[datasets.TrainingData] | None = None) -> dict[str, Any]:
    """Every check of ``gate`` on loaded models; returns the report (``passed`` and each check).

    ``training`` is what :func:`datasets.training_data` found for the candidate; the
    training-data check runs only when it is given.
    """
    checks: list[dict[str, Any]] = []
    tables: dict[str, dict[str, float]] = {}
    report: dict[str, Any] = {"dataset": None}
    if gate.dataset is not None and gate.target:
        data = datasets.frame(gate.dataset, field="gate.dataset")
        report["dataset"] = {"source": str(gate.dataset) if isinstance(gate.dataset, str | Path) else "DataFrame",
                             "rows": len(data)}
        by = sorted({s.by for s in gate.slices})
        evaluations = {"candidate": score(candidate, data, target=gate.target, task=gate.task, slices=by)}
        if champion is not None:
            evaluations["champion"] = score(champion, data, target=gate.target, task=gate.task, slices=by)
        tables = {who: dict(e.metrics) for who, e in evaluations.items()}
        report["metrics"] = {who: e.to_dict() for who, e in evaluations.items()}
        for rule in gate.parsed:
            if rule.needs_champion and champion is None:
                checks.append({"rule": rule.text, "kind": "metric", "value": None, "threshold": None,
                               "passed": True, "detail": "no champion yet: nothing to compare with"})
            else:
                checks.append(rule.check(tables))
        for s in gate.slices:
            if champion is None:
                checks.append({"rule": s.describe(), "kind": "slice", "value": None, "threshold": None,
                               "passed": True, "detail": "no champion yet: nothing to compare with"})
                continue
            mine, theirs = evaluations["candidate"].slices[s.by], evaluations["champion"].slices[s.by]
            bad = [f"{s.by}={value}: {mine[value].get(s.metric, math.nan):.4g} vs "
                   f"{theirs[value].get(s.metric, math.nan):.4g}"
                   for value in sorted(mine)
                   if _worse(s.metric, mine[value].get(s.metric, math.nan),
                             theirs.get(value, {}).get(s.metric, math.nan), s.max_worse)]
            checks.append({"rule": s.describe(), "kind": "slice", "value": len(bad), "threshold": 0,
                           "passed": not bad, "detail": "; ".join(bad)})
    if gate.latency_p95_ms is not None:
        example = getattr(candidate, "input_example", None)
        if example is None:
            checks.append({"rule": f"p95 single-row latency <= {gate.latency_p95_ms} ms", "kind": "latency",
                           "value": None, "threshold": gate.latency_p95_ms, "passed": False,
                           "detail": "the candidate has no input example to time"})
        else:
            p95 = p95_latency_ms(candidate, example)
            checks.append({"rule": f"p95 single-row latency <= {gate.latency_p95_ms} ms", "kind": "latency",
                           "value": p95, "threshold": gate.latency_p95_ms, "passed": p95 <= gate.latency_p95_ms,
                           "detail": ""})
    if gate.check_signature:
        checks.append(signature_check(candidate, champion))
    if training is not None:
        checks.extend(data_checks(training, require=gate.require_validated_data))
    report["checks"] = checks
    report["passed"] = all(c["passed"] for c in checks)
    return report


def signature_check(candidate: Any, champion: Any | None) -> dict[str, Any]:
    """The must-have check: the candidate accepts what the champion's callers send."""
    rule = {"rule": "signature compatible with the champion's", "kind": "signature",
            "value": None, "threshold": None}
    if champion is None:
        return {**rule, "passed": True, "detail": "no champion yet"}
    if candidate.signature is None or champion.signature is None:
        return {**rule, "passed": True, "detail": "a signature is missing: not compared"}
    problems = candidate.signature.compatibility(champion.signature)
    return {**rule, "passed": not problems, "detail": "; ".join(problems)}


def data_checks(training: Sequence[datasets.TrainingData], *, require: bool) -> list[dict[str, Any]]:
    """The must-have check on the training data: one line per dataset version and suite.

    Each suite's newest validation of the version must have passed. A version never
    validated is skipped (it passes, marked ``skipped``) unless ``require`` is set.
    """
    if not training:
        rule = {"rule": "training data passed validation", "kind": "data", "value": None, "threshold": None}
        detail = "no training dataset is linked to this version (log_model(datasets={'train': ...}))"
        return [{**rule, "passed": not require, "skipped": not require, "detail": detail}]
    checks: list[dict[str, Any]] = []
    for data in training:
        if not data.checks:
            why = ("this metadata store keeps no validation results" if data.checks is None else
                   f"no validation of {data.ref} recorded; run cv.data.validate(cv.data.get({data.ref!r}), suite) "
                   f"or `conveyor data validate {data.ref} --suite FILE`")
            checks.append({"rule": f"training data {data.ref} passed validation", "kind": "data",
                           "dataset": data.ref, "role": data.role, "value": None, "threshold": None,
                           "passed": not require, "skipped": not require, "detail": why})
            continue
        for check in data.checks:
            report = check.report if isinstance(check.report, Mapping) else {}
            total = report.get("checks")
            of = f" of {total}" if isinstance(total, int) else ""
            detail = f"{check.num_failures}{of} checks failed in the newest validation, {_when(check.created_at)}"
            failures = report.get("failures") or []
            if failures and isinstance(failures[0], Mapping):
                first = failures[0]
                detail += f"; first: {first.get('column') or '-'} {first.get('check')}: {first.get('message')}"
            checks.append({"rule": f"training data {data.ref} passed validation (suite {check.suite!r})",
                           "kind": "data", "dataset": data.ref, "role": data.role, "suite": check.suite,
                           "check_id": check.id, "value": check.num_failures, "threshold": 0,
                           "passed": bool(check.ok), "detail": detail})
    return checks


def _when(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_report(report: Mapping[str, Any]) -> str:
    """Every check on one line: PASS/FAIL/SKIP, the rule, value vs threshold, and why."""
    lines = []
    for c in report.get("checks", []):
        mark = "SKIP" if c.get("skipped") else ("PASS" if c["passed"] else "FAIL")
        numbers = ""
        if c.get("value") is not None:
            value = c["value"]
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            threshold = c.get("threshold")
            numbers = f"  value={shown}" + (
                f" threshold={threshold:.6g}" if isinstance(threshold, float) else
                (f" threshold={threshold}" if threshold is not None else ""))
        detail = f"  ({c['detail']})" if c.get("detail") else ""
        lines.append(f"  [{mark}] {c['rule']}{numbers}{detail}")
    return "\n".join(lines)
