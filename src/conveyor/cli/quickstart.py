"""``conveyor quickstart``: the end-to-end demo on the embedded default."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("quickstart")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Bike-sharing CSV (default: examples/data/bike_sharing_hourly.csv).")
@click.option("--runs", "n_runs", default=6, show_default=True, type=click.IntRange(1, 6),
              help="Runs in the hyper-parameter sweep.")
@click.option("--project", default="quickstart", show_default=True)
def command(data: Path | None, n_runs: int, project: str) -> None:
    """Train a LightGBM sweep on the bike-sharing data and track everything."""
    try:
        from conveyor.quickstart import run_quickstart
    except ImportError as exc:
        from conveyor.core.errors import MissingExtra

        raise MissingExtra(f"the quickstart needs {exc.name}: pip install 'conveyor-mlops[ml]'") from None
    run_quickstart(data=data, runs=n_runs, project=project)
