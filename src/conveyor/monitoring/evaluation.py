"""Evaluating a stored monitor over the last window of the prediction log.

One evaluation reads ``[now - window, now)`` of the model's log (shadow answers
left out: nobody received them), compares the features and the predictions
with the stored reference profile, scores outliers, computes the live metric on
the rows that have labels, and gives one verdict:

| status | when |
| --- | --- |
| ``no-data`` | the window has no rows (never "ok": nothing was checked) |
| ``degraded`` | the metric rule holds, e.g. ``rmse > 1.2 * baseline`` (or, with ``slice_rule``, holds on a slice) |
| ``drift`` | share of drifted features ≥ ``drift_threshold``, prediction drift, or outlier rate over its threshold |
| ``ok`` | none of the above |

The result is stored as a row of the monitor's time series; a breach opens an
incident and alerts once (see ``incidents.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.errors import ConveyorError, InvalidArgument
from conveyor.core.ids import now_ms
from conveyor.monitoring.monitors import (
    LABEL,
    METRIC_TASKS,
    PREDICTION,
    Monitor,
    check_metric,
    split_model,
)
from conveyor.monitoring.slices import MIN_LABELLED, slice_performance
from conveyor.stores.metadata.monitors import IncidentRecord, NewResult, ResultRecord


@dataclass(frozen=True)
class MonitorRun:
    """What one evaluation found and did."""

    result: ResultRecord
    change: str | None  # "opened" | "resolved" | None
    incident: IncidentRecord | None
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.result.status


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def json_safe(value: Any) -> Any:
    """``value`` with NaN as ``None`` and infinities as text: PostgreSQL's JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(x) for x in value]
    return value


def _baseline(monitor: Monitor, registry: Any, store: Any, versions: Any) -> tuple[float | None, str]:
    """The metric of the model version that served most labelled rows, from its run."""
    if monitor.baseline is not None:
        return monitor.baseline, "given"
    if not len(versions) or monitor.metric is None:
        return None, "no version"
    version = int(Counter(int(x) for x in versions).most_common(1)[0][0])
    name, _ = split_model(monitor.model)
    try:
        mv = registry.get_version(name, version)
        if mv.run_id is None:
            return None, f"version {version} has no run"
        value = store.get_run(mv.run_id).metrics.get(monitor.metric)
    except ConveyorError as exc:
        return None, f"version {version}: {exc.message}"
    if value is None:
        return None, f"the run of version {version} has no {monitor.metric!r} metric"
    return float(value), f"version {version}"


def evaluate_window(monitor: Monitor, window: Any, *, registry: Any, store: Any) -> tuple[str, list[str], dict[str, Any]]:
    """Status, reasons and the computed fields of one non-empty window."""
    from conveyor.monitoring.data_drift import drift
    from conveyor.monitoring.outliers import OutlierDetector
    from conveyor.monitoring.profile import ReferenceProfile
    from conveyor.registry.evaluate import prediction_metrics

    record = monitor.record
    profile = ReferenceProfile.from_dict(record.reference)
    has_prediction = PREDICTION in profile.columns and PREDICTION in window.columns
    columns = [*monitor.features, *([PREDICTION] if has_prediction else [])]
    report = drift(profile, window, columns=columns, prediction=PREDICTION if has_prediction else None,
                   drift_share=monitor.drift_threshold)
    labels = window[LABEL] if LABEL in window.columns else None
    labelled = window[labels.notna()] if labels is not None else window.iloc[0:0]
    if LABEL in profile.columns and len(labelled):
        target = drift(profile, labelled, columns=[LABEL])
        report.columns[LABEL] = target.columns[LABEL]
        report.target = LABEL
    reasons: list[str] = []
    drifted = False
    if report.dataset_drift:
        drifted = True
        reasons.append(f"data drift: {len(report.drifted_columns)} of {len(report.feature_columns)} features "
                       f"drifted ({', '.join(report.drifted_columns)})")
    if report.prediction_drift is not None and report.prediction_drift.drifted:
        drifted = True
        reasons.append("prediction drift")
    if report.target_drift is not None and report.target_drift.drifted:
        reasons.append("target drift (labels)")
    outlier_rate: float | None = None
    outliers: dict[str, int] | None = None
    if record.outliers is not None:
        try:
            flags, logged = outlier_flags(OutlierDetector.from_dict(record.outliers), window)
            outlier_rate = float(flags.mean())
            outliers = {"rows": len(flags), "flagged": int(flags.sum()), "flagged_by_serving": logged}
        except InvalidArgument as exc:  # a feature missing from the log: drift already says so
            reasons.append(f"outliers not scored: {exc.message}")
    if outlier_rate is not None and monitor.outlier_threshold is not None and outlier_rate > monitor.outlier_threshold:
        drifted = True
        reasons.append(f"outlier rate {outlier_rate:.1%} > {monitor.outlier_threshold:.1%}")
    performance: dict[str, Any] = {"labelled_rows": len(labelled), "labelled_share": len(labelled) / len(window)}
    value = baseline = None
    degraded = False
    if monitor.metric is not None and len(labelled) >= MIN_LABELLED:
        task = METRIC_TASKS[monitor.metric]
        y, pred = labelled[LABEL].to_numpy(), labelled[PREDICTION].to_numpy()
        metrics: dict[str, float] = {}
        try:
            if task == "regression":
                y, pred = y.astype(float), pred.astype(float)
            metrics = prediction_metrics(task, y, pred)
        except (TypeError, ValueError):  # text labels for a regression, say: say so, do not crash
            reasons.append(f"performance not judged: labels or predictions are not numbers for {monitor.metric}")
        value = _finite(metrics.get(monitor.metric))
        baseline, source = _baseline(monitor, registry, store, labelled.get("_version", []))
        performance |= {"metrics": {k: _finite(x) for k, x in metrics.items()}, "baseline": baseline,
                        "baseline_source": source}
        rule = check_metric(monitor.metric, monitor.metric_threshold) if metrics else None
        if rule is not None and value is not None:
            outcome = rule.check({"candidate": {monitor.metric: value,
                                                **({"baseline": baseline} if baseline is not None else {})}})
            performance["rule"] = outcome
            if outcome["passed"]:
                degraded = True
                reasons.append(f"{monitor.metric} {value:.4g} breaks {monitor.metric_threshold!r}"
                               + (f" (baseline {baseline:.4g})" if baseline is not None else ""))
            elif outcome["detail"]:
                reasons.append(f"performance not judged: {outcome['detail']}")
    elif monitor.metric is not None:
        performance["note"] = f"{len(labelled)} labelled rows; at least {MIN_LABELLED} are needed to judge"
    if monitor.slices and monitor.metric is not None:
        performance["slices"], broken = _slices(monitor, window, baseline)
        if monitor.slice_rule and broken:
            degraded = True
            verb = "breaks" if len(broken) == 1 else "break"
            reasons.append(f"{'; '.join(broken)} {verb} {monitor.metric_threshold!r}"
                           + (f" (baseline {baseline:.4g})" if baseline is not None else ""))
    status = "degraded" if degraded else "drift" if drifted else "ok"
    body = json_safe(report.to_dict() | {"performance": performance, "outlier_rate": outlier_rate,
                                         "outliers": outliers})
    fields = {"share_drifted": report.share_drifted, "drifted_columns": report.drifted_columns,
              "metric_value": value, "baseline": baseline, "outlier_rate": outlier_rate,
              "labelled_rows": len(labelled), "report": body}
    return status, reasons, fields


def outlier_flags(detector: Any, window: Any) -> tuple[Any, int]:
    """Per row of a non-empty window: is it an outlier? And how many verdicts came from the log.

    Rows that serving flagged with this monitor's detector (``_outlier_detector``
    is its fingerprint) keep the logged ``_outlier``, so serving and monitoring
    agree; the others (logged before the detector was loaded, by another
    detector, before the monitor was rebased, or with serving's scoring off) are
    scored here from their inputs.
    """
    import numpy as np

    from conveyor.stores.predictions import OUTLIER, OUTLIER_DETECTOR

    flags = np.zeros(len(window), dtype=bool)
    logged = np.zeros(len(window), dtype=bool)
    if OUTLIER in window.columns and OUTLIER_DETECTOR in window.columns:
        logged = (window[OUTLIER_DETECTOR] == detector.fingerprint).to_numpy() & window[OUTLIER].notna().to_numpy()
        flags[logged] = window.loc[logged, OUTLIER].to_numpy(dtype=bool)
    if not logged.all():
        flags[~logged] = detector.flags(window[~logged])
    if not len(flags):
        raise InvalidArgument("the window has no rows", field="data")
    return flags, int(logged.sum())


def _slices(monitor: Monitor, window: Any, baseline: float | None) -> tuple[dict[str, Any], list[str]]:
    """The monitor's metric per value of its slice columns (see ``slices.py``)."""
    import numpy as np

    from conveyor.registry.evaluate import prediction_metrics

    assert monitor.metric is not None
    metric, task = monitor.metric, METRIC_TASKS[monitor.metric]
    rule = check_metric(metric, monitor.metric_threshold)
    if LABEL in window.columns and PREDICTION in window.columns:
        labelled = window[LABEL].notna().to_numpy()
        y_all, pred_all = window[LABEL].to_numpy(), window[PREDICTION].to_numpy()
    else:
        labelled, y_all, pred_all = np.zeros(len(window), dtype=bool), None, None

    def compute(rows: np.ndarray) -> float | None:
        assert y_all is not None and pred_all is not None
        y, pred = y_all[rows], pred_all[rows]
        try:
            if task == "regression":
                y, pred = y.astype(float), pred.astype(float)
            return _finite(prediction_metrics(task, y, pred).get(metric))
        except (TypeError, ValueError):
            return None

    def breaks(value: float) -> bool | None:
        if rule is None:
            return None
        outcome = rule.check({"candidate": {metric: value, **({"baseline": baseline} if baseline is not None else {})}})
        return bool(outcome["passed"]) if not outcome["detail"] else None

    return slice_performance(window, labelled, monitor.slices, metric, compute, breaks)


def read_window(monitor: Monitor, content: Any, registry: Any, start: int, end: int) -> Any:
    """The window of the log the monitor watches: its model (at the alias's version, if any), no shadows."""
    from conveyor.stores.predictions import PredictionLog

    name, alias = split_model(monitor.model)
    version = registry.get_version(name, alias).version if alias else None
    df = PredictionLog(content.backend).read(name, start_ms=start, end_ms=end, version=version)
    if "_variant" in df.columns:
        df = df[df["_variant"] != "shadow"].reset_index(drop=True)
    return df


def run(monitor: Monitor, *, store: Any, content: Any, registry: Any, home: Any, now: Any = None) -> MonitorRun:
    """Evaluate ``monitor`` over the window that ends at ``now`` (ms or datetime; default: now)."""
    from conveyor.monitoring.incidents import notify

    end = _as_ms(now)
    start = end - monitor.window_ms
    window = read_window(monitor, content, registry, start, end)
    if len(window) == 0:
        status, reasons = "no-data", [f"no predictions between {start} and {end}"]
        fields: dict[str, Any] = {"share_drifted": None, "drifted_columns": [], "metric_value": None,
                                  "baseline": None, "outlier_rate": None, "labelled_rows": 0, "report": None}
    else:
        status, reasons, fields = evaluate_window(monitor, window, registry=registry, store=store)
    result = NewResult(at=now_ms(), window_start=start, window_end=end, rows=len(window), status=status,
                       reasons=reasons, **fields)
    recorded = store.monitors.record_result(monitor.id, result)
    deliveries = notify(monitor, recorded, store=store, home=home)
    return MonitorRun(recorded.result, recorded.change, recorded.incident, deliveries)


def _as_ms(now: Any) -> int:
    if now is None:
        return now_ms()
    if hasattr(now, "timestamp"):
        return int(now.timestamp() * 1000)
    if isinstance(now, int | float) and not isinstance(now, bool):
        return int(now)
    raise InvalidArgument(f"now must be milliseconds since the epoch or a datetime, got {now!r}", field="now")
