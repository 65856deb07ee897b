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
    from conveyor.stores.metadata.sql.migrate import _redact, upgrade_database

    target = _uri(uri)
    before, after = upgrade_database(target, revision)
    if before == after:
        click.echo(f"{_redact(target)} is already at revision {after}")
    else:
        click.echo(f"{_redact(target)}: {before or 'empty'} -> {after}")


@group.command("current")
@click.option("--uri", default=None, help="Database URI (default: CONVEYOR_URI or the embedded SQLite).")
def current(uri: str | None) -> None:
    """Print the schema revision of the database and the one this Conveyor expects."""
    from conveyor.stores.metadata.sql.migrate import database_revision
    from conveyor.stores.metadata.sql.schema import SCHEMA_REVISION

    revision = database_revision(_uri(uri))
    state = "up to date" if revision == SCHEMA_REVISION else "needs `conveyor db upgrade`"
    click.echo(f"current: {revision or 'none'}  expected: {SCHEMA_REVISION}  ({state})")
