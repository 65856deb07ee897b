"""Live performance per slice: the monitor's metric per value of a column, on the labelled rows.

A slice column of a stored monitor (``slices=["season"]``) splits each window by
its values. Per value the report gives the rows of the window, the labelled rows,
and the metric when at least ``MIN_LABELLED`` rows have labels (fewer are
reported as not judged, never as fine). With a metric rule, each judged value
says whether it breaks the rule against the same baseline as the whole window;
``slice_rule=True`` makes such a breach degrade the window.

A column with many values keeps the ``MAX_SLICE_VALUES`` largest groups and
counts the rest. A slice column missing from the log is reported with a message
rather than failing the evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Fewer labelled rows than this and a metric is not judged (too noisy to alert on).
MIN_LABELLED = 10
#: Values reported per slice column, the largest groups first; the rest are counted.
MAX_SLICE_VALUES = 50


def value_label(value: Any) -> str:
    """A slice value as text: nulls as ``(null)``, whole floats without ``.0`` (a column with nulls is float)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(null)"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _order(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, then text, then nulls."""
    label = value_label(value)
    if label == "(null)":
        return (2, 0.0, "")
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, label)


def slice_performance(
    window: Any,
    labelled: np.ndarray,
    columns: Sequence[str],
    metric: str,
    compute: Callable[[np.ndarray], float | None],
    breaks: Callable[[float], bool | None],
) -> tuple[dict[str, Any], list[str]]:
    """The metric per value of each slice column, and the breaches in words.

    Args:
        window: the window's rows (a pandas DataFrame).
        labelled: a boolean mask of the rows that have a label.
        compute: the metric on the rows at these positions (``None`` when it cannot be computed).
        breaks: whether a metric value breaks the monitor's rule (``None``: not judged).
    """
    import pandas as pd

    out: dict[str, Any] = {}
    breaches: list[str] = []
    for column in columns:
        if column not in window.columns:
            out[column] = {"error": f"slice column {column!r} is not in the prediction log; the log holds the "
                                    "model's inputs and the reserved columns (_version, ...)"}
            continue
        codes, uniques = pd.factorize(window[column], use_na_sentinel=False)
        rows = np.bincount(codes, minlength=len(uniques))
        labels = np.bincount(codes[labelled], minlength=len(uniques))
        kept = np.argsort(-rows, kind="stable")[:MAX_SLICE_VALUES]
        values = []
        for k in sorted(kept.tolist(), key=lambda i: _order(uniques[i])):
            label = value_label(uniques[k])
            entry: dict[str, Any] = {"value": label, "rows": int(rows[k]), "labelled": int(labels[k]),
                                     "metric": None, "judged": False, "breaks": None}
            if labels[k] < MIN_LABELLED:
                entry["note"] = f"{labels[k]} labelled rows; at least {MIN_LABELLED} are needed to judge"
            else:
                value = compute(np.flatnonzero((codes == k) & labelled))
                if value is None:
                    entry["note"] = f"{metric} could not be computed"
                else:
                    entry |= {"metric": value, "judged": True, "breaks": breaks(value)}
                    if entry["breaks"]:
                        breaches.append(f"{metric} {value:.4g} on {column}={label}")
            values.append(entry)
        out[column] = {"values": values, "more_values": int(len(uniques) - len(kept)),
                       "more_rows": int(rows.sum() - rows[kept].sum())}
    return out, breaches
