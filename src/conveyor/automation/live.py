"""Live metrics of one served model version over a time range of the prediction log.

What the canary and rollback rules read: the metrics of the rows that have
labels (RMSE, accuracy ...) and the error rate of the requests the version
failed, for the candidate and for the version it replaces, over the same span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from conveyor.automation.spec import ERROR_RATE, Clause


@dataclass(frozen=True)
class Live:
    """What one version did between ``start`` and ``end``."""

    version: int | None
    start: int
    end: int
    rows: int = 0
    labelled: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "start": self.start, "end": self.end, "rows": self.rows,
                "labelled": self.labelled, "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Live:
        return cls(data.get("version"), data["start"], data["end"], data.get("rows", 0), data.get("labelled", 0),
                   dict(data.get("metrics", {})))


def measure(log: Any, model: str, version: int | None, start: int, end: int, metrics: list[str]) -> Live:
    """Read ``[start, end)`` of ``model``'s log for ``version`` and compute ``metrics``."""
    if version is None:
        return Live(None, start, end)
    return measure_versions(log, model, [version], start, end, metrics)[version]


def measure_versions(
    log: Any, model: str, versions: list[int], start: int, end: int, metrics: list[str]
) -> dict[int, Live]:
    """:func:`measure` for several versions over one span, reading the log once."""
    from conveyor.monitoring.monitors import METRIC_TASKS
    from conveyor.registry.evaluate import prediction_metrics

    df = log.read(model, start_ms=start, end_ms=end)
    wanted = [m for m in metrics if m != ERROR_RATE]
    rates = log.error_rates(model, start, end) if ERROR_RATE in metrics else {}
    out: dict[int, Live] = {}
    for version in versions:
        mine = df[df["_version"] == version] if len(df) else df
        labelled = mine[mine["_label"].notna()] if "_label" in mine.columns else mine.iloc[0:0]
        values: dict[str, float] = {}
        by_task: dict[str, dict[str, float]] = {}
        for metric in wanted if len(labelled) else []:
            task = METRIC_TASKS[metric]
            if task not in by_task:
                y, pred = labelled["_label"].to_numpy(), labelled["_prediction"].to_numpy()
                if task == "regression":
                    y, pred = y.astype(float), pred.astype(float)
                by_task[task] = prediction_metrics(task, y, pred)
            value = by_task[task].get(metric)
            if value is not None and math.isfinite(value):
                values[metric] = float(value)
        if ERROR_RATE in metrics:
            found = rates.get(version)
            values[ERROR_RATE] = float(found.rate) if found is not None else 0.0
        out[version] = Live(version, start, end, len(mine), len(labelled), values)
    return out


def judge(clauses: tuple[Clause, ...], candidate: Live, previous: Live | None) -> list[dict[str, Any]]:
    """Every clause's outcome; a clause whose numbers are missing is ``judged: False``, never tripped."""
    from conveyor.registry.rules import Rule

    tables = {"candidate": candidate.metrics, "champion": previous.metrics if previous else {}}
    outcomes = []
    for clause in clauses:
        result = Rule.parse(clause.rule, field="rule").check(tables)
        judged = not result["detail"]
        outcomes.append({"clause": clause.text, "tripped": bool(result["passed"]) and judged, "judged": judged,
                         "value": result["value"], "threshold": result["threshold"], "detail": result["detail"]})
    return outcomes


def describe(outcomes: list[dict[str, Any]]) -> str:
    """``"rmse > 1.1 * previous: 131.2 vs 118.0"`` for each clause, joined."""
    parts = []
    for o in outcomes:
        if not o["judged"]:
            parts.append(f"{o['clause']}: not judged ({o['detail']})")
        else:
            verdict = "TRIPPED" if o["tripped"] else "ok"
            parts.append(f"{o['clause']}: {o['value']:.4g} vs {o['threshold']:.4g}, {verdict}")
    return "; ".join(parts)
