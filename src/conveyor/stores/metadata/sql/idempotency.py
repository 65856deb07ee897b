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
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from conveyor.core.errors import InvalidArgument
from conveyor.core.ids import now_ms
from conveyor.stores.metadata.sql import bulk
from conveyor.stores.metadata.sql.schema import idempotency_keys


def claim(conn: Connection, key: str, result: str | None = None) -> bool:
    """Record ``key`` in this transaction; ``False`` when it was recorded before (a retry)."""
    if not isinstance(key, str) or not 8 <= len(key) <= 64:
        raise InvalidArgument("idempotency key must have 8 to 64 characters", field="idempotency_key")
    inserted = conn.execute(
        bulk.dialect_insert(conn)(idempotency_keys)
        .values(key=key, created_at=now_ms(), result=result)
        .on_conflict_do_nothing(index_elements=[idempotency_keys.c.key])
        .execution_options(preserve_rowcount=True)  # else PostgreSQL reports -1 and every retry looks new
    ).rowcount
    return bool(inserted)


def remember(conn: Connection, key: str, result: str) -> None:
    """Store what the write claimed under ``key`` produced (at most 64 characters)."""
    conn.execute(update(idempotency_keys).where(idempotency_keys.c.key == key).values(result=result[:64]))


def earlier(conn: Connection, key: str) -> str | None:
    """What the first write under ``key`` remembered."""
    return conn.execute(select(idempotency_keys.c.result).where(idempotency_keys.c.key == key)).scalar()
