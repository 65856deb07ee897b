"""Leases that elect one agent at a time, and the fence that stops a deposed one.

A lease row names its holder, when it expires, and a ``token`` that grows each
time the holder changes. Every write is a compare-and-set guarded by the state
just read (``WHERE holder = me`` to renew, ``WHERE token = seen AND expired``
to take over, ``INSERT ... ON CONFLICT DO NOTHING`` for the first holder), so
two agents racing for one lease never both get it, on either database.

A write that carries a fence ``(name, token)`` calls :func:`check_fence` in its
own transaction. On PostgreSQL it holds a share lock on the lease row until
that transaction ends, so a takeover waits for writes already checked, and a
write checked after a takeover sees the new token and is refused.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, select, update

from conveyor.core.errors import InvalidArgument, LeaseLost
from conveyor.core.ids import now_ms
from conveyor.stores.metadata.automation import Lease
from conveyor.stores.metadata.sql.audit import append_event
from conveyor.stores.metadata.sql.bulk import insert_or_skip
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.schema import agent_leases

_L = agent_leases.c


def _lease(row: Any) -> Lease:
    m = row._mapping
    return Lease(**{c.name: m[c.name] for c in agent_leases.columns})


def _check_text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 250:
        raise InvalidArgument(f"{field} must be a string of 1 to 250 characters, got {value!r}", field=field)
    return value


def check_fence(conn: Connection, fence: tuple[str, int] | None, now: int) -> None:
    """Raise ``LeaseLost`` unless lease ``fence[0]`` is unexpired with token ``fence[1]``."""
    if fence is None:
        return
    name, token = fence
    row = conn.execute(
        select(_L.token, _L.expires_at).where(_L.name == name).with_for_update(read=True)
    ).first()
    if row is None or row.token != token or row.expires_at <= now:
        held = "nobody holds it" if row is None else f"its token is {row.token}"
        if row is not None and row.token == token:
            held = "it expired"
        raise LeaseLost(
            f"lease {name!r} with token {token} is no longer held ({held}): stop acting and acquire it again",
            field="fence",
        )


def acquire(engine: Engine, name: str, holder: str, ttl_ms: int, now: int | None) -> Lease | None:
    _check_text(name, "name")
    _check_text(holder, "holder")
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms <= 0:
        raise InvalidArgument(f"ttl_ms must be a positive integer, got {ttl_ms!r}", field="ttl_ms")
    at = now_ms() if now is None else now
    expires = at + ttl_ms
    with write_transaction(engine) as conn:
        current = conn.execute(select(agent_leases).where(_L.name == name)).first()
        if current is None:
            inserted = conn.execute(
                insert_or_skip(conn, agent_leases, [_L.name])
                .values(name=name, holder=holder, token=1, acquired_at=at, expires_at=expires)
            ).rowcount
            if not inserted:
                return None  # another holder created it a moment ago
            _audit(conn, name, None, holder, 1)
        elif current.holder == holder:
            acquired_at = current.acquired_at if current.expires_at > at else at
            renewed = conn.execute(
                update(agent_leases).where(_L.name == name, _L.holder == holder)
                .values(acquired_at=acquired_at, expires_at=expires)
            ).rowcount
            if not renewed:
                return None  # taken over since we read it
        elif current.expires_at <= at:
            taken = conn.execute(
                update(agent_leases)
                .where(_L.name == name, _L.token == current.token, _L.expires_at <= at)
                .values(holder=holder, token=current.token + 1, acquired_at=at, expires_at=expires)
            ).rowcount
            if not taken:
                return None  # renewed or taken by someone else since we read it
            _audit(conn, name, current.holder, holder, current.token + 1)
        else:
            return None
        return _lease(conn.execute(select(agent_leases).where(_L.name == name)).one())


def release(engine: Engine, name: str, holder: str) -> None:
    _check_text(name, "name")
    _check_text(holder, "holder")
    with write_transaction(engine) as conn:
        released = conn.execute(
            update(agent_leases).where(_L.name == name, _L.holder == holder, _L.expires_at > 0)
            .values(expires_at=0)
        ).rowcount
        if released:
            append_event(conn, action="agent_lease.release", object_kind="agent_lease", object_id=name,
                         before={"holder": holder})


def get(engine: Engine, name: str) -> Lease | None:
    _check_text(name, "name")
    with read_transaction(engine) as conn:
        row = conn.execute(select(agent_leases).where(_L.name == name)).first()
    return _lease(row) if row is not None else None


def _audit(conn: Connection, name: str, before: str | None, holder: str, token: int) -> None:
    """Only a change of holder is audited: renewals come every few seconds."""
    append_event(conn, action="agent_lease.acquire", object_kind="agent_lease", object_id=name,
                 before={"holder": before} if before is not None else None,
                 after={"holder": holder, "token": token})
