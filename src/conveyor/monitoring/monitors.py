"""Stored monitors: create, get, list and delete.

A monitor watches one registered model's prediction log. Everything that can
be worked out once is worked out at creation: the reference is reduced to a
:class:`ReferenceProfile` and an outlier detector, thresholds and the metric
rule are parsed, and every alert channel is built (a webhook URL that points
inward is refused here, by the SSRF guard). Evaluation lives in
``monitoring/evaluation.py``.

Example::

    cv.monitoring.create_monitor("bike-demand", model="bike-demand", reference="bikes-2011@1",
                                 window="1d", drift_threshold=0.3, metric="rmse",
                                 metric_threshold="rmse > 1.2 * baseline", target="cnt", slices=["season"],
                                 alerts=["webhook=https://hooks.example/abc"])
    cv.monitoring.run_monitor("bike-demand").status
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument
from conveyor.stores.metadata.monitors import MonitorRecord, MonitorStore

#: Metrics computable from the prediction log (no probabilities are logged), by task.
METRIC_TASKS = {
    "rmse": "regression", "mae": "regression", "r2": "regression", "mape": "regression",
    "accuracy": "classification", "precision": "classification", "recall": "classification",
    "f1": "classification",
}
_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
#: The reference columns stored under these names so they meet the log's columns.
PREDICTION, LABEL = "_prediction", "_label"
#: Log columns a monitor may slice by besides the reference's columns.
SLICE_LOG_COLUMNS = ("_version",)


def parse_window(text: object) -> int:
    """``"1d"``, ``"6h"``, ``"30m"``, ``"2w"`` → milliseconds."""
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise InvalidArgument(
            f"window must be a positive number and a unit (s, m, h, d, w) such as '1d', got {text!r}",
            field="window",
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Monitor:
    """A stored monitor as the SDK shows it."""

    id: str
    project: str
    name: str
    model: str
    window: str
    drift_threshold: float
    metric: str | None
    metric_threshold: str | None
    alerts: list[str]
    features: list[str]
    target: str | None
    prediction: str | None
    baseline: float | None
    outlier_threshold: float | None
    reference: str
    slices: list[str]
    slice_rule: bool
    created_by: str
    created_at: int
    record: MonitorRecord

    @classmethod
    def of(cls, record: MonitorRecord) -> Monitor:
        c = record.config
        return cls(
            id=record.id, project=record.project, name=record.name, model=record.model, window=c["window"],
            drift_threshold=c["drift_threshold"], metric=c.get("metric"),
            metric_threshold=c.get("metric_threshold"), alerts=list(c.get("alerts", [])),
            features=list(c["features"]), target=c.get("target"), prediction=c.get("prediction"),
            baseline=c.get("baseline"), outlier_threshold=c.get("outlier_threshold"),
            reference=c.get("reference", ""), slices=list(c.get("slices", [])),
            slice_rule=bool(c.get("slice_rule", False)), created_by=record.created_by, created_at=record.created_at,
            record=record,
        )

    @property
    def window_ms(self) -> int:
        return parse_window(self.window)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the stored profile (it is large)."""
        return {k: val for k, val in self.__dict__.items() if k != "record"}


def check_metric(metric: str | None, metric_threshold: str | None) -> Any:
    """Validate the metric and parse its rule; returns the parsed rule (or ``None``)."""
    from conveyor.registry.rules import METRIC_ALIASES, Rule

    if metric is None:
        if metric_threshold is not None:
            raise InvalidArgument("metric_threshold needs a metric (e.g. metric='rmse')", field="metric")
        return None
    metric = METRIC_ALIASES.get(metric, metric)
    if metric not in METRIC_TASKS:
        raise InvalidArgument(
            f"metric must be one of {', '.join(METRIC_TASKS)} (the log holds no probabilities), got {metric!r}",
            field="metric",
        )
    if metric_threshold is None:
        return None
    rule = Rule.parse(metric_threshold, field="metric_threshold")
    names = {name for who, name in rule.metrics if who == "candidate"}
    if any(who != "candidate" for who, _ in rule.metrics) or not names <= {metric, "baseline"}:
        raise InvalidArgument(
            f"metric_threshold {metric_threshold!r} may only read {metric!r} and 'baseline' "
            f"(e.g. '{metric} > 1.2 * baseline')",
            field="metric_threshold",
        )
    if metric not in names:
        raise InvalidArgument(f"metric_threshold {metric_threshold!r} does not read {metric!r}",
                              field="metric_threshold")
    return rule


def check_alerts(alerts: Sequence[str] | None, home: Path) -> list[str]:
    """Build every channel once so a bad spec (or an inward URL) is refused now."""
    from conveyor.monitoring.alerts import parse_channel

    if alerts is None:
        return []
    if isinstance(alerts, str) or not all(isinstance(a, str) for a in alerts):
        raise InvalidArgument("alerts must be a list of channel specs such as 'webhook=https://...'",
                              field="alerts")
    for spec in alerts:
        try:
            parse_channel(spec, default_log=home / "alerts.jsonl")
        except InvalidArgument as exc:
            raise InvalidArgument(f"alert channel {spec.partition('=')[0]!r}: {exc.message}", field="alerts") from None
    return list(alerts)


def check_slices(slices: Sequence[str] | None, columns: Sequence[str], metric: str | None) -> list[str]:
    """Slice columns: names of reference columns (or ``_version``), each once, and a metric to slice."""
    if slices is None:
        return []
    if isinstance(slices, str) or not all(isinstance(s, str) and s for s in slices):
        raise InvalidArgument("slices must be a list of column names such as ['season']", field="slices")
    if metric is None and slices:
        raise InvalidArgument("slices split the live metric: give a metric too (e.g. metric='rmse')",
                              field="slices")
    unknown = [s for s in slices if s not in columns and s not in SLICE_LOG_COLUMNS]
    if unknown:
        raise InvalidArgument(f"the reference has no slice column(s) {', '.join(unknown)}", field="slices")
    return list(dict.fromkeys(slices))


def _reference_frame(reference: Any, data: Any) -> tuple[Any, str]:
    """The reference as a DataFrame and as it is described: a dataset ref read through ``data``."""
    from conveyor.monitoring.profile import as_pandas

    if isinstance(reference, str):
        version = data.get(reference)
        return version.to_pandas(), version.ref
    if reference is None:
        raise InvalidArgument("reference is required: a dataset 'name@N' or a DataFrame", field="reference")
    return as_pandas(reference, "reference"), "<dataframe>"


def _profiled(frame: Any, features: Sequence[str], target: str | None, prediction: str | None) -> tuple[Any, Any]:
    """The stored reference profile and the fitted outlier detector of ``frame``."""
    from conveyor.monitoring.outliers import OutlierDetector
    from conveyor.monitoring.profile import ReferenceProfile

    renamed = {c: n for c, n in ((prediction, PREDICTION), (target, LABEL)) if c is not None}
    profiled = frame[[*features, *renamed]].rename(columns=renamed)
    return ReferenceProfile.from_frame(profiled), OutlierDetector.fit(frame, columns=list(features))


def split_model(model: object) -> tuple[str, str | None]:
    """``"bike-demand"`` or ``"bike-demand@champion"`` → (name, alias)."""
    name, _, alias = model.partition("@") if isinstance(model, str) else ("", "", "")
    try:
        v.check_name(name, "model")
        if alias:
            v.check_name(alias, "alias")
    except InvalidArgument as exc:
        raise InvalidArgument(f"model must be NAME or NAME@ALIAS: {exc.message}", field="model") from None
    return name, alias or None


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
        raise InvalidArgument(f"{field} must be a number in ({low:g}, {high:g}], got {value!r}", field=field)
    return float(value)


class MonitorService:
    """Monitors of one project over a metadata store (``store.monitors``) and the registry."""

    def __init__(self, store: Any, content: Any, project: str, home: Path) -> None:
        self.store = store
        self.records: MonitorStore = store.monitors
        self.content = content
        self.project = project
        self.home = Path(home)

    def registry(self) -> Any:
        from conveyor.registry.service import ModelRegistry

        return ModelRegistry(self.store, self.content, self.project)

    def data(self) -> Any:
        from conveyor.data.service import DataService

        return DataService(self.store, self.content, self.home)

    def create(
        self,
        name: str,
        *,
        model: str,
        reference: Any,
        window: str = "1d",
        drift_threshold: float = 0.3,
        metric: str | None = None,
        metric_threshold: str | None = None,
        alerts: Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        target: str | None = None,
        prediction: str | None = None,
        baseline: float | None = None,
        outlier_threshold: float | None = None,
        slices: Sequence[str] | None = None,
        slice_rule: bool = False,
    ) -> Monitor:
        """Validate everything, profile the reference once, and store the monitor."""
        from conveyor.registry.rules import METRIC_ALIASES

        v.check_name(name, "monitor")
        model_name, alias = split_model(model)
        parse_window(window)
        drift_threshold = _number(drift_threshold, "drift_threshold", 0.0, 1.0)
        check_metric(metric, metric_threshold)
        metric = METRIC_ALIASES.get(metric, metric) if metric is not None else None
        if baseline is not None:
            baseline = _number(baseline, "baseline", float("-inf"), float("inf"))
        if outlier_threshold is not None:
            outlier_threshold = _number(outlier_threshold, "outlier_threshold", 0.0, 1.0)
        channels = check_alerts(alerts, self.home)
        version = self.registry().get_version(model_name, alias or "latest")
        frame, described = _reference_frame(reference, self.data())
        for label, column in (("target", target), ("prediction", prediction)):
            if column is not None and column not in frame.columns:
                raise InvalidArgument(f"the reference has no {label} column {column!r}", field=label)
        if features is None:
            signature = (version.signature or {}).get("inputs", {}).get("columns") or []
            inputs = [c["name"] for c in signature]
            features = [c for c in inputs if c in frame.columns] if inputs else [
                str(c) for c in frame.columns if c not in (target, prediction)]
        else:
            if isinstance(features, str) or not features:
                raise InvalidArgument("features must be a non-empty list of column names", field="features")
            missing = [c for c in features if c not in frame.columns]
            if missing:
                raise InvalidArgument(f"the reference has no column(s) {', '.join(map(str, missing))}",
                                      field="features")
        features = [str(c) for c in features]
        slices = check_slices(slices, [str(c) for c in frame.columns], metric)
        if not isinstance(slice_rule, bool) or (slice_rule and not (slices and metric_threshold)):
            raise InvalidArgument("slice_rule is True or False, and True needs slices and a metric_threshold",
                                  field="slice_rule")
        if not features:
            raise InvalidArgument(f"no column of the reference is an input of {model_name!r}; give features=",
                                  field="features")
        profile, detector = _profiled(frame, features, target, prediction)
        config = {
            "window": window.strip(), "drift_threshold": drift_threshold, "metric": metric,
            "metric_threshold": metric_threshold.strip() if metric_threshold else None, "alerts": channels,
            "features": features, "target": target, "prediction": prediction, "baseline": baseline,
            "outlier_threshold": outlier_threshold, "reference": described,
            "slices": slices, "slice_rule": slice_rule,
        }
        record = self.records.create_monitor(
            project=self.project, name=name, model=model, config=config, reference=profile.to_dict(),
            outliers=detector.to_dict(),
        )
        return Monitor.of(record)

    def rebase(self, name: str, reference: Any) -> Monitor:
        """Compare from now on against ``reference`` (say, the data the new champion was trained on).

        The same features, target and prediction columns are profiled again and the
        outlier detector is refitted; thresholds, alerts, results and the open
        incident stay (the next clean evaluation resolves it).
        """
        v.check_name(name, "monitor")
        current = self.records.get_monitor(self.project, name)
        config = dict(current.config)
        frame, described = _reference_frame(reference, self.data())
        features = list(config.get("features") or [])
        target, prediction = config.get("target"), config.get("prediction")
        missing = [c for c in (*features, target, prediction) if c is not None and c not in frame.columns]
        if missing:
            raise InvalidArgument(f"the new reference has no column(s) {', '.join(map(str, missing))} that monitor "
                                  f"{name!r} watches", field="reference")
        profile, detector = _profiled(frame, features, target, prediction)
        config["reference"] = described
        record = self.records.rebase_monitor(self.project, name, config=config, reference=profile.to_dict(),
                                             outliers=detector.to_dict())
        return Monitor.of(record)

    def get(self, name: str) -> Monitor:
        v.check_name(name, "monitor")
        return Monitor.of(self.records.get_monitor(self.project, name))

    def list(self) -> list[Monitor]:
        return [Monitor.of(r) for r in self.records.list_monitors(self.project)]

    def delete(self, name: str) -> None:
        v.check_name(name, "monitor")
        self.records.delete_monitor(self.project, name)
