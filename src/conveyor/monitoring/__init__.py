"""Monitoring: data and prediction drift, outliers.

``import conveyor.monitoring`` is light; NumPy, pandas and SciPy load on first use.

    >>> rep = cv.monitoring.drift(reference_df, current_df, target="cnt", prediction="pred")
    >>> rep.drifted_columns, rep.share_drifted, rep.columns["temp"].statistic
    >>> cv.monitoring.create_monitor("bike-demand", model="bike-demand", reference="bikes-2011@1")
    >>> cv.monitoring.run_monitor("bike-demand").status
"""

from __future__ import annotations

import importlib
from typing import Any

_API = "conveyor.monitoring.api"
_LAZY = {
    "ColumnDrift": "conveyor.monitoring.data_drift",
    "DriftReport": "conveyor.monitoring.data_drift",
    "METHODS": "conveyor.monitoring.data_drift",
    "Monitor": "conveyor.monitoring.monitors",
    "MonitorRun": "conveyor.monitoring.evaluation",
    "OutlierDetector": "conveyor.monitoring.outliers",
    "ReferenceProfile": "conveyor.monitoring.profile",
    "create_monitor": _API,
    "delete_monitor": _API,
    "drift": "conveyor.monitoring.data_drift",
    "get_monitor": _API,
    "list_incidents": _API,
    "list_monitors": _API,
    "list_results": _API,
    "rebase_monitor": _API,
    "run_monitor": _API,
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
