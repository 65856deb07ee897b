"""Monitoring: data and prediction drift, outliers.

``import conveyor.monitoring`` is light; NumPy, pandas and SciPy load on first use.

    >>> rep = cv.monitoring.drift(reference_df, current_df, target="cnt", prediction="pred")
    >>> rep.drifted_columns, rep.share_drifted, rep.columns["temp"].statistic
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ColumnDrift": "conveyor.monitoring.data_drift",
    "DriftReport": "conveyor.monitoring.data_drift",
    "METHODS": "conveyor.monitoring.data_drift",
    "OutlierDetector": "conveyor.monitoring.outliers",
    "ReferenceProfile": "conveyor.monitoring.profile",
    "drift": "conveyor.monitoring.data_drift",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
