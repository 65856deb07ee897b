"""``conveyor runs list|show|compare``."""

from __future__ import annotations

import click

from conveyor.cli.output import emit_json, json_option, table, when
from conveyor.core.entities import Run


@click.group("runs")
def group() -> None:
    """Inspect and compare tracked runs."""


@group.command("list")
@click.option("--project", "-p", default=None, help="Project name ('*' for all; default: current).")
@click.option("--filter", "-f", "filter_", default=None, help="e.g. \"metrics.rmse < 50 and params.lr = '0.05'\"")
@click.option("--order-by", "-o", multiple=True, help="e.g. 'metrics.rmse ASC' (repeatable).")
@click.option("--max-results", "-n", default=50, show_default=True, type=int)
@click.option("--page-token", default=None, help="Token printed at the end of the previous page.")
@json_option
def list_(project: str | None, filter_: str | None, order_by: tuple[str, ...], max_results: int, page_token: str | None, as_json: bool) -> None:
    """List runs, newest first unless --order-by says otherwise."""
    import conveyor as cv

    page = cv.search_runs(project, filter_, list(order_by) or None, max_results, page_token)
    if as_json:
        emit_json({"runs": list(page), "next_page_token": page.next_page_token})
        return
    metric_keys = sorted({k for r in page for k in r.metrics if not k.startswith("system/")})[:6]
    table(
        ["ID", "NAME", "STATUS", "STARTED", *metric_keys],
        [(r.id, r.name, r.status.value, when(r.start_time), *(r.metrics.get(k) for k in metric_keys)) for r in page],
    )
    if page.next_page_token:
        click.echo(f"\nmore: --page-token {page.next_page_token}")


@group.command("show")
@click.argument("run_id")
@json_option
def show(run_id: str, as_json: bool) -> None:
    """Everything recorded about one run."""
    import conveyor as cv

    run = cv.get_run(run_id)
    if as_json:
        emit_json(run)
        return
    _print_run(run)


def _print_run(run: Run) -> None:
    duration = f"{run.duration_ms / 1000:.1f}s" if run.duration_ms is not None else "-"
    for label, value in (
        ("id", run.id), ("name", run.name), ("project", run.project), ("status", run.status.value),
        ("started", when(run.start_time)), ("ended", when(run.end_time)), ("duration", duration),
        ("parent", run.parent_id or "-"), ("user", run.user or "-"),
    ):
        click.echo(f"{label:<10}{value}")
    git = run.env.get("git") or {}
    if git:
        click.echo(f"{'git':<10}{git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}")
    click.echo(f"{'python':<10}{run.env.get('python', '-')}  packages {run.env.get('packages_count', '-')} "
               f"{str(run.env.get('packages_digest', ''))[:19]}")
    for title, mapping in (("params", run.params), ("metrics", run.metrics), ("tags", run.tags)):
        if mapping:
            click.echo(f"\n{title}:")
            table(["KEY", "VALUE"], sorted(mapping.items()))
    if run.artifacts:
        click.echo("\nartifacts:")
        table(["PATH", "SIZE", "DIGEST"], [(a.path, a.size, a.digest[:23]) for a in run.artifacts])


@group.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@json_option
def compare(run_ids: tuple[str, ...], as_json: bool) -> None:
    """Params and metrics of several runs side by side; differing rows are marked '*'."""
    import conveyor as cv

    if len(run_ids) < 2:
        raise click.UsageError("give at least two run ids to compare")
    found = [cv.get_run(r) for r in run_ids]
    if as_json:
        emit_json({r.id: {"name": r.name, "params": r.params, "metrics": r.metrics, "tags": r.tags} for r in found})
        return
    rows = []
    for kind in ("params", "metrics"):
        keys = sorted({k for r in found for k in getattr(r, kind)})
        for key in keys:
            values = [getattr(r, kind).get(key) for r in found]
            mark = "*" if len({repr(x) for x in values}) > 1 else ""
            rows.append((mark, f"{kind}.{key}", *values))
    table(["", "KEY", *(f"{r.name} ({r.id[-6:]})" for r in found)], rows)
