"""``conveyor users``: users and service accounts, and their project roles."""

from __future__ import annotations

import click

from conveyor.cli.output import emit_json, json_option, table, when


def governance() -> object:
    from conveyor.stores.metadata.base import open_metadata_store

    return open_metadata_store().governance  # type: ignore[attr-defined]


@click.group("users")
def group() -> None:
    """Users and service accounts (on the database, or on a server with an admin token)."""


@group.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Global admin: every right on every project.")
@click.option("--service", is_flag=True, help="A service account (for CI, pipelines) instead of a person.")
def create(name: str, admin: bool, service: bool) -> None:
    """Create NAME and print its first API token (shown this once)."""
    issued = governance().create_principal(name, kind="service" if service else "user", admin=admin)  # type: ignore[attr-defined]
    click.echo(f"created {'service account' if service else 'user'} {name}{' (admin)' if admin else ''}", err=True)
    click.echo("token (shown once; store it now, e.g. as CONVEYOR_TOKEN):", err=True)
    click.echo(issued.token)


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List users and service accounts with their roles."""
    found = governance().list_principals()  # type: ignore[attr-defined]
    if as_json:
        emit_json(found)
        return
    rows = [
        (p.name, p.kind, "yes" if p.is_admin else "", ", ".join(f"{k}:{r}" for k, r in p.roles.items()), when(p.created_at))
        for p in found
    ]
    table(["NAME", "KIND", "ADMIN", "ROLES", "CREATED"], rows)


@group.command("grant")
@click.argument("name")
@click.option("--project", required=True, help="The project the role applies to.")
@click.option("--role", required=True, type=click.Choice(["viewer", "editor", "owner", "none"]),
              help="none takes the role away.")
def grant(name: str, project: str, role: str) -> None:
    """Give NAME a ROLE on PROJECT."""
    principal = governance().grant(name, project=project, role=None if role == "none" else role)  # type: ignore[attr-defined]
    click.echo(f"{principal.name}: {principal.roles.get(project, 'no role')} on {project}")
