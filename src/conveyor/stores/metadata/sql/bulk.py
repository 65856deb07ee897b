"""Bulk metric writes: the hot path of tracking.

Points arrive in batches from the client buffer. They are written with one
``executemany`` (SQLite) or one ``COPY`` (PostgreSQL) inside the caller's
transaction, and the per-(run, key) latest value is upserted once per key per
batch, never once per point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, or_

from conveyor.stores.metadata.sql.schema import latest_metrics

MetricRow = tuple[int, str, int, int, float | None]  # run_pk, key, step, timestamp, value

_SQLITE_INSERT = "INSERT INTO metrics (run_pk, key, step, timestamp, value) VALUES (?, ?, ?, ?, ?)"
_PG_COPY = "COPY metrics (run_pk, key, step, timestamp, value) FROM STDIN"


def insert_points(conn: Connection, rows: Sequence[MetricRow]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        conn.exec_driver_sql(_SQLITE_INSERT, list(rows))
    upsert_latest(conn, latest_of(rows))


def latest_of(rows: Iterable[MetricRow]) -> list[dict[str, Any]]:
    """The winning point per (run, key): highest step, then newest timestamp, then last."""
    best: dict[tuple[int, str], MetricRow] = {}
    for row in rows:
        current = best.get((row[0], row[1]))
        if current is None or (row[2], row[3]) >= (current[2], current[3]):
            best[(row[0], row[1])] = row
    return [
        {"run_pk": r[0], "key": r[1], "step": r[2], "timestamp": r[3], "value": r[4]}
        for r in best.values()
    ]


def dialect_insert(conn: Connection) -> Any:
    """The INSERT construct with ON CONFLICT support for the connection's database."""
    # Imported here: an embedded (SQLite) process never loads the PostgreSQL dialect.
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def insert_or_skip(conn: Connection, table: Any, keys: Sequence[Any]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` whose ``rowcount`` says whether the row went in.

    PostgreSQL reports -1 for such an insert unless asked to count (``preserve_rowcount``),
    which once made every idempotent retry look new: callers that ask "was it new?" use this.
    """
    return (dialect_insert(conn)(table).on_conflict_do_nothing(index_elements=list(keys))
            .execution_options(preserve_rowcount=True))


_UPSERTS: dict[str, Any] = {}


def _upsert_statement(conn: Connection) -> Any:
    """The latest-value upsert for this database, built once."""
    stmt = _UPSERTS.get(conn.dialect.name)
    if stmt is None:
        stmt = dialect_insert(conn)(latest_metrics)
        excluded = stmt.excluded
        newer = or_(
            excluded.step > latest_metrics.c.step,
            (excluded.step == latest_metrics.c.step)
            & (excluded.timestamp >= latest_metrics.c.timestamp),
        )
        stmt = _UPSERTS[conn.dialect.name] = stmt.on_conflict_do_update(
            index_elements=[latest_metrics.c.run_pk, latest_metrics.c.key],
            set_={"step": excluded.step, "timestamp": excluded.timestamp, "value": excluded.value},
            where=newer,
        )
    return stmt


def upsert_latest(conn: Connection, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    # Sorted so concurrent writers touching the same keys lock rows in one order.
    values.sort(key=lambda v: (v["run_pk"], v["key"]))
    conn.execute(_upsert_statement(conn), values)
