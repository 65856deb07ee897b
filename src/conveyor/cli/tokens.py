"""``conveyor tokens``: API tokens (stored hashed, shown once, expiring, revocable)."""

from __future__ import annotations

import click

from conveyor.cli.output import emit_json, json_option, table, when
from conveyor.cli.users import governance


@click.group("tokens")
def group() -> None:
    """API tokens for the server."""


@group.command("create")
@click.option("--user", "user", default="", help="Whose token (default: yours, on a server).")
@click.option("--name", default="", help="A label, e.g. 'ci' or 'laptop'.")
@click.option("--expires-in", "days", type=click.IntRange(1), default=None, help="Days until it stops working.")
def create(user: str, name: str, days: int | None) -> None:
    """Create a token and print it (shown this once)."""
    issued = governance().create_token(user, name=name, expires_in=None if days is None else days * 86400)  # type: ignore[attr-defined]
    click.echo(f"token {issued.info.id} for {issued.info.principal} (shown once):", err=True)
    click.echo(issued.token)


@group.command("list")
@click.option("--user", "user", default=None, help="Only this user's tokens.")
@json_option
def list_(user: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    found = governance().list_tokens(user)  # type: ignore[attr-defined]
    if as_json:
        emit_json(found)
        return
    rows = [
        (t.id, t.principal, t.name, when(t.created_at), when(t.expires_at), when(t.revoked_at) if t.revoked_at else "")
        for t in found
    ]
    table(["ID", "USER", "NAME", "CREATED", "EXPIRES", "REVOKED"], rows)


@group.command("revoke")
@click.argument("token_id")
def revoke(token_id: str) -> None:
    """Make TOKEN_ID unusable from now on."""
    info = governance().revoke_token(token_id)  # type: ignore[attr-defined]
    click.echo(f"revoked token {info.id} of {info.principal}")
