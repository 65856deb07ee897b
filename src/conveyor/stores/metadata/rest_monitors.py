"""Monitors over HTTP: ``MonitorStore`` answered by a server (``store.monitors``).

Creating a monitor, recording a result and recording alert deliveries carry an
idempotency key: a retry after a lost answer stores one result, opens at most
one incident and appends each delivery once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from conveyor.core import validation as v
from conveyor.core.ids import check_id
from conveyor.stores.metadata.monitors import (
    IncidentRecord,
    MonitorRecord,
    NewResult,
    Recorded,
    ResultRecord,
)


class RestMonitorStore:
    """:class:`~conveyor.stores.metadata.monitors.MonitorStore` on a server."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session.request(method, path, **kwargs)

    @staticmethod
    def _project(project: str) -> str:
        return f"/projects/{v.check_name(project, 'project')}/monitors"

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
        body = {"name": name, "model": model, "config": dict(config), "reference": dict(reference),
                "outliers": None if outliers is None else dict(outliers), "idempotency_key": uuid.uuid4().hex}
        return msgspec.convert(self._call("POST", self._project(project), json=body), MonitorRecord)

    def get_monitor(self, project: str, name: str) -> MonitorRecord:
        path = f"{self._project(project)}/{v.check_name(name, 'monitor')}"
        return msgspec.convert(self._call("GET", path), MonitorRecord)

    def list_monitors(self, project: str, *, with_reference: bool = True) -> list[MonitorRecord]:
        params = None if with_reference else {"with_reference": "false"}
        return msgspec.convert(self._call("GET", self._project(project), params=params), list[MonitorRecord])

    def delete_monitor(self, project: str, name: str) -> None:
        path = f"{self._project(project)}/{v.check_name(name, 'monitor')}"
        self._call("DELETE", path, done_if_missing=True)

    def rebase_monitor(
        self,
        project: str,
        name: str,
        *,
        config: Mapping[str, Any],
        reference: Mapping[str, Any],
        outliers: Mapping[str, Any] | None,
    ) -> MonitorRecord:
        path = f"{self._project(project)}/{v.check_name(name, 'monitor')}/reference"
        body = {"config": dict(config), "reference": dict(reference),
                "outliers": None if outliers is None else dict(outliers)}
        return msgspec.convert(self._call("PUT", path, json=body), MonitorRecord)

    def record_result(self, monitor_id: str, result: NewResult) -> Recorded:
        check_id(monitor_id, "monitor_id")
        body = {**msgspec.structs.asdict(result), "idempotency_key": uuid.uuid4().hex}
        return msgspec.convert(self._call("POST", f"/monitors/{monitor_id}/results", json=body), Recorded)

    def list_results(self, monitor_id: str, limit: int = 100, *, with_reports: bool = False) -> list[ResultRecord]:
        check_id(monitor_id, "monitor_id")
        params = {"limit": limit, "with_reports": "true" if with_reports else "false"}
        answer = self._call("GET", f"/monitors/{monitor_id}/results", params=params)
        return msgspec.convert(answer, list[ResultRecord])

    def open_incident(self, monitor_id: str) -> IncidentRecord | None:
        check_id(monitor_id, "monitor_id")
        answer = self._call("GET", f"/monitors/{monitor_id}/incidents/open")
        return None if answer is None else msgspec.convert(answer, IncidentRecord)

    def list_incidents(self, monitor_id: str, limit: int = 100) -> list[IncidentRecord]:
        check_id(monitor_id, "monitor_id")
        answer = self._call("GET", f"/monitors/{monitor_id}/incidents", params={"limit": limit})
        return msgspec.convert(answer, list[IncidentRecord])

    def add_deliveries(self, incident_id: str, deliveries: Sequence[Mapping[str, Any]]) -> None:
        check_id(incident_id, "incident_id")
        body = {"deliveries": [dict(d) for d in deliveries], "idempotency_key": uuid.uuid4().hex}
        self._call("POST", f"/monitor-incidents/{incident_id}/deliveries", json=body)
