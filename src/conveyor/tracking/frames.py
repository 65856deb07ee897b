"""Runs as a pandas DataFrame (columns as in MLflow: ``metrics.rmse``, ``params.lr``…)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conveyor.core.entities import Run


def runs_to_frame(runs: Iterable[Run]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        from conveyor.core.errors import MissingExtra

        raise MissingExtra("output_format='pandas' needs pandas: pip install 'conveyor-mlops[ml]'") from None
    records = []
    for run in runs:
        record: dict[str, Any] = {
            "run_id": run.id,
            "project": run.project,
            "name": run.name,
            "status": run.status.value,
            "start_time": pd.Timestamp(run.start_time, unit="ms", tz="UTC"),
            "end_time": pd.Timestamp(run.end_time, unit="ms", tz="UTC") if run.end_time else pd.NaT,
            "parent_id": run.parent_id,
            "user": run.user,
        }
        record.update({f"metrics.{k}": val for k, val in run.metrics.items()})
        record.update({f"params.{k}": val for k, val in run.params.items()})
        record.update({f"tags.{k}": val for k, val in run.tags.items()})
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        frame = pd.DataFrame(columns=["run_id", "project", "name", "status", "start_time", "end_time"])
    return frame
