"""Idempotency keys: a write retried after a lost response changes nothing the second time.

The key is inserted in the write's own transaction, before the write, so the
retry finds it (on PostgreSQL a concurrent duplicate waits on the first one's
commit) and answers with what the first attempt did. ``result`` holds what a
retry needs to answer like the first attempt did: a created id, a version number.

Example::

    with write_transaction(engine) as conn:
        if not claim(conn, key):
            return read_back(conn, earlier(conn, key))
        ... the write ...
        remember(conn, key, new_id)

Keys are pruned after :data:`RETENTION_MS` (a day; a client stops retrying after
``CONVEYOR_HTTP_RETRY_SECONDS``): the server does it hourly, operators with
``conveyor db prune-keys``.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, update

from conveyor.core.errors import InvalidArgument
from conveyor.core.ids import now_ms
from conveyor.stores.metadata.sql import bulk
from conveyor.stores.metadata.sql.schema import idempotency_keys

#: How long a key is kept by default: a retry never comes that late.
RETENTION_MS = 24 * 3600 * 1000
#: The shortest retention allowed, so a prune never races a client still retrying.
MIN_RETENTION_MS = 3600 * 1000


def claim(conn: Connection, key: str, result: str | None = None) -> bool:
    """Record ``key`` in this transaction; ``False`` when it was recorded before (a retry)."""
    if not isinstance(key, str) or not 8 <= len(key) <= 64:
        raise InvalidArgument("idempotency key must have 8 to 64 characters", field="idempotency_key")
    inserted = conn.execute(
        bulk.insert_or_skip(conn, idempotency_keys, [idempotency_keys.c.key])
        .values(key=key, created_at=now_ms(), result=result)
    ).rowcount
    return bool(inserted)


def remember(conn: Connection, key: str, result: str) -> None:
    """Store what the write claimed under ``key`` produced (at most 64 characters)."""
    conn.execute(update(idempotency_keys).where(idempotency_keys.c.key == key).values(result=result[:64]))


def earlier(conn: Connection, key: str) -> str | None:
    """What the first write under ``key`` remembered."""
    return conn.execute(select(idempotency_keys.c.result).where(idempotency_keys.c.key == key)).scalar()


def prune(conn: Connection, older_than_ms: int, now: int | None = None) -> int:
    """Delete the keys recorded more than ``older_than_ms`` before ``now``; how many went."""
    if isinstance(older_than_ms, bool) or not isinstance(older_than_ms, int) or older_than_ms < MIN_RETENTION_MS:
        raise InvalidArgument(
            f"idempotency keys must be kept at least an hour ({MIN_RETENTION_MS} ms), got {older_than_ms!r}: "
            "a client may still be retrying", field="older_than")
    cutoff = (now_ms() if now is None else now) - older_than_ms
    return int(conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
        .execution_options(preserve_rowcount=True)
    ).rowcount)
