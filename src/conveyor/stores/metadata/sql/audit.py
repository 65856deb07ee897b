"""The audit trail: append-only, hash-chained events written in the caller's transaction.

Every state change in any service calls :func:`append_event` inside the write
transaction that makes the change, so the event exists exactly when the change
does. Each event's ``hash`` covers its content and the previous event's hash;
:func:`verify_chain` recomputes the chain and reports the first event that was
altered, removed or inserted out of order.

Writers are serialised while they read the chain head: SQLite already holds
its write lock (``BEGIN IMMEDIATE``); PostgreSQL takes a transaction-scoped
advisory lock. Event order is ``seq`` order. Since nobody else can append
until the transaction ends, a transaction that appends several events reads
the head once and remembers the hash of its own last event (keyed by the
innermost transaction, so a rolled-back savepoint is never trusted).

Example::

    with write_transaction(engine) as conn:
        conn.execute(update(aliases)...)
        append_event(conn, action="alias.set", object_kind="model", object_id="bike-demand",
                     project="bikes", before={"champion": 2}, after={"champion": 3})
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, text

from conveyor.core.context import current_actor
from conveyor.core.ids import new_id, now_ms
from conveyor.stores.metadata.sql.schema import audit_events

GENESIS = "0" * 64
_LOCK_KEY = int.from_bytes(hashlib.blake2b(b"conveyor-audit", digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    id: str
    at: int
    actor: str
    action: str
    object_kind: str
    object_id: str
    project: str | None
    before: Any
    after: Any
    details: dict[str, Any]
    prev_hash: str
    hash: str


# Built once: constructing these per event cost more than the database work.
_HEAD = select(audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
_INSERT = insert(audit_events).returning(audit_events.c.seq)
#: ``conn.info`` key of (transaction, hash of the last event it appended).
_LAST = "conveyor_audit_last"


_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back, so the stored and the hashed value are the same."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if type(value) is dict and all(type(k) is str and _flat(x) for k, x in value.items()):
        # Most payloads (tags, params, a status): JSON gives back an equal copy, so skip the round trip.
        return {k: list(x) if type(x) is list else x for k, x in value.items()}
    return json.loads(json.dumps(value, default=str))


def _flat(value: Any) -> bool:
    """A value JSON gives back unchanged: an exact scalar, or a list of them."""
    kind = type(value)
    return kind in _SCALARS or (kind is list and all(type(x) in _SCALARS for x in value))


def _digest(prev_hash: str, fields: Mapping[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(prev_hash.encode() + b"\n" + body.encode()).hexdigest()


_HASHED = ("id", "at", "actor", "action", "object_kind", "object_id", "project", "before", "after", "details")


def _hashed_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in _HASHED}


def append_event(
    conn: Connection,
    *,
    action: str,
    object_kind: str,
    object_id: str,
    project: str | None = None,
    before: Any = None,
    after: Any = None,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> AuditEvent:
    """Record one event in the caller's (write) transaction and return it."""
    txn = conn.get_nested_transaction() or conn.get_transaction()
    last = conn.info.get(_LAST)
    if txn is not None and last is not None and last[0] is txn and txn.is_active:
        prev = last[1]  # this transaction appended the head itself and holds the lock
    else:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        prev = conn.execute(_HEAD).scalar()
    row: dict[str, Any] = {
        "id": new_id(),
        "at": now_ms(),
        "actor": actor if actor is not None else current_actor(),
        "action": action,
        "object_kind": object_kind,
        "object_id": str(object_id),
        "project": project,
        "before": _plain(before),
        "after": _plain(after),
        "details": _plain(dict(details or {})),
    }
    row["prev_hash"] = prev or GENESIS
    row["hash"] = _digest(row["prev_hash"], _hashed_fields(row))
    seq = conn.execute(_INSERT, row).scalar_one()
    conn.info[_LAST] = (txn, row["hash"]) if txn is not None else None
    return AuditEvent(seq=int(seq), **row)


def _event(row: Any) -> AuditEvent:
    m = row._mapping
    return AuditEvent(**{c.name: m[c.name] for c in audit_events.columns})


def iter_events(conn: Connection, batch: int = 5000) -> Iterator[AuditEvent]:
    """Every event in chain order, read in batches."""
    last = 0
    while True:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.seq > last).order_by(audit_events.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield _event(row)
        last = rows[-1].seq


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None  # seq of the first bad event
    reason: str = ""


def verify_chain(conn: Connection) -> ChainReport:
    """Recompute every hash; the first mismatch says where the trail was tampered with."""
    prev = GENESIS
    count = 0
    for event in iter_events(conn):
        if event.prev_hash != prev:
            return ChainReport(False, count, event.seq, "its prev_hash does not match the event before it (an event was removed or inserted)")
        if _digest(prev, _hashed_fields(vars(event))) != event.hash:
            return ChainReport(False, count, event.seq, "its content does not match its hash (the event was modified)")
        prev = event.hash
        count += 1
    return ChainReport(True, count)
