"""``conveyor quickstart``: the end-to-end demo on the embedded default."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("quickstart")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Bike-sharing CSV (default: examples/data/bike_sharing_hourly.csv).")
@click.option("--project", default="quickstart", show_default=True,
              help="Project to record in (quickstart-2, -3 ... when an earlier quickstart used it).")
@click.option("--sweep", is_flag=True, help="Instead: the tracking tour, a LightGBM sweep with every run tracked.")
@click.option("--runs", "n_runs", default=6, show_default=True, type=click.IntRange(1, 6),
              help="Runs in the --sweep hyper-parameter sweep.")
@click.option("--trial-seconds", default=6.0, show_default=True, type=click.FloatRange(1, 3600),
              help="How long the canary runs before it is judged.")
def command(data: Path | None, project: str, sweep: bool, n_runs: int, trial_seconds: float) -> None:
    """The retraining loop on real data: train, serve, drift, retrain, canary, promote, watch."""
    try:
        from conveyor.quickstart import run_quickstart, run_sweep
    except ImportError as exc:
        from conveyor.core.errors import MissingExtra

        raise MissingExtra(f"the quickstart needs {exc.name}: pip install 'conveyor-mlops[ml]'") from None
    if sweep:
        run_sweep(data=data, runs=n_runs, project=project)
        return
    run_quickstart(data=data, project=project, trial_seconds=trial_seconds, watch_seconds=trial_seconds)
