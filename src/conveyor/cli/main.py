"""The ``conveyor`` command: a thin face over the Python API.

Every command parses its arguments and calls the SDK; anything the CLI does,
code can do. Errors print one line to stderr and exit with the error's code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from conveyor._version import __version__
from conveyor.core.errors import ConveyorError

#: Every command: name -> (module under conveyor.cli, attribute). A command's module
#: is imported only when that command runs (or for --help), so ``conveyor data add``
#: does not pay for the server, serving or pipeline imports.
COMMANDS: dict[str, tuple[str, str]] = {
    "projects": ("projects", "group"),
    "runs": ("runs", "group"),
    "artifacts": ("artifacts", "group"),
    "data": ("data", "group"),
    "models": ("models", "group"),
    "pipelines": ("pipelines", "group"),
    "db": ("db", "group"),
    "monitor": ("monitor", "group"),
    "automation": ("automation", "group"),
    "users": ("users", "group"),
    "tokens": ("tokens", "group"),
    "audit": ("audit", "group"),
    "agent": ("automation", "agent_command"),
    "quickstart": ("quickstart", "command"),
    "server": ("server", "command"),
    "serve": ("serve", "serve_command"),
    "predict": ("serve", "predict_command"),
}


class ConveyorGroup(click.Group):
    """Loads commands on demand; turns Conveyor errors into one line on stderr and the exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = COMMANDS.get(cmd_name)
        if found is None:
            return None
        module = importlib.import_module(f"conveyor.cli.{found[0]}")
        command: click.Command = getattr(module, found[1])
        return command

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


def main() -> None:
    cli(prog_name="conveyor")


if __name__ == "__main__":
    main()
