"""``conveyor monitor create|run|status|report|list|rebase|delete``: stored monitors of a served model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from conveyor.cli.output import emit_json, json_option, table, when


@click.group("monitor")
def group() -> None:
    """Monitors: drift, live performance and alerts over the prediction log."""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@group.command("create")
@click.argument("name")
@click.option("--model", "-m", help="The served model: NAME or NAME@ALIAS (default: the monitor's name).")
@click.option("--reference", "-r", required=True, help="The reference dataset, name@N.")
@click.option("--window", default="1d", show_default=True, help="How far back each run looks (30m, 6h, 1d, 1w).")
@click.option("--drift-threshold", type=float, default=0.3, show_default=True,
              help="Share of drifted features at which the window drifts.")
@click.option("--metric", help="Live metric on labelled rows: rmse, mae, r2, mape, accuracy, precision, recall, f1.")
@click.option("--metric-threshold", help="When performance is degraded, e.g. 'rmse > 1.2 * baseline'.")
@click.option("--target", help="The reference's label column (compared with the feedback labels).")
@click.option("--prediction", help="The reference's prediction column (compared with the served predictions).")
@click.option("--baseline", type=float, help="The metric's baseline (default: the model version's run metric).")
@click.option("--feature", "features", multiple=True, help="A feature to compare (repeatable; default: the model's inputs).")
@click.option("--alert", "alerts", multiple=True, help="webhook=URL, slack=URL or log=PATH (repeatable).")
@click.option("--slice", "slices", multiple=True,
              help="A column whose values split the live metric, e.g. season (repeatable; needs --metric).")
@click.option("--slice-rule", is_flag=True,
              help="A slice value that breaks --metric-threshold degrades the window.")
@json_option
def create(name: str, model: str | None, reference: str, window: str, drift_threshold: float, metric: str | None,
           metric_threshold: str | None, target: str | None, prediction: str | None, baseline: float | None,
           features: tuple[str, ...], alerts: tuple[str, ...], slices: tuple[str, ...], slice_rule: bool,
           as_json: bool) -> None:
    """Store monitor NAME: the reference is profiled once, now."""
    import conveyor as cv

    monitor = cv.monitoring.create_monitor(
        name, model=model or name, reference=reference, window=window, drift_threshold=drift_threshold,
        metric=metric, metric_threshold=metric_threshold, alerts=list(alerts), features=list(features) or None,
        target=target, prediction=prediction, baseline=baseline, slices=list(slices), slice_rule=slice_rule,
    )
    if as_json:
        emit_json(monitor.to_dict())
        return
    click.echo(f"monitor {monitor.name}: {monitor.model} against {monitor.reference}, "
               f"{len(monitor.features)} features, window {monitor.window}, {len(monitor.alerts)} alert channel(s)"
               + (f", {monitor.metric} by {', '.join(monitor.slices)}" if monitor.slices else ""))


def _result_line(result: Any) -> str:
    metric = "" if result.metric_value is None else f", metric {result.metric_value:.4g}"
    if result.baseline is not None:
        metric += f" (baseline {result.baseline:.4g})"
    return (f"{result.status}: {result.rows} rows, {result.labelled_rows} labelled, "
            f"{_pct(result.share_drifted)} of features drifted{metric}")


@group.command("run")
@click.argument("name")
@json_option
def run(name: str, as_json: bool) -> None:
    """Evaluate monitor NAME over its last window now and store the result."""
    import conveyor as cv

    outcome = cv.monitoring.run_monitor(name)
    if as_json:
        emit_json({"result": outcome.result, "change": outcome.change, "incident": outcome.incident,
                   "deliveries": outcome.deliveries})
        return
    click.echo(_result_line(outcome.result))
    for reason in outcome.result.reasons:
        click.echo(f"  {reason}")
    if outcome.change is not None and outcome.incident is not None:
        sent = sum(1 for d in outcome.deliveries if d["ok"])
        click.echo(f"incident {outcome.incident.id} {outcome.change}; "
                   f"alert sent to {sent} of {len(outcome.deliveries)} channel(s)")


@group.command("status")
@click.argument("name")
@click.option("--limit", "-n", default=10, show_default=True, help="How many recent results.")
@json_option
def status(name: str, limit: int, as_json: bool) -> None:
    """The latest results of monitor NAME and its open incident."""
    import conveyor as cv

    monitor = cv.monitoring.get_monitor(name)
    results = cv.monitoring.list_results(name, limit, with_reports=bool(monitor.slices))
    latest = next((r for r in results if r.report), None)  # the newest window with data
    slices = (latest.report.get("performance") or {}).get("slices") if latest is not None else None
    incidents = cv.monitoring.list_incidents(name, 1)
    open_incident = incidents[0] if incidents and incidents[0].status == "open" else None
    if as_json:
        emit_json({"monitor": monitor.to_dict(), "results": [_without_report(r) for r in results],
                   "open_incident": open_incident, "slices": slices})
        return
    if open_incident is not None:
        click.echo(f"OPEN INCIDENT since {when(open_incident.opened_at)}: {open_incident.reason}")
    else:
        click.echo("no open incident")
    table(["AT", "STATUS", "ROWS", "LABELLED", "DRIFTED", "METRIC", "BASELINE", "OUTLIERS"],
          [(when(r.at), r.status, r.rows, r.labelled_rows, _pct(r.share_drifted), r.metric_value, r.baseline,
            _pct(r.outlier_rate)) for r in results])
    if monitor.slices:
        _slice_tables(monitor, latest, slices)


def _without_report(result: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(result, report=None) if result.report is not None else result


def _slice_tables(monitor: Any, latest: Any, slices: dict[str, Any] | None) -> None:
    """The metric per slice value of the newest window with data, one small table per slice column."""
    if latest is None or not slices:
        click.echo(f"\n{monitor.metric} by {', '.join(monitor.slices)}: no window with data yet")
        return
    for column, found in slices.items():
        click.echo(f"\n{monitor.metric} by {column} (window ending {when(latest.window_end)}):")
        if "error" in found:
            click.echo(f"  {found['error']}")
            continue
        table([column.upper(), "ROWS", "LABELLED", monitor.metric.upper(), "BREAKS RULE", "NOTE"],
              [(s["value"], s["rows"], s["labelled"], s["metric"],
                "-" if s["breaks"] is None else "yes" if s["breaks"] else "no", s.get("note", ""))
               for s in found["values"]])
        if found["more_values"]:
            click.echo(f"  ... and {found['more_values']} more values ({found['more_rows']} rows)")


@group.command("report")
@click.argument("name")
@click.option("--html", "html_path", type=click.Path(path_type=Path), required=True, help="Where to write the page.")
@click.option("--limit", "-n", default=100, show_default=True, help="How many results the charts cover.")
def report(name: str, html_path: Path, limit: int) -> None:
    """Write the latest drift report and performance over time of NAME as one HTML page."""
    import conveyor as cv
    from conveyor.monitoring.monitor_report import render

    page = render(cv.monitoring.get_monitor(name), cv.monitoring.list_results(name, limit, with_reports=True))
    html_path.write_text(page, encoding="utf-8")
    click.echo(f"wrote {html_path}")


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """The monitors of the current project."""
    import conveyor as cv

    monitors = cv.monitoring.list_monitors()
    if as_json:
        emit_json([m.to_dict() for m in monitors])
        return
    table(["NAME", "MODEL", "REFERENCE", "WINDOW", "DRIFT AT", "METRIC RULE", "ALERTS", "CREATED"],
          [(m.name, m.model, m.reference, m.window, _pct(m.drift_threshold), m.metric_threshold or m.metric,
            len(m.alerts), when(m.created_at)) for m in monitors])


@group.command("rebase")
@click.argument("name")
@click.option("--reference", "-r", required=True, help="The new reference dataset, name@N (say, what the "
              "new champion was trained on).")
@json_option
def rebase(name: str, reference: str, as_json: bool) -> None:
    """Compare monitor NAME against a new reference from now on; thresholds and history stay."""
    import conveyor as cv

    before = cv.monitoring.get_monitor(name).reference
    monitor = cv.monitoring.rebase_monitor(name, reference)
    if as_json:
        emit_json(monitor.to_dict())
        return
    click.echo(f"monitor {name} now compares against {monitor.reference} (was {before})")


@group.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete monitor NAME with its results and incidents."""
    import conveyor as cv

    cv.monitoring.delete_monitor(name)
    click.echo(f"deleted monitor {name}")
