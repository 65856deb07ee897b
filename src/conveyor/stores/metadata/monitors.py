"""The monitor store interface: stored monitors, their results and their incidents.

The monitoring service (``conveyor.monitoring.monitors``) talks to this
Protocol only; ``sql/monitors.py`` implements it and :class:`SqlMetadataStore`
exposes it as ``store.monitors``. Recording a result and opening or resolving
the monitor's incident happen in one transaction, so two evaluations running
at once can never both open an incident (and both alert).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

#: Result statuses. ``no-data`` is never healthy: it neither alerts nor resolves.
STATUSES = ("ok", "drift", "degraded", "no-data")
#: The statuses that breach a threshold and open an incident.
BREACHES = ("drift", "degraded")


class MonitorRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored monitor: what to watch, against which reference, with which thresholds."""

    id: str
    project: str
    name: str
    model: str
    config: dict[str, Any]
    reference: dict[str, Any]  # a ReferenceProfile as data
    outliers: dict[str, Any] | None
    created_by: str
    created_at: int


class NewResult(msgspec.Struct, frozen=True, kw_only=True):
    """One evaluation, as the service computed it."""

    at: int
    window_start: int
    window_end: int
    rows: int
    labelled_rows: int
    share_drifted: float | None
    drifted_columns: list[str]
    metric_value: float | None
    baseline: float | None
    outlier_rate: float | None
    status: str
    reasons: list[str]
    report: dict[str, Any] | None


class ResultRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One stored evaluation: a point of the monitor's time series."""

    id: str
    monitor_id: str
    at: int
    window_start: int
    window_end: int
    rows: int
    labelled_rows: int
    share_drifted: float | None
    drifted_columns: list[str]
    metric_value: float | None
    baseline: float | None
    outlier_rate: float | None
    status: str
    reasons: list[str]
    report: dict[str, Any] | None = None


class IncidentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A breach that lasts until a healthy result resolves it."""

    id: str
    monitor_id: str
    status: str  # open | resolved
    reason: str
    opened_at: int
    opened_by: str
    resolved_at: int | None
    resolved_by: str | None
    deliveries: list[dict[str, Any]]


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """What recording a result did: the result, and the incident it opened or resolved."""

    result: ResultRecord
    change: str | None  # "opened" | "resolved" | None
    incident: IncidentRecord | None  # the incident now open, or the one just resolved


@runtime_checkable
class MonitorStore(Protocol):
    def create_monitor(
        self,
        *,
        project: str,
        name: str,
        model: str,
        config: Mapping[str, Any],
        reference: Mapping[str, Any],
        outliers: Mapping[str, Any] | None,
    ) -> MonitorRecord:
        """Store a monitor; ``AlreadyExists`` when the project has one of that name."""
        ...

    def get_monitor(self, project: str, name: str) -> MonitorRecord:
        """The monitor ``name`` of ``project``; ``NotFound`` if missing."""
        ...

    def list_monitors(self, project: str, *, with_reference: bool = True) -> list[MonitorRecord]:
        """The project's monitors in name order; ``with_reference=False`` leaves each profile out
        (``reference`` is ``{}``): what a poller needs, without megabytes of profiles."""
        ...

    def delete_monitor(self, project: str, name: str) -> None:
        """Delete the monitor with its results and incidents."""
        ...

    def rebase_monitor(
        self,
        project: str,
        name: str,
        *,
        config: Mapping[str, Any],
        reference: Mapping[str, Any],
        outliers: Mapping[str, Any] | None,
    ) -> MonitorRecord:
        """Replace the reference profile, outlier detector and config in one write; results stay.

        Writing the same values again changes nothing but the audit trail, so a retry is harmless.
        """
        ...

    def record_result(self, monitor_id: str, result: NewResult) -> Recorded:
        """Store ``result``; open an incident on a breach, resolve the open one on ``ok``."""
        ...

    def list_results(self, monitor_id: str, limit: int = 100, *, with_reports: bool = False) -> list[ResultRecord]:
        """The newest ``limit`` results, newest first."""
        ...

    def open_incident(self, monitor_id: str) -> IncidentRecord | None: ...

    def list_incidents(self, monitor_id: str, limit: int = 100) -> list[IncidentRecord]:
        """Incidents, newest first."""
        ...

    def add_deliveries(self, incident_id: str, deliveries: Sequence[Mapping[str, Any]]) -> None:
        """Record how the alerts of an incident went (channel, ok, error)."""
        ...
