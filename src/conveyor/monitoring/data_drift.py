"""Data drift between a reference and a current window, per column and overall.

``drift(reference, current)`` compares every column of the reference with the
same column of the current data and returns a :class:`DriftReport`.

Default methods (override per column with ``methods=``, thresholds with
``thresholds=``):

| column | reference ≤ 1,000 values | larger reference |
| --- | --- | --- |
| numeric | Kolmogorov-Smirnov, drift when p < 0.05 | Wasserstein distance / reference std ≥ 0.1 |
| categorical | chi-squared, drift when p < 0.05 | Jensen-Shannon distance ≥ 0.1 |

``psi`` (population stability index, drift when ≥ 0.1) works on both kinds.
Small references get a hypothesis test (the sample says little, so ask whether
the difference could be chance); large ones get a distance, because with
enough rows every test rejects on differences too small to matter.

Besides the verdict each column reports its null share in both windows,
categories the reference never saw, and the share of numeric values outside
the reference range. The dataset drifts when the share of drifted feature
columns (target and prediction excluded) reaches ``drift_share`` (0.5).

Edge cases, never a silent "no drift": a column missing from the current data
is reported as ``missing`` and counts as drifted; a column whose values are all
null in the current window is ``empty`` and counts as drifted when the
reference had values; a numeric column that arrives as text is ``type_changed``
and counts as drifted; a current window with no rows is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidArgument
from conveyor.monitoring import stats
from conveyor.monitoring.profile import (
    ColumnProfile,
    ReferenceProfile,
    as_pandas,
    category_counts,
    is_number,
    numeric_values,
    sorted_lane,
)

SMALL_SAMPLE = 1_000


@dataclass(frozen=True)
class Method:
    name: str
    kinds: tuple[str, ...]
    threshold: float
    is_p_value: bool  # drift when the value is *below* the threshold


METHODS: dict[str, Method] = {
    "ks": Method("ks", ("numeric",), 0.05, True),
    "wasserstein": Method("wasserstein", ("numeric",), 0.1, False),
    "psi": Method("psi", ("numeric", "categorical"), 0.1, False),
    "chisquare": Method("chisquare", ("categorical",), 0.05, True),
    "jensenshannon": Method("jensenshannon", ("categorical",), 0.1, False),
}


def default_method(col: ColumnProfile) -> str:
    small = col.count <= SMALL_SAMPLE
    if col.kind == "numeric":
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


@dataclass
class ColumnDrift:
    name: str
    kind: str
    method: str
    statistic: float | None  # the test statistic or the distance
    p_value: float | None  # for the tests (ks, chisquare)
    threshold: float
    drifted: bool
    status: str = "ok"  # ok | missing | empty | type_changed
    message: str = ""
    reference_null_share: float = 0.0
    current_null_share: float | None = None
    new_categories: list[str] = field(default_factory=list)
    new_category_share: float = 0.0
    out_of_range_share: float = 0.0
    # what the HTML report draws: labels and the share of each window per bin/category
    bins: list[str] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        """The value compared with the threshold."""
        return self.p_value if METHODS[self.method].is_p_value else self.statistic

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for key in ("statistic", "p_value"):
            value = d[key]
            if value is not None and not math.isfinite(value):
                d[key] = "inf" if value > 0 else "-inf"
        return d


@dataclass
class DriftReport:
    columns: dict[str, ColumnDrift]
    reference_rows: int
    current_rows: int
    drift_share: float
    target: str | None = None
    prediction: str | None = None

    @property
    def feature_columns(self) -> list[str]:
        return [n for n in self.columns if n not in (self.target, self.prediction)]

    @property
    def drifted_columns(self) -> list[str]:
        return [n for n in self.feature_columns if self.columns[n].drifted]

    @property
    def share_drifted(self) -> float:
        features = self.feature_columns
        return len(self.drifted_columns) / len(features) if features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.feature_columns) and self.share_drifted >= self.drift_share

    @property
    def target_drift(self) -> ColumnDrift | None:
        return self.columns.get(self.target) if self.target else None

    @property
    def prediction_drift(self) -> ColumnDrift | None:
        return self.columns.get(self.prediction) if self.prediction else None

    @property
    def missing_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "drifted_columns": self.drifted_columns,
            "missing_columns": self.missing_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "target": self.target,
            "prediction": self.prediction,
            "columns": {n: c.to_dict() for n, c in self.columns.items()},
        }

    def to_html(self, path: str | None = None, *, title: str = "Data drift") -> str:
        """The report as one self-contained HTML page; written to ``path`` when given."""
        from conveyor.monitoring.html import render_drift

        page = render_drift(self, title=title)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(page)
        return page

    def __repr__(self) -> str:
        return (
            f"<DriftReport {len(self.drifted_columns)}/{len(self.feature_columns)} feature columns "
            f"drifted, dataset_drift={self.dataset_drift}>"
        )


def drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    target: str | None = None,
    prediction: str | None = None,
    column_types: Mapping[str, str] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> DriftReport:
    """Compare ``current`` with ``reference`` (a DataFrame or a stored :class:`ReferenceProfile`).

    Args:
        columns: the columns to compare (default: every column of the reference).
        target, prediction: reported on their own and left out of the dataset verdict.
        column_types: ``{"hr": "categorical"}`` to override the inferred kind.
        methods: per column, one of ``ks``, ``wasserstein``, ``psi``, ``chisquare``, ``jensenshannon``.
        thresholds: per column, replaces the method's default threshold.
        drift_share: the share of drifted feature columns at which the dataset drifts.
    """
    if not 0 < drift_share <= 1:
        raise InvalidArgument("drift_share must be in (0, 1]", field="drift_share")
    profile = (
        reference
        if isinstance(reference, ReferenceProfile)
        else ReferenceProfile.from_frame(reference, columns=columns, column_types=column_types)
    )
    cur = as_pandas(current, "current")
    if len(cur) == 0:
        raise InvalidArgument("the current window has no rows: nothing to compare", field="current")
    names = list(columns) if columns is not None else list(profile.columns)
    for special, value in (("target", target), ("prediction", prediction)):
        if value is not None and value not in profile.columns:
            raise InvalidArgument(f"the reference has no {special} column {value!r}", field=special)
    methods = dict(methods or {})
    thresholds = dict(thresholds or {})
    for name, method in methods.items():
        if method not in METHODS:
            raise InvalidArgument(
                f"unknown drift method {method!r} for {name!r}; use one of {', '.join(METHODS)}",
                field="methods",
            )
    chosen: dict[str, tuple[str, float]] = {}
    for name in names:
        if name not in profile.columns:
            raise InvalidArgument(f"the reference has no column {name!r}", field="columns")
        col = profile.columns[name]
        method = methods.get(name) or default_method(col)
        if col.kind not in METHODS[method].kinds:
            raise InvalidArgument(
                f"method {method!r} does not apply to the {col.kind} column {name!r}", field="methods"
            )
        chosen[name] = method, thresholds.get(name, METHODS[method].threshold)
    # Numeric columns that hold numbers: one fresh sorted copy each (``sorted_lane``).
    numbers = [n for n in chosen if profile.columns[n].kind == "numeric" and n in cur.columns and is_number(cur[n])]
    results = {}
    for name in numbers:  # the lane is dropped as soon as the column is done
        results[name] = _compare(profile.columns[name], cur[name], *chosen[name], prepared=sorted_lane(cur[name]))
    for name, (method, threshold) in chosen.items():
        if name not in results:
            results[name] = _compare(profile.columns[name], cur[name] if name in cur.columns else None, method,
                                     threshold)
    return DriftReport(
        columns={n: results[n] for n in chosen},
        reference_rows=profile.rows,
        current_rows=len(cur),
        drift_share=drift_share,
        target=target,
        prediction=prediction,
    )


def _verdict(method: str, value: float, threshold: float) -> bool:
    if math.isnan(value):
        return True  # an undefined statistic is never reported as "no drift"
    return value < threshold if METHODS[method].is_p_value else value >= threshold


def _compare(
    col: ColumnProfile, series: Any, method: str, threshold: float, prepared: tuple[np.ndarray, int] | None = None
) -> ColumnDrift:
    """One column's verdict; ``prepared`` holds a numeric column's sorted non-null values and its nulls."""
    result = ColumnDrift(
        name=col.name, kind=col.kind, method=method, statistic=None, p_value=None,
        threshold=threshold, drifted=True, reference_null_share=col.null_share,
    )
    if series is None:
        result.status, result.message = "missing", "the column is missing from the current data"
        return result
    total = len(series)
    values, other = np.empty(0), 0
    counts: dict[str, int] = {}
    if prepared is not None:
        values, nulls = prepared
    elif col.kind == "numeric":
        try:
            values, nulls = numeric_values(series)
            values = np.sort(values)  # a copy: ``values`` may be the caller's DataFrame memory
        except (TypeError, ValueError):
            result.current_null_share = float(series.isna().sum()) / total if total else None
            result.status = "type_changed"
            result.message = f"numeric in the reference ({col.dtype}) but not numbers now ({series.dtype})"
            return result
    else:
        counts, other, nulls = category_counts(series)
    result.current_null_share = nulls / total if total else None
    if nulls == total or col.count == 0:
        result.status = "empty"
        if col.count == 0 and nulls == total:
            result.drifted, result.message = False, "all values are null in both windows"
        elif col.count == 0:
            result.message = "the reference column is all null but the current one has values"
        else:
            result.message = "every value is null in the current window"
        return result
    if col.kind == "numeric":
        return _numeric(col, values, method, threshold, result)
    return _categorical(col, counts, other, method, threshold, result)


def _numeric(col: ColumnProfile, values: np.ndarray, method: str, threshold: float, result: ColumnDrift) -> ColumnDrift:
    """``values``: the current window's non-null values, sorted."""
    assert col.sample is not None and col.edges is not None and col.shares is not None
    cur_shares = stats.binned_shares(values, col.edges)
    if method == "ks":
        result.statistic, result.p_value = stats.ks_2samp(col.sample, values)
    elif method == "wasserstein":
        result.statistic = stats.wasserstein_normed(col.sample, values, col.std)
    else:
        result.statistic = stats.psi(col.shares, cur_shares)
    score = result.p_value if result.p_value is not None else result.statistic
    assert score is not None
    result.drifted = _verdict(method, score, threshold)
    assert col.minimum is not None and col.maximum is not None
    inside = np.searchsorted(values, col.maximum, side="right") - np.searchsorted(values, col.minimum, side="left")
    result.out_of_range_share = 1.0 - inside / len(values)
    result.bins = _bin_labels(col.edges)
    result.reference_shares = [float(x) for x in col.shares]
    result.current_shares = [float(x) for x in cur_shares]
    return result


def _bin_labels(edges: np.ndarray) -> list[str]:
    labels = [f"{x:.4g}" for x in edges]
    if not labels:
        return ["all"]
    inner = [f"{a} to {b}" for a, b in zip(labels, labels[1:], strict=False)]
    return [f"< {labels[0]}", *inner, f">= {labels[-1]}"]


def _categorical(
    col: ColumnProfile, counts: dict[str, int], other: int, method: str, threshold: float, result: ColumnDrift
) -> ColumnDrift:
    categories, ref, cur = stats.aligned_counts(col.counts, counts)
    if col.other or other:  # beyond MAX_CATEGORIES both sides keep an "other" bucket
        categories.append("(other)")
        ref = np.append(ref, col.other)
        cur = np.append(cur, other)
    if method == "chisquare":
        result.statistic, result.p_value = stats.chi_squared(ref, cur)
    elif method == "jensenshannon":
        result.statistic = stats.jensen_shannon(ref, cur)
    else:
        result.statistic = stats.psi(ref / ref.sum(), cur / cur.sum())
    score = result.p_value if result.p_value is not None else result.statistic
    assert score is not None
    result.drifted = _verdict(method, score, threshold)
    new = [c for c in counts if c not in col.counts]
    if not col.other:  # with a truncated reference, "never seen" cannot be told apart
        result.new_categories = new[:100]
        result.new_category_share = float(sum(counts[c] for c in new) / max(cur.sum(), 1))
    top = np.argsort(-(ref + cur))[:30]
    result.bins = [categories[i] for i in top]
    result.reference_shares = [float(ref[i] / ref.sum()) for i in top]
    result.current_shares = [float(cur[i] / cur.sum()) for i in top]
    return result

