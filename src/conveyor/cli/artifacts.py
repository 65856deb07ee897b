"""``conveyor artifacts list|get``."""

from __future__ import annotations

import click

from conveyor.cli.output import emit_json, json_option, table


@click.group("artifacts")
def group() -> None:
    """Files logged to runs (stored once, verified on download)."""


@group.command("list")
@click.argument("run_id")
@click.argument("path", required=False)
@json_option
def list_(run_id: str, path: str | None, as_json: bool) -> None:
    """List a run's files, optionally under PATH."""
    import conveyor as cv

    files = cv.client().list_artifacts(run_id, path)
    if as_json:
        emit_json(files)
        return
    table(["PATH", "SIZE", "DIGEST"], [(f.path, f.size, f.digest) for f in files])


@group.command("get")
@click.argument("run_id")
@click.argument("path", required=False)
@click.option("--to", "dest", default=".", show_default=True, type=click.Path(file_okay=False))
def get(run_id: str, path: str | None, dest: str) -> None:
    """Download PATH (a file or folder; everything if omitted) of RUN_ID into --to."""
    import conveyor as cv

    target = cv.download_artifacts(run_id, path, dest)
    click.echo(str(target))
