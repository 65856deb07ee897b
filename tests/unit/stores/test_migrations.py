"""The Alembic migrations shipped in the package produce exactly the declared schema,
and databases that are out of date or not Conveyor's are refused, never changed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from conveyor.core.errors import SchemaOutOfDate
from conveyor.stores.metadata.sql import schema
from conveyor.stores.metadata.sql.engine import make_engine
from conveyor.stores.metadata.sql.migrate import current_revision, head_revision, upgrade
from conveyor.stores.metadata.sql.schema import SCHEMA_REVISION
from conveyor.stores.metadata.sql.store import SqlMetadataStore

CONVEYOR_TABLES = {t.name for t in schema.metadata.sorted_tables}


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, schema.metadata))


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def table_names(uri: str) -> set[str]:
    engine = make_engine(uri)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def assert_migrations_yield_the_declared_schema(uri: str) -> None:
    engine = make_engine(uri)
    try:
        before, after = upgrade(engine)
        assert (before, after) == (None, SCHEMA_REVISION)
        assert schema_differences(engine) == []
        assert upgrade(engine) == (SCHEMA_REVISION, SCHEMA_REVISION)  # a second run changes nothing
    finally:
        engine.dispose()
    assert table_names(uri) == CONVEYOR_TABLES | {"alembic_version"}


def test_migrations_yield_the_declared_schema_on_sqlite(tmp_path: Path) -> None:
    assert_migrations_yield_the_declared_schema(sqlite_uri(tmp_path / "conveyor.db"))


@pytest.mark.postgres
def test_migrations_yield_the_declared_schema_on_postgresql(postgres_uri: str) -> None:
    engine = make_engine(postgres_uri)
    try:
        with engine.begin() as conn:  # other tests share this database: start from nothing
            schema.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()
    try:
        assert table_names(postgres_uri) == set()
        assert_migrations_yield_the_declared_schema(postgres_uri)
    finally:
        SqlMetadataStore(postgres_uri).close()  # leave the schema in place for later tests


def test_the_declared_revision_is_the_newest_migration() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_a_fresh_database_gets_the_schema_on_first_open(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "new" / "conveyor.db")
    store = SqlMetadataStore(uri)
    try:
        store.get_or_create_project("bikes")
        assert schema_differences(store.engine) == []
        with store.engine.connect() as conn:
            assert current_revision(conn) == SCHEMA_REVISION
    finally:
        store.close()


def _stamp(uri: str, revision: str) -> None:
    engine = make_engine(uri)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def test_an_out_of_date_database_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "conveyor.db")
    store = SqlMetadataStore(uri)
    store.get_or_create_project("bikes")
    store.close()
    _stamp(uri, "old0")
    with pytest.raises(SchemaOutOfDate) as info:
        SqlMetadataStore(uri)
    message = str(info.value)
    assert "conveyor db upgrade" in message
    assert "old0" in message and SCHEMA_REVISION in message
    assert info.value.exit_code == 5
    # refused, not changed: the revision and the data are as they were
    engine = make_engine(uri)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == "old0"
            assert conn.execute(text("SELECT name FROM projects")).scalars().all() == ["bikes"]
    finally:
        engine.dispose()


def test_a_foreign_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    foreign = create_engine(sqlite_uri(path))
    with foreign.begin() as conn:
        conn.execute(text("CREATE TABLE inventory (sku TEXT PRIMARY KEY, qty INTEGER)"))
        conn.execute(text("INSERT INTO inventory VALUES ('bike-1', 3)"))
    foreign.dispose()
    with pytest.raises(SchemaOutOfDate, match="not a Conveyor database"):
        SqlMetadataStore(sqlite_uri(path))
    assert table_names(sqlite_uri(path)) == {"inventory"}
    foreign = create_engine(sqlite_uri(path))
    with foreign.connect() as conn:
        assert conn.execute(text("SELECT sku, qty FROM inventory")).all() == [("bike-1", 3)]
    foreign.dispose()


_OPEN_AT_ONCE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from conveyor.stores.metadata.sql.store import SqlMetadataStore

    uri, ready, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    (ready / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(ready.iterdir())) < n:  # start together once every process is ready
        if time.monotonic() > deadline:
            sys.exit("the other processes never became ready")
        time.sleep(0.001)
    store = SqlMetadataStore(uri)
    store.get_or_create_project("shared")
    store.close()
    """
)


def test_processes_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    n = 8
    uri = sqlite_uri(tmp_path / "shared.db")
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT_ONCE, uri, str(ready), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [(p.returncode, err) for p, err in zip(procs, errors, strict=True)] == [(0, "")] * n
    engine = make_engine(uri)
    try:
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (SCHEMA_REVISION,)
            ]
            assert conn.execute(text("SELECT name FROM projects")).scalars().all() == ["shared"]
    finally:
        engine.dispose()


def test_upgrading_sqlite_keeps_every_run_and_never_hands_a_deleted_runs_key_out_again(tmp_path: Path) -> None:
    """Migration 0010 rebuilds runs with AUTOINCREMENT; rows, children and foreign keys come through."""
    uri = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(uri)
    upgrade(engine, "0009")
    with engine.begin() as conn:  # what a 0009 database holds: a project, runs, their params and metrics
        conn.execute(text("INSERT INTO projects (id, name, description, created_at) VALUES ('p1', 'bikes', '', 1)"))
        for pk in (1, 2, 3):
            conn.execute(text(
                "INSERT INTO runs (pk, id, project_id, name, status, start_time, user, env) "
                "VALUES (:pk, :id, 'p1', 'r', 'FINISHED', 1, 'u', '{}')"), {"pk": pk, "id": f"{pk:032x}"})
            conn.execute(text("INSERT INTO params (run_pk, key, value) VALUES (:pk, 'lr', '0.1')"), {"pk": pk})
        conn.execute(text("DELETE FROM params WHERE run_pk = 3"))
        conn.execute(text("DELETE FROM runs WHERE pk = 3"))  # the newest run was deleted before the upgrade
    assert upgrade(engine) == ("0009", SCHEMA_REVISION)  # what `conveyor db upgrade` does
    engine.dispose()

    store = SqlMetadataStore(uri)
    try:
        assert [r.params for r in (store.get_run(f"{1:032x}"), store.get_run(f"{2:032x}"))] == [{"lr": "0.1"}] * 2
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for everyone after
            assert "AUTOINCREMENT" in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'runs'").scalar()
        def key(run_id: str) -> int:
            with store.engine.connect() as conn:
                return int(conn.exec_driver_sql("SELECT pk FROM runs WHERE id = ?", (run_id,)).scalar_one())

        newest = store.create_run(project="bikes", name="after")
        deleted = key(newest.id)
        store.delete_run(newest.id)  # the newest run: without AUTOINCREMENT its key was next in line
        again = store.create_run(project="bikes", name="again")
        assert key(again.id) > deleted
        # a foreign key is enforced again on the rebuilt table
        with pytest.raises(IntegrityError, match="FOREIGN KEY"), store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO params (run_pk, key, value) VALUES (999, 'x', '1')")
    finally:
        store.close()
