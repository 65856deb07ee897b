"""Automations, their firings and agent leases on SQLite or PostgreSQL.

Recording a firing locks the automation's row first (``FOR UPDATE`` on
PostgreSQL; SQLite already holds its write lock), so concurrent triggers of
one automation queue: only one of them finds its key unused, takes the next
number and advances the cursor. Moving a firing locks the firing's row, so of
several agents moving it from the state they saw, only the first succeeds.
Both check the caller's lease (the fence, see ``leases.py``) in the same
transaction; the audit event is written last, after every row lock is held.

A firing in a final state takes notes (``expect == state``) but never moves
again. ``updated_at`` of an automation is when its spec or ``enabled`` last
changed; cursors move without touching it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.core import validation as v
from conveyor.core.context import current_actor
from conveyor.core.errors import InvalidArgument, InvalidState, NotFound
from conveyor.core.ids import check_id, new_id, now_ms
from conveyor.stores.metadata.automation import (
    ACTIVE_STATES,
    FINAL_STATES,
    PENDING,
    STATES,
    TRIGGERS,
    AutomationRecord,
    FiringRecord,
    Lease,
)
from conveyor.stores.metadata.sql import leases
from conveyor.stores.metadata.sql.audit import append_event
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.schema import automation_firings, automations, sequences
from conveyor.stores.metadata.sql.sequences import next_value

_A = automations.c
_F = automation_firings.c
#: What ``advance_firing(**fields)`` may set.
FIELDS = ("run_id", "candidate", "previous", "error", "evidence")


def _automation(row: Any) -> AutomationRecord:
    m = row._mapping
    return AutomationRecord(**{c.name: m[c.name] for c in automations.columns})


def _firing(row: Any) -> FiringRecord:
    m = row._mapping
    return FiringRecord(**{c.name: m[c.name] for c in automation_firings.columns})


def _json(value: Any, field: str) -> Any:
    """``value`` as it will read back from a JSON column; refused when it is not JSON.

    NaN and infinities become ``null`` (PostgreSQL's JSON has no such numbers;
    one behaviour on both databases matters more); NumPy values become plain ones.
    """
    try:
        return _finite(json.loads(json.dumps(value, default=_numpy)))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{field} must be JSON data (plain dicts, lists, numbers, text): {exc}",
                              field=field) from None


def _numpy(value: Any) -> Any:
    for convert in ("tolist", "item"):  # NumPy arrays and scalars, e.g. a metric as numpy.int64
        if callable(getattr(value, convert, None)):
            return getattr(value, convert)()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{field} must be a mapping, got {type(value).__name__}", field=field)
    plain: dict[str, Any] = _json(dict(value), field)
    return plain


def _scope(automation_id: str) -> str:
    return f"automation-firings:{automation_id}"


def _redacted(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec for the audit trail, alert channels without their URLs (Slack puts its secret there)."""
    out = dict(spec)
    if isinstance(out.get("alerts"), list):
        out["alerts"] = [str(a).split("=", 1)[0] for a in out["alerts"]]
    return out


class SqlAutomationStore:
    """The :class:`~conveyor.stores.metadata.automation.AutomationStore` over the shared engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------- automations

    def put_automation(
        self, *, project: str, name: str, spec: Mapping[str, Any], cursors: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> AutomationRecord:
        v.check_name(project, "project")
        v.check_name(name, "automation")
        plain_spec = _mapping(spec, "spec")
        given = _mapping(cursors or {}, "cursors")
        if not isinstance(enabled, bool):
            raise InvalidArgument(f"enabled must be true or false, got {enabled!r}", field="enabled")
        try:
            return self._put(project, name, plain_spec, given, enabled)
        except IntegrityError:  # created by someone else since we looked: now it is a replace
            return self._put(project, name, plain_spec, given, enabled)

    def _put(self, project: str, name: str, spec: dict[str, Any], cursors: dict[str, Any],
             enabled: bool) -> AutomationRecord:
        now = now_ms()
        with write_transaction(self._engine) as conn:
            old = self._find(conn, project, name, lock=True)
            if old is None:
                row: dict[str, Any] = {
                    "id": new_id(), "project": project, "name": name, "spec": spec, "cursors": cursors,
                    "enabled": enabled, "created_by": current_actor(), "created_at": now, "updated_at": now,
                }
                conn.execute(insert(automations).values(**row))
                append_event(conn, action="automation.create", object_kind="automation", object_id=row["id"],
                             project=project, after={"name": name, "spec": _redacted(spec), "enabled": enabled})
                return AutomationRecord(**row)
            merged = {**old.cursors, **cursors}
            if (spec, merged, enabled) == (old.spec, old.cursors, old.enabled):
                return _automation(old)  # applied again unchanged: nothing to write or audit
            conn.execute(update(automations).where(_A.id == old.id)
                         .values(spec=spec, cursors=merged, enabled=enabled, updated_at=now))
            append_event(conn, action="automation.update", object_kind="automation", object_id=old.id,
                         project=project, before={"spec": _redacted(old.spec), "enabled": old.enabled},
                         after={"spec": _redacted(spec), "enabled": enabled})
            return AutomationRecord(**{**old._mapping, "spec": spec, "cursors": merged, "enabled": enabled,
                                       "updated_at": now})

    def _find(self, conn: Connection, project: str, name: str, *, lock: bool = False) -> Any:
        query = select(automations).where(_A.project == project, _A.name == name)
        return conn.execute(query.with_for_update() if lock else query).first()

    def _row(self, conn: Connection, project: str, name: str, *, lock: bool = False) -> Any:
        v.check_name(project, "project")
        v.check_name(name, "automation")
        row = self._find(conn, project, name, lock=lock)
        if row is None:
            raise NotFound(f"project {project!r} has no automation named {name!r}", field="name")
        return row

    def get_automation(self, project: str, name: str) -> AutomationRecord:
        with read_transaction(self._engine) as conn:
            return _automation(self._row(conn, project, name))

    def get_automation_by_id(self, automation_id: str) -> AutomationRecord:
        check_id(automation_id, "automation_id")
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(automations).where(_A.id == automation_id)).first()
        if row is None:
            raise NotFound(f"automation {automation_id} does not exist", field="automation_id")
        return _automation(row)

    def list_automations(self, project: str | None = None) -> list[AutomationRecord]:
        query = select(automations).order_by(_A.project, _A.name)
        if project is not None:
            query = query.where(_A.project == v.check_name(project, "project"))
        with read_transaction(self._engine) as conn:
            return [_automation(r) for r in conn.execute(query)]

    def set_enabled(self, project: str, name: str, enabled: bool) -> AutomationRecord:
        if not isinstance(enabled, bool):
            raise InvalidArgument(f"enabled must be true or false, got {enabled!r}", field="enabled")
        with write_transaction(self._engine) as conn:
            row = self._row(conn, project, name, lock=True)
            if row.enabled == enabled:
                return _automation(row)
            now = now_ms()
            conn.execute(update(automations).where(_A.id == row.id).values(enabled=enabled, updated_at=now))
            append_event(conn, action="automation.enable" if enabled else "automation.disable",
                         object_kind="automation", object_id=row.id, project=project)
            return AutomationRecord(**{**row._mapping, "enabled": enabled, "updated_at": now})

    def delete_automation(self, project: str, name: str) -> None:
        with write_transaction(self._engine) as conn:
            row = self._row(conn, project, name, lock=True)
            active = conn.execute(
                select(_F.number, _F.state).where(_F.automation_id == row.id, _F.state.in_(ACTIVE_STATES))
                .order_by(_F.number).limit(1)
            ).first()
            if active is not None:
                raise InvalidState(
                    f"automation {name!r} has firing #{active.number} still {active.state}; wait for it to "
                    "finish (or fail it) before deleting the automation", field="name",
                )
            conn.execute(delete(automation_firings).where(_F.automation_id == row.id))
            conn.execute(delete(sequences).where(sequences.c.scope == _scope(row.id)))
            conn.execute(delete(automations).where(_A.id == row.id))
            append_event(conn, action="automation.delete", object_kind="automation", object_id=row.id,
                         project=project, before={"name": name, "spec": _redacted(row.spec)})

    # ----------------------------------------------------------------- firings

    def add_firing(
        self, automation_id: str, *, trigger: str, key: str, reason: str, evidence: Mapping[str, Any],
        cursor: tuple[str, Any] | None = None, fence: tuple[str, int] | None = None,
    ) -> FiringRecord | None:
        check_id(automation_id, "automation_id")
        if trigger not in TRIGGERS:
            raise InvalidArgument(f"trigger must be one of {TRIGGERS}, got {trigger!r}", field="trigger")
        if not isinstance(key, str) or not key or len(key) > 500:
            raise InvalidArgument(f"key must be a string of 1 to 500 characters, got {key!r}", field="key")
        if not isinstance(reason, str):
            raise InvalidArgument(f"reason must be text, got {type(reason).__name__}", field="reason")
        plain_evidence = _mapping(evidence, "evidence")
        if cursor is not None and (len(cursor) != 2 or not isinstance(cursor[0], str)):
            raise InvalidArgument(f"cursor must be (name, value), got {cursor!r}", field="cursor")
        cursor_value = _json(cursor[1], "cursor") if cursor is not None else None
        now = now_ms()
        with write_transaction(self._engine) as conn:
            leases.check_fence(conn, fence, now)
            owner = conn.execute(select(automations).where(_A.id == automation_id).with_for_update()).first()
            if owner is None:
                raise NotFound(f"automation {automation_id} does not exist", field="automation_id")
            seen = conn.execute(select(_F.id).where(_F.automation_id == automation_id, _F.key == key)).first()
            if seen is not None:
                return None  # fired on this before: never twice
            row: dict[str, Any] = {
                "id": new_id(), "automation_id": automation_id, "number": next_value(conn, _scope(automation_id)),
                "trigger": trigger, "key": key, "reason": reason, "evidence": plain_evidence, "state": PENDING,
                "steps": [{"at": now, "state": PENDING, "message": reason, "details": {}}], "run_id": None,
                "candidate": None, "previous": None, "error": None, "created_by": current_actor(),
                "created_at": now, "updated_at": now, "finished_at": None,
            }
            conn.execute(insert(automation_firings).values(**row))
            if cursor is not None:
                conn.execute(update(automations).where(_A.id == automation_id)
                             .values(cursors={**owner.cursors, cursor[0]: cursor_value}))
            append_event(conn, action="automation.fire", object_kind="automation", object_id=automation_id,
                         project=owner.project, after={"firing": row["id"], "number": row["number"],
                                                       "trigger": trigger, "key": key, "reason": reason})
        return FiringRecord(**row)

    def advance_firing(
        self, firing_id: str, *, expect: str, state: str, message: str,
        details: Mapping[str, Any] | None = None, fence: tuple[str, int] | None = None, **fields: Any,
    ) -> FiringRecord:
        check_id(firing_id, "firing_id")
        for value, name in ((expect, "expect"), (state, "state")):
            if value not in STATES:
                raise InvalidArgument(f"{name} must be one of {STATES}, got {value!r}", field=name)
        if not isinstance(message, str):
            raise InvalidArgument(f"message must be text, got {type(message).__name__}", field="message")
        changes = _fields(fields)
        at = now_ms()
        step = {"at": at, "state": state, "message": message, "details": _mapping(details or {}, "details")}
        with write_transaction(self._engine) as conn:
            leases.check_fence(conn, fence, at)
            row = conn.execute(select(automation_firings).where(_F.id == firing_id).with_for_update()).first()
            if row is None:
                raise NotFound(f"firing {firing_id} does not exist", field="firing_id")
            if row.state != expect:
                raise InvalidState(
                    f"firing #{row.number} is {row.state}, not {expect}: another agent moved it; "
                    "read it again before acting on it", field="expect",
                )
            if expect in FINAL_STATES and state != expect:
                raise InvalidState(f"firing #{row.number} is {expect}, a final state: it cannot become {state}",
                                   field="state")
            if "evidence" in changes:
                changes["evidence"] = {**row.evidence, **changes["evidence"]}
            changes.update(state=state, steps=[*row.steps, step], updated_at=at)
            if state in FINAL_STATES and expect not in FINAL_STATES:
                changes["finished_at"] = at
            conn.execute(update(automation_firings).where(_F.id == firing_id).values(**changes))
            project = conn.execute(select(_A.project).where(_A.id == row.automation_id)).scalar()
            append_event(conn, action=f"automation.firing.{state}" if state != expect else "automation.firing.note",
                         object_kind="automation", object_id=row.automation_id, project=project,
                         before={"state": expect},
                         after={"firing": firing_id, "number": row.number, "state": state, "message": message})
        return FiringRecord(**{**row._mapping, **changes})

    def get_firing(self, firing_id: str) -> FiringRecord:
        check_id(firing_id, "firing_id")
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(automation_firings).where(_F.id == firing_id)).first()
        if row is None:
            raise NotFound(f"firing {firing_id} does not exist", field="firing_id")
        return _firing(row)

    def list_firings(
        self, automation_id: str, *, limit: int = 100, states: tuple[str, ...] | None = None
    ) -> list[FiringRecord]:
        check_id(automation_id, "automation_id")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgument(f"limit must be a positive integer, got {limit!r}", field="limit")
        query = select(automation_firings).where(_F.automation_id == automation_id)
        if states is not None:
            unknown = [s for s in states if s not in STATES]
            if unknown:
                raise InvalidArgument(f"states must be among {STATES}, got {unknown!r}", field="states")
            query = query.where(_F.state.in_(list(states)))
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(_F.number.desc()).limit(limit)).all()
        return [_firing(r) for r in rows]

    def active_firings(self) -> list[FiringRecord]:
        query = select(automation_firings).where(_F.state.in_(ACTIVE_STATES)).order_by(_F.created_at, _F.id)
        with read_transaction(self._engine) as conn:
            return [_firing(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------ leases

    def acquire_lease(self, name: str, holder: str, ttl_ms: int, now: int | None = None) -> Lease | None:
        return leases.acquire(self._engine, name, holder, ttl_ms, now)

    def release_lease(self, name: str, holder: str) -> None:
        leases.release(self._engine, name, holder)

    def get_lease(self, name: str) -> Lease | None:
        return leases.get(self._engine, name)


def _fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``advance_firing``'s extra fields, checked."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidArgument(f"advance_firing can set only {FIELDS}, not {unknown}", field=unknown[0])
    out = dict(fields)
    if out.get("run_id") is not None:
        check_id(out["run_id"], "run_id")
    for name in ("candidate", "previous"):
        value = out.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgument(f"{name} must be a model version number, got {value!r}", field=name)
    if out.get("error") is not None and not isinstance(out["error"], str):
        raise InvalidArgument(f"error must be text, got {type(out['error']).__name__}", field="error")
    if "evidence" in out:
        out["evidence"] = _mapping(out["evidence"], "evidence")
    return out
