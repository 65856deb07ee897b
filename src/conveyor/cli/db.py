"""``conveyor db upgrade|current|prune-keys``."""

from __future__ import annotations

import re

import click

from conveyor.core.errors import InvalidArgument

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


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


def parse_age(text: str) -> int:
    """``90m``, ``12h``, ``1d``, ``2w`` → milliseconds."""
    match = re.fullmatch(r"(\d{1,9})([mhdw])", text.strip())
    if match is None:
        raise InvalidArgument(f"--older-than {text!r} is not a duration such as 12h or 1d", field="older_than")
    return int(match.group(1)) * _UNITS[match.group(2)] * 1000


@group.command("prune-keys")
@click.option("--uri", default=None, help="Database URI (default: CONVEYOR_URI or the embedded SQLite).")
@click.option("--older-than", default="1d", show_default=True, help="Forget keys older than this (at least 1h).")
def prune_keys(uri: str | None, older_than: str) -> None:
    """Forget idempotency keys older than a day (a running server does this hourly)."""
    from conveyor.core.plugins import load_backend
    from conveyor.core.uris import scheme_of
    from conveyor.stores.metadata.sql.migrate import _redact

    target = _uri(uri)
    scheme = scheme_of(target)
    if scheme in ("http", "https"):
        raise InvalidArgument("prune-keys works on the database (sqlite: or postgresql:); a server prunes its "
                              "own keys hourly", field="uri")
    age = parse_age(older_than)
    store = load_backend("metadata", scheme)(target)
    try:
        removed = store.prune_idempotency_keys(age)
    finally:
        store.close()
    click.echo(f"{_redact(target)}: removed {removed} idempotency keys older than {older_than}")
