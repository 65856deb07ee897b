"""Monitors, their results and incidents on SQLite or PostgreSQL.

Recording a result locks the monitor's row first (``FOR UPDATE`` on
PostgreSQL; SQLite already holds its write lock), so concurrent evaluations
of one monitor queue: only one of them can find "no open incident" and open
one, which is what makes alerts de-duplicated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.core import validation as v
from conveyor.core.context import current_actor
from conveyor.core.errors import AlreadyExists, InvalidArgument, NotFound
from conveyor.core.ids import check_id, new_id, now_ms
from conveyor.stores.metadata.monitors import (
    BREACHES,
    STATUSES,
    IncidentRecord,
    MonitorRecord,
    NewResult,
    Recorded,
    ResultRecord,
)
from conveyor.stores.metadata.sql.audit import append_event
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.idempotency import claim, earlier, remember
from conveyor.stores.metadata.sql.schema import monitor_incidents, monitor_results, monitors

_RESULT_COLUMNS = [c for c in monitor_results.c if c.name not in ("seq", "report")]


def _monitor(row: Any) -> MonitorRecord:
    m = row._mapping
    return MonitorRecord(**{c.name: m[c.name] for c in monitors.columns})


def _result(row: Any) -> ResultRecord:
    m = row._mapping
    return ResultRecord(**{k: m[k] for k in m if k != "seq"})


def _incident(row: Any) -> IncidentRecord:
    m = row._mapping
    return IncidentRecord(**{c.name: m[c.name] for c in monitor_incidents.columns})


class SqlMonitorStore:
    """The :class:`~conveyor.stores.metadata.monitors.MonitorStore` over the shared engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_monitor(
        self,
        *,
        project: str,
        name: str,
        model: str,
        config: Mapping[str, Any],
        reference: Mapping[str, Any],
        outliers: Mapping[str, Any] | None,
        idempotency_key: str | None = None,
    ) -> MonitorRecord:
        """Store a monitor; a retry with the same ``idempotency_key`` returns it instead of ``AlreadyExists``."""
        v.check_name(project, "project")
        v.check_name(name, "monitor")
        row: dict[str, Any] = {
            "id": new_id(), "project": project, "name": name, "model": model, "config": dict(config),
            "reference": dict(reference), "outliers": dict(outliers) if outliers is not None else None,
            "created_by": current_actor(), "created_at": now_ms(),
        }
        try:
            with write_transaction(self._engine) as conn:
                if idempotency_key is not None and not claim(conn, idempotency_key):
                    return _monitor(self._row(conn, project, name))
                conn.execute(insert(monitors).values(**row))
                append_event(
                    conn, action="monitor.create", object_kind="monitor", object_id=row["id"], project=project,
                    after={"name": name, "model": model, "config": _redacted(row["config"])},
                )
        except IntegrityError:
            raise AlreadyExists(
                f"project {project!r} already has a monitor named {name!r}; delete it first or pick another name",
                field="name",
            ) from None
        return MonitorRecord(**row)

    def _row(self, conn: Connection, project: str, name: str, *, lock: bool = False) -> Any:
        query = select(monitors).where(monitors.c.project == project, monitors.c.name == name)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise NotFound(f"project {project!r} has no monitor named {name!r}", field="name")
        return row

    def get_monitor(self, project: str, name: str) -> MonitorRecord:
        with read_transaction(self._engine) as conn:
            return _monitor(self._row(conn, project, name))

    def list_monitors(self, project: str, *, with_reference: bool = True) -> list[MonitorRecord]:
        columns = list(monitors.c) if with_reference else [c for c in monitors.c if c.name != "reference"]
        query = select(*columns).where(monitors.c.project == project).order_by(monitors.c.name)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [MonitorRecord(**({"reference": {}} | dict(r))) for r in rows]

    def delete_monitor(self, project: str, name: str) -> None:
        with write_transaction(self._engine) as conn:
            row = self._row(conn, project, name, lock=True)
            conn.execute(delete(monitor_results).where(monitor_results.c.monitor_id == row.id))
            conn.execute(delete(monitor_incidents).where(monitor_incidents.c.monitor_id == row.id))
            conn.execute(delete(monitors).where(monitors.c.id == row.id))
            append_event(
                conn, action="monitor.delete", object_kind="monitor", object_id=row.id, project=project,
                before={"name": name, "model": row.model},
            )

    def rebase_monitor(
        self,
        project: str,
        name: str,
        *,
        config: Mapping[str, Any],
        reference: Mapping[str, Any],
        outliers: Mapping[str, Any] | None,
    ) -> MonitorRecord:
        """Give the monitor a new reference (and the detector and config that go with it)."""
        v.check_name(project, "project")
        v.check_name(name, "monitor")
        values = {"config": dict(config), "reference": dict(reference),
                  "outliers": dict(outliers) if outliers is not None else None}
        with write_transaction(self._engine) as conn:
            row = self._row(conn, project, name, lock=True)
            conn.execute(update(monitors).where(monitors.c.id == row.id).values(**values))
            append_event(
                conn, action="monitor.rebase", object_kind="monitor", object_id=row.id, project=project,
                before={"reference": (row.config or {}).get("reference")},
                after={"reference": dict(config).get("reference")},
            )
            return _monitor(self._row(conn, project, name))

    def record_result(self, monitor_id: str, result: NewResult, *, idempotency_key: str | None = None) -> Recorded:
        """Store ``result`` and open or resolve the incident; a retry with the same key stores it once."""
        check_id(monitor_id, "monitor_id")
        if result.status not in STATUSES:
            raise InvalidArgument(f"status must be one of {STATUSES}, got {result.status!r}", field="status")
        row: dict[str, Any] = {"id": new_id(), "monitor_id": monitor_id, **_fields(result)}
        change: str | None = None
        incident: IncidentRecord | None = None
        with write_transaction(self._engine) as conn:
            owner = conn.execute(
                select(monitors.c.project).where(monitors.c.id == monitor_id).with_for_update()
            ).first()
            if owner is None:
                raise NotFound(f"monitor {monitor_id} does not exist", field="monitor_id")
            if idempotency_key is not None:
                if not claim(conn, idempotency_key):
                    return self._recorded(conn, str(earlier(conn, idempotency_key)))
                remember(conn, idempotency_key, row["id"])
            conn.execute(insert(monitor_results).values(**row))
            current = self._open(conn, monitor_id)
            if result.status in BREACHES and current is None:
                opened: dict[str, Any] = {
                    "id": new_id(), "monitor_id": monitor_id, "status": "open",
                    "reason": "; ".join(result.reasons) or result.status, "opened_at": result.at,
                    "opened_by": row["id"], "resolved_at": None, "resolved_by": None, "deliveries": [],
                }
                conn.execute(insert(monitor_incidents).values(**opened))
                change, incident = "opened", IncidentRecord(**opened)
                append_event(conn, action="monitor_incident.open", object_kind="monitor", object_id=monitor_id,
                             project=owner.project, after={"incident": opened["id"], "reason": opened["reason"]})
            elif result.status == "ok" and current is not None:
                conn.execute(
                    update(monitor_incidents).where(monitor_incidents.c.id == current.id)
                    .values(status="resolved", resolved_at=result.at, resolved_by=row["id"])
                )
                change = "resolved"
                incident = msgspec.structs.replace(current, status="resolved", resolved_at=result.at, resolved_by=row["id"])
                append_event(conn, action="monitor_incident.resolve", object_kind="monitor", object_id=monitor_id,
                             project=owner.project, after={"incident": current.id})
            else:
                incident = current
            append_event(conn, action="monitor.evaluate", object_kind="monitor", object_id=monitor_id,
                         project=owner.project, after={"result": row["id"], "status": result.status})
        return Recorded(result=ResultRecord(**row), change=change, incident=incident)

    def _recorded(self, conn: Connection, result_id: str) -> Recorded:
        """What recording ``result_id`` did, read back (for a retried request)."""
        stored = _result(conn.execute(select(monitor_results).where(monitor_results.c.id == result_id)).one())
        for change, column in (("opened", monitor_incidents.c.opened_by), ("resolved", monitor_incidents.c.resolved_by)):
            row = conn.execute(select(monitor_incidents).where(column == result_id)).first()
            if row is not None:
                return Recorded(result=stored, change=change, incident=_incident(row))
        return Recorded(result=stored, change=None, incident=self._open(conn, stored.monitor_id))

    def project_of(self, monitor_id: str) -> str | None:
        """The project of monitor ``monitor_id`` (``None`` if there is none): what the server authorises on."""
        check_id(monitor_id, "monitor_id")
        with read_transaction(self._engine) as conn:
            return conn.execute(select(monitors.c.project).where(monitors.c.id == monitor_id)).scalar()

    def project_of_incident(self, incident_id: str) -> str | None:
        """The project of the monitor incident ``incident_id`` belongs to (``None`` if there is none)."""
        check_id(incident_id, "incident_id")
        with read_transaction(self._engine) as conn:
            return conn.execute(
                select(monitors.c.project).join(monitor_incidents, monitor_incidents.c.monitor_id == monitors.c.id)
                .where(monitor_incidents.c.id == incident_id)
            ).scalar()

    def _open(self, conn: Connection, monitor_id: str) -> IncidentRecord | None:
        row = conn.execute(
            select(monitor_incidents).where(
                monitor_incidents.c.monitor_id == monitor_id, monitor_incidents.c.status == "open"
            )
        ).first()
        return _incident(row) if row is not None else None

    def list_results(self, monitor_id: str, limit: int = 100, *, with_reports: bool = False) -> list[ResultRecord]:
        check_id(monitor_id, "monitor_id")
        columns = list(monitor_results.c) if with_reports else _RESULT_COLUMNS
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(*columns).where(monitor_results.c.monitor_id == monitor_id)
                .order_by(monitor_results.c.seq.desc()).limit(limit)
            ).all()
        return [_result(r) for r in rows]

    def open_incident(self, monitor_id: str) -> IncidentRecord | None:
        check_id(monitor_id, "monitor_id")
        with read_transaction(self._engine) as conn:
            return self._open(conn, monitor_id)

    def list_incidents(self, monitor_id: str, limit: int = 100) -> list[IncidentRecord]:
        check_id(monitor_id, "monitor_id")
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(monitor_incidents).where(monitor_incidents.c.monitor_id == monitor_id)
                .order_by(monitor_incidents.c.opened_at.desc(), monitor_incidents.c.id).limit(limit)
            ).all()
        return [_incident(r) for r in rows]

    def add_deliveries(
        self, incident_id: str, deliveries: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> None:
        """Append how alerts went; a retry with the same ``idempotency_key`` appends nothing."""
        check_id(incident_id, "incident_id")
        with write_transaction(self._engine) as conn:
            if idempotency_key is not None and not claim(conn, idempotency_key):
                return
            row = conn.execute(
                select(monitor_incidents.c.deliveries).where(monitor_incidents.c.id == incident_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"incident {incident_id} does not exist", field="incident_id")
            merged = [*(row.deliveries or []), *(dict(d) for d in deliveries)]
            conn.execute(update(monitor_incidents).where(monitor_incidents.c.id == incident_id)
                         .values(deliveries=merged))


def _fields(result: NewResult) -> dict[str, Any]:
    return msgspec.structs.asdict(result)


def _redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config for the audit trail, without webhook paths (Slack puts its secret there)."""
    out = dict(config)
    out["alerts"] = [str(spec).split("=", 1)[0] for spec in config.get("alerts", [])]
    return out
