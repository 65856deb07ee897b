"""Gap-free numbering per parent object (model versions, dataset versions, ...).

``next_value(conn, "model-versions:bike-demand")`` increments a named counter
inside the caller's write transaction and returns the new value. The counter
row is locked until that transaction ends, so concurrent writers on the same
scope queue and get 1, 2, 3 ... with no gaps: a writer that rolls back also
rolls back its increment. Different scopes never wait for each other.

Example::

    with write_transaction(engine) as conn:
        version = next_value(conn, f"model-versions:{model_id}")
        conn.execute(insert(model_versions).values(model_id=model_id, version=version, ...))
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from conveyor.stores.metadata.sql.bulk import dialect_insert
from conveyor.stores.metadata.sql.schema import sequences


def next_value(conn: Connection, scope: str) -> int:
    """Increment the counter ``scope`` (created at 0 on first use) and return it."""
    stmt = dialect_insert(conn)(sequences).values(scope=scope, value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[sequences.c.scope], set_={"value": sequences.c.value + 1}
    ).returning(sequences.c.value)
    return int(conn.execute(stmt).scalar_one())


def current_value(conn: Connection, scope: str) -> int:
    """The last value handed out for ``scope`` (0 when none was)."""
    value = conn.execute(select(sequences.c.value).where(sequences.c.scope == scope)).scalar()
    return int(value or 0)
