"""``cv.monitoring.create_monitor`` and friends: stored monitors on the current project."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.monitoring.evaluation import MonitorRun
from conveyor.monitoring.monitors import Monitor, MonitorService
from conveyor.stores.metadata.monitors import IncidentRecord, ResultRecord


def service() -> MonitorService:
    """The monitor service over the fluent client's stores and project."""
    from conveyor.tracking import fluent

    client = fluent.client()
    return MonitorService(client.store, client.content, fluent.get_project(), client.settings.home)


def create_monitor(
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
    """Store a monitor of ``model`` (``NAME`` or ``NAME@ALIAS``) against ``reference``.

    Args:
        reference: a dataset reference ``"name@N"`` or a DataFrame; profiled once, here.
        window: how far back each evaluation looks (``"1d"``, ``"6h"``...).
        drift_threshold: the share of drifted features at which the window drifts.
        metric, metric_threshold: the live metric and the rule that breaches,
            e.g. ``"rmse > 1.2 * baseline"``; the baseline is the metric of the
            serving version's run, or ``baseline=`` when given.
        alerts: channel specs (``webhook=URL``, ``slack=URL``, ``log=PATH``), checked now.
        features: the columns compared (default: the model's inputs found in the reference).
        target, prediction: reference columns compared with the labels and the predictions.
        outlier_threshold: an outlier rate above which the window counts as drifted.
        slices: columns whose values split the live metric in each report (``["season"]``);
            needs ``metric``.
        slice_rule: when True, a slice value that breaks ``metric_threshold`` degrades the window.
    """
    return service().create(
        name, model=model, reference=reference, window=window, drift_threshold=drift_threshold, metric=metric,
        metric_threshold=metric_threshold, alerts=alerts, features=features, target=target, prediction=prediction,
        baseline=baseline, outlier_threshold=outlier_threshold, slices=slices, slice_rule=slice_rule,
    )


def get_monitor(name: str) -> Monitor:
    return service().get(name)


def list_monitors() -> list[Monitor]:
    return service().list()


def delete_monitor(name: str) -> None:
    """Delete the monitor, its results and its incidents (audited)."""
    service().delete(name)


def rebase_monitor(name: str, reference: Any) -> Monitor:
    """Compare against ``reference`` (a dataset ``name@N`` or a DataFrame) from now on (audited)."""
    return service().rebase(name, reference)


def run_monitor(name: str, now: Any = None) -> MonitorRun:
    """Evaluate the monitor over the window ending at ``now`` and store the result."""
    from conveyor.monitoring.evaluation import run

    svc = service()
    return run(svc.get(name), store=svc.store, content=svc.content, registry=svc.registry(), home=svc.home,
               now=now)


def list_results(name: str, limit: int = 100, *, with_reports: bool = False) -> list[ResultRecord]:
    """The monitor's stored results, newest first."""
    svc = service()
    return svc.records.list_results(svc.get(name).id, limit, with_reports=with_reports)


def list_incidents(name: str, limit: int = 100) -> list[IncidentRecord]:
    """The monitor's incidents, newest first."""
    svc = service()
    return svc.records.list_incidents(svc.get(name).id, limit)
