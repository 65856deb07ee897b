"""Engines for SQLite and PostgreSQL with the settings concurrent writers need.

SQLite: WAL journal (readers never block the writer), ``synchronous=NORMAL``
(durable at each checkpoint, safe against process crashes), a long busy
timeout, and ``BEGIN IMMEDIATE`` for write transactions so two writers queue
on the lock instead of deadlocking when a read transaction upgrades.
PostgreSQL: psycopg 3, pre-ping, READ COMMITTED.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from conveyor.core.errors import InvalidArgument

SQLITE_BUSY_TIMEOUT_S = 120.0
WRITE = "conveyor_write"


def normalise_url(uri: str) -> str:
    """Pick the driver Conveyor uses for each database (psycopg 3 for PostgreSQL)."""
    if uri.startswith("postgresql://") or uri.startswith("postgres://"):
        return "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri


def sqlite_path(uri: str) -> Path | None:
    url = make_url(uri)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise InvalidArgument(
            "in-memory SQLite is not supported: give a file, e.g. sqlite:///conveyor.db", field="uri"
        )
    return Path(url.database).expanduser()


def make_engine(uri: str) -> Engine:
    try:
        url = make_url(normalise_url(uri))
    except ArgumentError as exc:
        raise InvalidArgument(f"not a database URI: {uri!r} ({exc})", field="uri") from None
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(str(url))
        assert path is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgument(
                f"cannot create the folder of the database {path}: {exc.strerror}", field="uri"
            ) from None
        engine = create_engine(
            url.set(database=str(path)),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA case_sensitive_like=ON")  # LIKE as on PostgreSQL
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _enable_wal(cursor: Any) -> None:
    """Switch a fresh file to WAL, retrying while another process holds it.

    Changing the journal mode takes an exclusive lock, and SQLite may answer
    "database is locked" at once, without the busy handler, when several
    processes open a brand-new file together.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that may write; committed on success, rolled back on error."""
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        yield conn


@contextlib.contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


@contextlib.contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """Serialise schema creation and upgrades between processes.

    SQLite: an exclusive lock on a side file next to the database.
    PostgreSQL: a transaction-scoped advisory lock.
    """
    path = sqlite_path(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if path is not None:
        lock_path = path.with_name(path.name + ".lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    key = int.from_bytes(hashlib.blake2b(b"conveyor-schema", digest_size=8).digest(), "big", signed=True)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield conn
        finally:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
