"""``conveyor pipelines run|runs|show|resume|graph``: a thin face over ``conveyor.pipelines``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from conveyor.cli.output import emit_json, json_option, table, when
from conveyor.core.errors import InvalidArgument

_EXECUTOR_HELP = "process (default), inprocess, ray or ray://host:port"


@click.group("pipelines")
def group() -> None:
    """Run pipelines, inspect their runs, resume failed ones, draw them."""


def parse_params(pipeline: Any, pairs: tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs; values are JSON, or plain text for a parameter annotated ``str``."""
    annotations = {p.name: p.annotation for p in pipeline.params}
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"-p {pair!r} must look like name=value", field="param")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            if annotations.get(key) is not str:
                raise InvalidArgument(
                    f"-p {key}: {text!r} is not JSON; write numbers as 0.1, lists as [1,2] "
                    "and text in double quotes",
                    field=key,
                ) from None
            params[key] = text
        if annotations.get(key) is str and not isinstance(params[key], str):
            params[key] = text  # a path like 2024 stays text when the pipeline wants text
    return params


def _print_run(run: Any) -> None:
    click.echo(f"pipeline run {run.id}  {run.pipeline}  {run.status.value}")
    rows = []
    for s in run.steps.values():
        duration = f"{s.duration_ms / 1000:.2f}s" if s.duration_ms is not None else "-"
        rows.append((s.name, s.status.value, "hit" if s.cache_hit else "miss", s.cache_key[:12] or "-",
                     s.attempts, duration, s.run_id or "-"))
    table(["STEP", "STATUS", "CACHE", "KEY", "ATTEMPTS", "TIME", "RUN"], rows)
    if run.metrics:
        click.echo("\nmetrics: " + "  ".join(f"{k}={v:.6g}" for k, v in sorted(run.metrics.items())))
    for s in run.steps.values():
        if s.status.value == "failed":
            click.echo(f"\n{s.name} failed: {s.error.splitlines()[0] if s.error else '?'}", err=True)


def _finish(run: Any, as_json: bool) -> None:
    if as_json:
        emit_json(run.to_dict())
    else:
        _print_run(run)
    if not run.ok:
        sys.exit(1)


@group.command("run")
@click.argument("target", metavar="FILE.py:NAME")
@click.option("--param", "-p", "pairs", multiple=True, help="name=value (JSON), repeatable.")
@click.option("--executor", "-e", default=None, help=_EXECUTOR_HELP)
@click.option("--no-cache", is_flag=True, help="Run every step even when a cached result exists.")
@click.option("--project", default=None, help="Record the runs in this project.")
@json_option
def run_(target: str, pairs: tuple[str, ...], executor: str | None, no_cache: bool, project: str | None, as_json: bool) -> None:
    """Run the pipeline NAME defined in FILE.py."""
    from conveyor.pipelines.loading import load_pipeline

    pipeline = load_pipeline(target)
    params = parse_params(pipeline, pairs)
    _finish(pipeline.run(executor=executor, no_cache=no_cache, project=project, **params), as_json)


@group.command("runs")
@click.option("--project", default=None, help="Project name ('*' for all; default: current).")
@click.option("--max-results", "-n", default=50, show_default=True, type=int)
@json_option
def runs(project: str | None, max_results: int, as_json: bool) -> None:
    """Pipeline runs, newest first."""
    import conveyor as cv

    page = cv.search_runs(project, "tags.`conveyor.pipeline` IS NOT NULL", None, max_results)
    if as_json:
        emit_json({"runs": list(page)})
        return
    table(
        ["ID", "PIPELINE", "STATUS", "STARTED"],
        [(r.id, r.tags.get("conveyor.pipeline"), r.status.value, when(r.start_time)) for r in page],
    )


@group.command("show")
@click.argument("run_id")
@json_option
def show(run_id: str, as_json: bool) -> None:
    """Steps of one pipeline run: status, cache hit and key, attempts, timing."""
    from conveyor.pipelines import load_pipeline_run

    run = load_pipeline_run(run_id)
    if as_json:
        emit_json(run.to_dict())
    else:
        _print_run(run)


@group.command("resume")
@click.argument("run_id")
@click.option("--executor", "-e", default=None, help=_EXECUTOR_HELP)
@json_option
def resume(run_id: str, executor: str | None, as_json: bool) -> None:
    """Run again only the failed and not-yet-run steps of RUN_ID."""
    from conveyor.pipelines import resume as resume_run

    _finish(resume_run(run_id, executor=executor), as_json)


@group.command("graph")
@click.argument("target", metavar="FILE.py:NAME")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text", show_default=True)
def graph(target: str, fmt: str) -> None:
    """Print the pipeline's DAG."""
    from conveyor.pipelines.loading import load_pipeline

    click.echo(load_pipeline(target).graph(fmt))
