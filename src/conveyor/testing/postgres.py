"""A PostgreSQL database for tests, and the fixtures that use it.

The server comes from ``CONVEYOR_TEST_POSTGRES_URI`` (default
``postgresql://postgres@127.0.0.1:5432/test``). One scratch database is created
for the session and dropped at the end; each test gets empty tables. When the
server cannot be reached the tests fail under CI (``CI`` is set) and are
skipped elsewhere with the command that starts one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

URI_ENV = "CONVEYOR_TEST_POSTGRES_URI"
DEFAULT_URI = "postgresql://postgres@127.0.0.1:5432/test"
_HINT = (
    "start PostgreSQL on 127.0.0.1:5432 (e.g. `pg_ctlcluster 15 main start`) "
    f"or set {URI_ENV}"
)


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL is needed: {reason}; {_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A scratch database on the test server, dropped after the session."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'conveyor-mlops[postgres]')")
    base = os.environ.get(URI_ENV, DEFAULT_URI)
    name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable(f"cannot connect to {base}: {str(exc).strip().splitlines()[0]}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = base.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(uri: str) -> None:
    """Empty every Conveyor table (the schema and its version stay)."""
    from sqlalchemy import text

    from conveyor.stores.metadata.sql.engine import make_engine
    from conveyor.stores.metadata.sql.schema import metadata

    engine = make_engine(uri)
    try:
        with engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
