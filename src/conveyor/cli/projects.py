"""``conveyor projects``."""

from __future__ import annotations

import click

from conveyor.cli.output import emit_json, json_option, table, when


@click.group("projects")
def group() -> None:
    """Projects group runs (and later models and datasets)."""


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List every project."""
    import conveyor as cv

    found = cv.list_projects()
    if as_json:
        emit_json(found)
        return
    table(["NAME", "CREATED", "ID"], [(p.name, when(p.created_at), p.id) for p in found])
