"""``conveyor db upgrade|current``."""

from __future__ import annotations

import click


@click.group("db")
def group() -> None:
    """Schema migrations of the metadata database."""


def _uri(uri: str | None) -> str:
    from conveyor.core.settings import get_settings

    return uri or get_settings().metadata_uri


@group.command("upgrade")
@click.option("--uri", default=None, help="Database URI (default: CONVEYOR_URI or the embedded SQLite).")
@click.option("--revision", default="head", show_default=True)
def upgrade(uri: str | None, revision: str) -> None:
    """Move the database schema forward (never recreates it)."""
    from conveyor.stores.metadata.sql.engine import make_engine
    from conveyor.stores.metadata.sql.migrate import _redact
    from conveyor.stores.metadata.sql.migrate import upgrade as run_upgrade

    target = _uri(uri)
    engine = make_engine(target)
    try:
        before, after = run_upgrade(engine, revision)
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"{_redact(target)} is already at revision {after}")
    else:
        click.echo(f"{_redact(target)}: {before or 'empty'} -> {after}")


@group.command("current")
@click.option("--uri", default=None, help="Database URI (default: CONVEYOR_URI or the embedded SQLite).")
def current(uri: str | None) -> None:
    """Print the schema revision of the database and the one this Conveyor expects."""
    from conveyor.stores.metadata.sql.engine import make_engine
    from conveyor.stores.metadata.sql.migrate import current_revision
    from conveyor.stores.metadata.sql.schema import SCHEMA_REVISION

    engine = make_engine(_uri(uri))
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    finally:
        engine.dispose()
    state = "up to date" if revision == SCHEMA_REVISION else "needs `conveyor db upgrade`"
    click.echo(f"current: {revision or 'none'}  expected: {SCHEMA_REVISION}  ({state})")
