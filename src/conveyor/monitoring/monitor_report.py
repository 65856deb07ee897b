"""A monitor's report page: the latest drift report plus the metric and drift over time.

The same self-contained page as :meth:`DriftReport.to_html` (inline CSS and
SVG, no script, no CDN), with a section added before the drift table.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.monitoring.data_drift import ColumnDrift, DriftReport
from conveyor.monitoring.monitors import Monitor
from conveyor.stores.metadata.monitors import ResultRecord


def report_from_dict(d: Mapping[str, Any]) -> DriftReport:
    """A :class:`DriftReport` back from its ``to_dict()`` form (as a result stores it)."""
    columns = {}
    for name, c in d["columns"].items():
        fields = {k: c[k] for k in ColumnDrift.__dataclass_fields__ if k in c}
        for key in ("statistic", "p_value"):
            if isinstance(fields.get(key), str):
                fields[key] = float(fields[key])
        columns[name] = ColumnDrift(**fields)
    return DriftReport(columns=columns, reference_rows=d["reference_rows"], current_rows=d["current_rows"],
                       drift_share=d["drift_share"], target=d.get("target"), prediction=d.get("prediction"))


def _when(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _line(points: Sequence[tuple[int, float]], width: int = 640, height: int = 140) -> str:
    """An SVG polyline of (time, value) points, oldest on the left."""
    if not points:
        return "<p class=muted>no values yet</p>"
    times = [t for t, _ in points]
    values = [x for _, x in points]
    t0, t1 = min(times), max(times) or 1
    lo, hi = min(values), max(values)
    span_t, span_v = (t1 - t0) or 1, (hi - lo) or 1
    xy = " ".join(f"{(t - t0) / span_t * (width - 20) + 10:.1f},{height - 10 - (x - lo) / span_v * (height - 20):.1f}"
                  for t, x in points)
    return (f'<svg width="{width}" height="{height}" role="img"><polyline fill="none" stroke="#ef6c00" '
            f'stroke-width="2" points="{xy}"/></svg><p class=muted>from {lo:.4g} to {hi:.4g}</p>')


def _slice_row(entry: Mapping[str, Any]) -> str:
    e = html.escape
    value = "" if entry["metric"] is None else f"{entry['metric']:.4g}"
    breaks = entry["breaks"]
    verdict = "" if breaks is None else '<span class="bad">yes</span>' if breaks else "no"
    return (f"<tr><td>{e(entry['value'])}</td><td>{entry['rows']}</td><td>{entry['labelled']}</td>"
            f"<td>{value}</td><td>{verdict}</td><td class=muted>{e(entry.get('note', ''))}</td></tr>")


def _slice_section(monitor: Monitor, latest: ResultRecord | None) -> str:
    """A small table per slice column: the metric per value in the newest window with data."""
    e = html.escape
    report = latest.report if latest is not None else None
    slices = ((report or {}).get("performance") or {}).get("slices")
    if not monitor.slices or latest is None or not slices:
        return ""
    metric = e(monitor.metric or "metric")
    parts = []
    for column, found in slices.items():
        parts.append(f"<h3>{metric} by {e(column)} (window ending {_when(latest.window_end)})</h3>")
        if "error" in found:
            parts.append(f"<p class=bad>{e(found['error'])}</p>")
            continue
        rows = "".join(_slice_row(entry) for entry in found["values"])
        more = (f"<p class=muted>and {found['more_values']} more values ({found['more_rows']} rows)</p>"
                if found["more_values"] else "")
        parts.append(f"<table><tr><th>{e(column)}</th><th>rows</th><th>labelled</th><th>{metric}</th>"
                     f"<th>breaks the rule</th><th>note</th></tr>{rows}</table>{more}")
    return "".join(parts)


def render(monitor: Monitor, results: Sequence[ResultRecord]) -> str:
    """The page for ``monitor`` given its results, newest first (the newest one with a report is drawn)."""
    e = html.escape
    latest = next((r for r in results if r.report), None)
    ordered = list(reversed(results))
    metric = [(r.at, r.metric_value) for r in ordered if r.metric_value is not None]
    shares = [(r.at, r.share_drifted) for r in ordered if r.share_drifted is not None]
    rows = "".join(
        f"<tr><td>{_when(r.at)}</td><td>{e(r.status)}</td><td>{r.rows}</td><td>{r.labelled_rows}</td>"
        f"<td>{'' if r.share_drifted is None else f'{r.share_drifted:.0%}'}</td>"
        f"<td>{'' if r.metric_value is None else f'{r.metric_value:.4g}'}</td>"
        f"<td>{'' if r.baseline is None else f'{r.baseline:.4g}'}</td>"
        f"<td>{'' if r.outlier_rate is None else f'{r.outlier_rate:.1%}'}</td>"
        f"<td class=muted>{e('; '.join(r.reasons))}</td></tr>"
        for r in results
    )
    section = (
        f"<h2>{e(monitor.name)}: {e(monitor.model)} over the last {e(monitor.window)}</h2>"
        f"<h3>{e(monitor.metric or 'metric')} over time</h3>{_line(metric)}"
        f"<h3>share of drifted features over time</h3>{_line(shares)}"
        "<table><tr><th>at</th><th>status</th><th>rows</th><th>labelled</th><th>drifted</th>"
        f"<th>{e(monitor.metric or 'metric')}</th><th>baseline</th><th>outliers</th><th>reasons</th></tr>"
        f"{rows}</table>{_slice_section(monitor, latest)}"
    )
    title = f"Monitor {monitor.name}"
    if latest is None or latest.report is None:
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title></head><body>"
                f"<h1>{e(title)}</h1>{section}<p>No window with data yet.</p></body></html>")
    page = report_from_dict(latest.report).to_html(title=f"{title}: drift at {_when(latest.at)}")
    return page.replace('<p class="legend">', section + '<h2>latest drift report</h2><p class="legend">', 1)
