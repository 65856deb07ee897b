"""The ``conveyor`` command: a thin face over the Python API.

Every command parses its arguments and calls the SDK; anything the CLI does,
code can do. Errors print one line to stderr and exit with the error's code.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from conveyor._version import __version__
from conveyor.cli import (
    artifacts,
    audit,
    automation,
    data,
    db,
    models,
    monitor,
    pipelines,
    projects,
    quickstart,
    runs,
    serve,
    server,
    tokens,
    users,
)
from conveyor.core.errors import ConveyorError


class ConveyorGroup(click.Group):
    """Turns Conveyor errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            click.echo(f"error: {first_line}", err=True)
            for extra in str(exc).splitlines()[1:]:
                click.echo(extra, err=True)
            sys.exit(exc.exit_code)


@click.group(cls=ConveyorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="conveyor")
def cli() -> None:
    """Conveyor: the production line for ML models."""


for group in (projects.group, runs.group, artifacts.group, data.group, models.group, pipelines.group, db.group,
    monitor.group, automation.group,
    users.group, tokens.group, audit.group,
):
    cli.add_command(group)
cli.add_command(automation.agent_command)
cli.add_command(quickstart.command)
cli.add_command(server.command)
cli.add_command(serve.serve_command)
cli.add_command(serve.predict_command)


def main() -> None:
    cli(prog_name="conveyor")


if __name__ == "__main__":
    main()
