"""Alerts for incidents: sent once when an incident opens, once when it resolves.

The store decides (in the transaction that records the result) whether this
evaluation opened or resolved the monitor's incident; only then are alerts
sent. A channel that fails is logged and recorded on the incident with its
error, and never fails the evaluation: the result is already stored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from conveyor.monitoring.alerts import Alert, parse_channel
from conveyor.monitoring.monitors import Monitor
from conveyor.stores.metadata.monitors import Recorded

log = logging.getLogger(__name__)


def alert_for(monitor: Monitor, recorded: Recorded) -> Alert | None:
    """The alert an evaluation calls for, if any."""
    result = recorded.result
    details = {"status": result.status, "window_start": result.window_start, "window_end": result.window_end,
               "rows": result.rows, "share_drifted": result.share_drifted,
               "drifted_columns": result.drifted_columns, "metric": monitor.metric,
               "metric_value": result.metric_value, "baseline": result.baseline,
               "outlier_rate": result.outlier_rate, "model": monitor.model,
               "incident": recorded.incident.id if recorded.incident else None}
    if recorded.change == "opened":
        return Alert(monitor=monitor.name, title=result.status, severity="critical" if result.status == "degraded"
                     else "warning", summary="; ".join(result.reasons), at=result.at, details=details)
    if recorded.change == "resolved":
        return Alert(monitor=monitor.name, title="resolved", severity="resolved",
                     summary=f"{monitor.name} is healthy again over the last {monitor.window}",
                     at=result.at, details=details)
    return None


def notify(monitor: Monitor, recorded: Recorded, *, store: Any, home: Path) -> list[dict[str, Any]]:
    """Send the alert this evaluation calls for to every channel; returns what happened per channel."""
    alert = alert_for(monitor, recorded)
    if alert is None or recorded.incident is None:
        return []
    deliveries: list[dict[str, Any]] = []
    for spec in monitor.alerts:
        kind = spec.partition("=")[0]
        entry: dict[str, Any] = {"channel": kind, "severity": alert.severity, "at": alert.at, "ok": True}
        try:
            parse_channel(spec, default_log=Path(home) / "alerts.jsonl").send(alert)
        except Exception as exc:  # noqa: BLE001  (any channel failure is recorded, never raised)
            log.warning("alert for monitor %s through %s failed: %s", monitor.name, kind, exc)
            entry |= {"ok": False, "error": str(exc)[:500]}
        deliveries.append(entry)
    if deliveries:
        store.monitors.add_deliveries(recorded.incident.id, deliveries)
    return deliveries
