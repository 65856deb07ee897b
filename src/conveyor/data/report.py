"""Validation reports: text for the CLI, JSON for machines, one self-contained HTML page.

The HTML page has its styles inline and loads nothing from the network; every
value that came from the data or the user is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from typing import Any

import msgspec

from conveyor.data.rules import Result


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """A failed check: which column, which check, what was seen and what was expected."""

    column: str | None
    check: str
    observed: Any
    expected: Any
    message: str


class ValidationReport:
    """The outcome of validating one table against one suite.

    Attributes:
        ok: ``True`` when every check passed.
        failures: the failed checks (column, check, observed, expected, message).
        results: every check, passed or not.
    """

    def __init__(self, *, suite: str, target: str, rows: int, results: list[Result], source: str | None = None) -> None:
        self.suite = suite
        self.target = target
        self.rows = rows
        self.source = source
        self.results = results
        self.failures = [
            Failure(column=r.column, check=r.check, observed=r.observed, expected=r.expected, message=r.message)
            for r in results
            if not r.ok
        ]
        self.ok = not self.failures

    def __repr__(self) -> str:
        verdict = "ok" if self.ok else f"{len(self.failures)} failed"
        return f"<ValidationReport {self.target} vs {self.suite!r}: {verdict}>"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ok": self.ok, "suite": self.suite, "source": self.source, "target": self.target,
            "rows": self.rows, "checks": len(self.results), "failed": len(self.failures),
            "failures": msgspec.to_builtins(self.failures),
            "results": msgspec.to_builtins(self.results),
        }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_text(self) -> str:
        verdict = "PASSED" if self.ok else "FAILED"
        lines = [
            f"{verdict}: {self.target} ({self.rows} rows) against suite {self.suite!r}: "
            f"{len(self.results) - len(self.failures)}/{len(self.results)} checks passed"
        ]
        for f in self.failures:
            where = f"{f.column}: " if f.column else ""
            lines.append(f"  x {where}{f.check}: {f.message}; observed {_short(f.observed)}, expected {_short(f.expected)}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """A standalone HTML page (no scripts, no external assets)."""
        e = html.escape
        verdict = "passed" if self.ok else "failed"
        rows = "\n".join(
            f"<tr class=\"{'ok' if r.ok else 'bad'}\"><td>{'✓' if r.ok else '✗'}</td>"
            f"<td>{e(r.column or '')}</td><td>{e(r.check)}</td><td>{e(_short(r.observed))}</td>"
            f"<td>{e(_short(r.expected))}</td><td>{e(r.message)}</td></tr>"
            for r in sorted(self.results, key=lambda r: r.ok)
        )
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation {e(verdict)}: {e(self.target)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}
h1 .passed{{color:#1a7f37}} h1 .failed{{color:#cf222e}}
table{{border-collapse:collapse;width:100%;font-size:.9rem}}
td,th{{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}}
tr.bad td{{background:#fff0f0}} code{{font-size:.85rem}}
</style></head><body>
<h1>Validation <span class="{verdict}">{verdict}</span></h1>
<p><b>{e(self.target)}</b> ({self.rows} rows) against suite <b>{e(self.suite)}</b>
{f'(derived from {e(self.source)})' if self.source else ''}:
{len(self.results) - len(self.failures)} of {len(self.results)} checks passed.</p>
<table><thead><tr><th></th><th>column</th><th>check</th><th>observed</th><th>expected</th><th>detail</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
