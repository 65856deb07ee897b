"""Drift reports as one self-contained HTML page: inline CSS and SVG, no scripts, no CDN.

Every value that came from data (column names, categories) is escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.monitoring.data_drift import ColumnDrift, DriftReport

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
.bad{color:#b00020;font-weight:600}.good{color:#1b5e20}.muted{color:#777}
.col{margin:1.5em 0;padding:.5em 1em;border:1px solid #eee;border-radius:6px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""
_REF, _CUR = "#5c6bc0", "#ef6c00"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _bars(col: ColumnDrift, width: int = 640, height: int = 120) -> str:
    """Reference and current shares side by side per bin or category."""
    n = len(col.bins)
    if not n:
        return ""
    top = max([*col.reference_shares, *col.current_shares, 1e-9])
    slot = width / n
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg width="{width}" height="{height + 14}" role="img">']
    for i, label in enumerate(col.bins):
        for j, (share, colour) in enumerate(((col.reference_shares[i], _REF), (col.current_shares[i], _CUR))):
            h = share / top * height
            x = i * slot + j * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{_e(label)}: {share:.2%}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def render_drift(report: DriftReport, *, title: str) -> str:
    verdict = "drift detected" if report.dataset_drift else "no dataset drift"
    cls = "bad" if report.dataset_drift else "good"
    rows = []
    for col in report.columns.values():
        role = " (target)" if col.name == report.target else " (prediction)" if col.name == report.prediction else ""
        state = '<span class="bad">drift</span>' if col.drifted else '<span class="good">ok</span>'
        rows.append(
            f"<tr><td>{_e(col.name)}{role}</td><td>{_e(col.kind)}</td><td>{_e(col.method)}</td>"
            f"<td>{_fmt(col.statistic)}</td><td>{_fmt(col.p_value)}</td><td>{_fmt(col.threshold)}</td>"
            f"<td>{state}</td><td class=muted>{_e(col.status)} {_e(col.message)}</td></tr>"
        )
    details = []
    for col in report.columns.values():
        extra = []
        if col.current_null_share is not None:
            extra.append(f"nulls {col.reference_null_share:.2%} → {col.current_null_share:.2%}")
        if col.out_of_range_share:
            extra.append(f"{col.out_of_range_share:.2%} outside the reference range")
        if col.new_categories:
            shown = ", ".join(_e(c) for c in col.new_categories[:10])
            extra.append(f"new categories ({col.new_category_share:.2%} of rows): {shown}")
        details.append(
            f'<div class="col"><h3>{_e(col.name)}</h3><p class="muted">{"; ".join(extra)}</p>{_bars(col)}</div>'
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f"<p class='{cls}'>{verdict}: {len(report.drifted_columns)} of {len(report.feature_columns)} "
        f"feature columns drifted ({report.share_drifted:.0%}; the dataset drifts at "
        f"{report.drift_share:.0%}). Reference {report.reference_rows:,} rows, current "
        f"{report.current_rows:,} rows.</p>"
        f'<p class="legend"><span style="background:{_REF}"></span>reference'
        f'<span style="background:{_CUR}"></span>current</p>'
        "<table><tr><th>column</th><th>kind</th><th>method</th><th>statistic</th><th>p-value</th>"
        f"<th>threshold</th><th>verdict</th><th>notes</th></tr>{''.join(rows)}</table>"
        f"{''.join(details)}</body></html>"
    )
