"""``validate`` and ``validate_or_raise``: run a suite over data and record the outcome.

Data may be a pandas or Polars DataFrame, an Arrow table, a path to a CSV or
Parquet file, or a :class:`~conveyor.data.versions.DatasetVersion`. When the
suite was derived from a dataset (``suite.source``) or the data is a version,
the result is recorded under that dataset (``conveyor data checks NAME``).
Inside a run, the report is also stored as the run's artifact
``data-checks/<check id>.json`` and the dataset version is linked to the run
(relation ``validated``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.core.errors import DataValidationFailed, NotFound
from conveyor.data.refs import parse_ref
from conveyor.data.report import ValidationReport
from conveyor.data.rules import run_checks
from conveyor.data.suite import Suite
from conveyor.data.versions import DatasetVersion


def _describe(data: Any) -> str:
    if isinstance(data, DatasetVersion):
        return data.ref
    if isinstance(data, (str, Path)):
        return str(data)
    return f"<{type(data).__name__}>"


def validate(data: Any, suite: Suite, *, record: bool = True) -> ValidationReport:
    """Check ``data`` against ``suite``; returns the report (never raises on failed checks).

    Raises:
        InvalidArgument: ``data`` is not a readable table.
    """
    import polars as pl

    from conveyor.data.profile import to_polars

    if not isinstance(suite, Suite):
        from conveyor.core.errors import InvalidArgument

        raise InvalidArgument(f"suite must be a Suite, got {type(suite).__name__}", field="suite")
    df = data.to_polars() if isinstance(data, DatasetVersion) else to_polars(data)
    assert isinstance(df, pl.DataFrame)
    report = ValidationReport(
        suite=suite.name, target=_describe(data), rows=df.height,
        results=run_checks(df, suite), source=suite.source,
    )
    if record:
        _record(data, suite, report)
    return report


def validate_or_raise(data: Any, suite: Suite, *, record: bool = True) -> ValidationReport:
    """Like :func:`validate`, but raise :class:`DataValidationFailed` (with ``.report``) on failure."""
    report = validate(data, suite, record=record)
    if not report.ok:
        first = report.failures[0]
        raise DataValidationFailed(
            f"{report.target} failed {len(report.failures)} of {len(report.results)} checks of "
            f"suite {report.suite!r}; first: {first.column or '-'} {first.check}: {first.message}",
            report=report,
        )
    return report


def _record(data: Any, suite: Suite, report: ValidationReport) -> None:
    """Record the result under its dataset, and with the active run (artifact + lineage)."""
    from conveyor.core.ids import new_id
    from conveyor.data.api import service
    from conveyor.tracking import fluent

    run = fluent.active_run()
    version: DatasetVersion | None = data if isinstance(data, DatasetVersion) else None
    if version is None and suite.source:
        ref = parse_ref(suite.source, "suite.source")
        try:
            version = service().get(str(ref)) if ref.version is not None else None
        except NotFound:  # a suite from another store: record by name only
            version = None
        name, number = ref.name, ref.version
    elif version is not None:
        name, number = version.name, version.version
    else:
        name, number = "", None
    ident = new_id()
    if name:
        ident = service().store.datasets.record_check(
            dataset=name, version=number, target=report.target, suite=suite.name, ok=report.ok,
            num_failures=len(report.failures), report=report.to_dict(),
            run_id=run.id if run is not None else None,
        ).id
    if run is None:
        return
    client = fluent.client()
    client.log_text(run.id, report.to_json(), f"data-checks/{ident}.json")
    if version is not None:
        client.store.add_lineage(
            version.lineage_node, ("run", run.id), "validated",
            {"check": ident, "ok": report.ok, "suite": suite.name},
        )
