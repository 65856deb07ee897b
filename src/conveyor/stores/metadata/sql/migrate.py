"""Schema creation and upgrades through the Alembic migrations shipped in the package.

A fresh, empty database is brought to the current revision automatically on
first use (zero configuration). A database at an older revision is never
changed behind the user's back: opening it raises :class:`SchemaOutOfDate`
naming the command to run (``conveyor db upgrade``).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from conveyor.core.errors import BackendUnavailable, SchemaOutOfDate
from conveyor.stores.metadata.sql.engine import make_engine, schema_lock
from conveyor.stores.metadata.sql.schema import SCHEMA_REVISION

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(conn: Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database, or ``None`` when it has none."""
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except (OperationalError, ProgrammingError):
        return None
    return row[0] if row else None


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to ``revision``; returns (before, after).

    Refuses a database that holds other tables but no Conveyor schema version.
    """
    from alembic import command
    from alembic.util import CommandError

    with schema_lock(engine) as conn:
        # SQLite rebuilds a table to change it (migration 0010), which foreign keys forbid;
        # the pragma only takes effect outside a transaction, so it is set before any begins.
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            before = current_revision(conn)
            if before is None:
                _refuse_foreign(conn, str(engine.url))
            try:
                command.upgrade(_config(conn), revision)
            except CommandError as exc:
                raise SchemaOutOfDate(
                    f"cannot upgrade to {revision!r} from {before or 'an empty database'}: {exc} "
                    "(a newer Conveyor may have written this database: upgrade Conveyor)"
                ) from None
            conn.commit()
            after = current_revision(conn)
            conn.commit()
        finally:
            if sqlite:
                conn.rollback()
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    return before, after


def upgrade_database(uri: str, revision: str = "head") -> tuple[str | None, str | None]:
    """``conveyor db upgrade``: open ``uri``, apply migrations, close."""
    engine = make_engine(uri)
    try:
        return upgrade(engine, revision)
    except OperationalError as exc:
        raise BackendUnavailable(f"cannot open {_redact(uri)}: {exc.orig}") from None
    finally:
        engine.dispose()


def database_revision(uri: str) -> str | None:
    """``conveyor db current``: the revision recorded in ``uri``."""
    engine = make_engine(uri)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    except OperationalError as exc:
        raise BackendUnavailable(f"cannot open {_redact(uri)}: {exc.orig}") from None
    finally:
        engine.dispose()


def _refuse_foreign(conn: Connection, uri: str) -> None:
    if set(inspect(conn).get_table_names()) - {"alembic_version"}:
        raise SchemaOutOfDate(
            f"{_redact(uri)} has tables but no Conveyor schema version; "
            "it is not a Conveyor database (give another CONVEYOR_URI)"
        )


def ensure_schema(engine: Engine, uri: str) -> None:
    """Create the schema in an empty database; refuse one that is out of date."""
    with engine.connect() as conn:
        revision = current_revision(conn)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        with schema_lock(engine) as conn:
            revision = current_revision(conn)
            if revision is None:
                _refuse_foreign(conn, uri)
                from alembic import command

                command.upgrade(_config(conn), "head")
                conn.commit()
                return
    if revision != SCHEMA_REVISION:
        raise SchemaOutOfDate(
            f"the database {_redact(uri)} is at schema revision {revision}, this Conveyor "
            f"expects {SCHEMA_REVISION}: run `conveyor db upgrade --uri {_redact(uri)}` "
            "(or upgrade Conveyor if the database is newer)"
        )


def _redact(uri: str) -> str:
    """Hide a password in a URI before it goes into a message."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except Exception:
        return uri
