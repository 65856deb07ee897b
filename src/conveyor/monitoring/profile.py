"""The reference side of drift, reduced once to a small profile.

A :class:`ReferenceProfile` keeps, per column, what the statistics need and no
more: a sorted sample and quantile bins for numeric columns, category counts
for categorical ones, and null counts for both. A monitor stores it once; each
new window then costs one pass over the current data.

Column kinds: booleans, strings and pandas categoricals are categorical;
other numbers are numeric, except numeric columns with at most
``LOW_CARDINALITY`` distinct values in the reference (codes such as
``season`` or ``weathersit``), which are compared as categories.
``column_types`` overrides any of this per column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidArgument
from conveyor.monitoring import stats

LOW_CARDINALITY = 5
MAX_SAMPLE = 100_000  # numeric values kept per column (evenly spaced quantiles beyond)
MAX_CATEGORIES = 10_000  # categories counted per column; the rest are summed as "other"
KINDS = ("numeric", "categorical")


def as_pandas(frame: Any, what: str) -> Any:
    """A pandas DataFrame from pandas, Polars or Arrow input."""
    import pandas as pd

    if isinstance(frame, pd.DataFrame):
        return frame
    for method in ("to_pandas",):  # polars.DataFrame, pyarrow.Table
        if hasattr(frame, method):
            return getattr(frame, method)()
    raise InvalidArgument(
        f"{what} must be a DataFrame (pandas, Polars or Arrow), got {type(frame).__name__}", field=what
    )


def infer_kind(series: Any) -> str:
    if not is_number(series):
        return "categorical"
    return "categorical" if series.nunique(dropna=True) <= LOW_CARDINALITY else "numeric"


def numeric_values(series: Any) -> tuple[np.ndarray, int]:
    """Float values with nulls dropped, and the number of nulls (raises on text that is not a number).

    Without nulls the values may be the series' own memory: read them, never sort them in place.
    """
    values = series.to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(values)
    nulls = int(np.count_nonzero(missing))
    return (values[~missing] if nulls else values), nulls


def category_counts(series: Any, limit: int = MAX_CATEGORIES) -> tuple[dict[str, int], int, int]:
    """Counts per category (as text), the ``limit`` most frequent; the rest summed; the nulls.

    One hash pass: counting with the nulls kept and picking them out of the
    (few) distinct values is cheaper than asking pandas for the nulls apart.
    """
    import pandas as pd

    # Count first, then turn only the distinct values into text (1 and "1" add up).
    merged: dict[str, int] = {}
    nulls = 0
    for value, count in series.value_counts(dropna=False).items():
        if pd.isna(value):
            nulls += int(count)
            continue
        key = str(value)
        merged[key] = merged.get(key, 0) + int(count)
    ranked = sorted(merged.items(), key=lambda kv: -kv[1])
    return dict(ranked[:limit]), sum(c for _, c in ranked[limit:]), nulls


@dataclass
class ColumnProfile:
    name: str
    kind: str
    dtype: str
    count: int  # non-null values
    nulls: int
    # numeric
    sample: np.ndarray | None = None  # sorted
    edges: np.ndarray | None = None  # inner PSI bin edges
    shares: np.ndarray | None = None  # reference share per PSI bin
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    # categorical
    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0  # values beyond MAX_CATEGORIES

    @property
    def null_share(self) -> float:
        total = self.count + self.nulls
        return self.nulls / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "dtype": self.dtype,
            "count": self.count, "nulls": self.nulls,
        }
        if self.kind == "numeric":
            assert self.sample is not None and self.edges is not None and self.shares is not None
            out |= {
                "sample": self.sample.tolist(), "edges": self.edges.tolist(),
                "shares": self.shares.tolist(), "min": self.minimum, "max": self.maximum,
                "mean": self.mean, "std": self.std,
            }
        else:
            out |= {"counts": self.counts, "other": self.other}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnProfile:
        col = cls(name=d["name"], kind=d["kind"], dtype=d["dtype"], count=d["count"], nulls=d["nulls"])
        if col.kind == "numeric":
            col.sample = np.asarray(d["sample"], dtype=float)
            col.edges = np.asarray(d["edges"], dtype=float)
            col.shares = np.asarray(d["shares"], dtype=float)
            col.minimum, col.maximum, col.mean, col.std = d["min"], d["max"], d["mean"], d["std"]
        else:
            col.counts, col.other = dict(d["counts"]), int(d["other"])
        return col


def is_number(series: Any) -> bool:
    from pandas.api import types

    return types.is_numeric_dtype(series.dtype) and not types.is_bool_dtype(series.dtype)


def profile_column(name: str, series: Any, kind: str | None, max_sample: int = MAX_SAMPLE) -> ColumnProfile:
    """Profile one column; ``kind=None`` infers it (see the module docstring)."""
    if kind in (None, "numeric") and is_number(series):
        values, nulls = numeric_values(series)
        return profile_sorted(name, series, np.sort(values), nulls, kind, max_sample)
    if kind == "numeric":
        try:
            values, nulls = numeric_values(series)
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"column {name!r} is declared numeric but holds values that are not numbers", field=name
            ) from None
        return numeric_profile(name, str(series.dtype), np.sort(values), nulls, max_sample)
    counts, other, nulls = category_counts(series)
    col = ColumnProfile(name=name, kind="categorical", dtype=str(series.dtype), count=len(series) - nulls,
                        nulls=nulls)
    col.counts, col.other = counts, other
    return col


def profile_sorted(
    name: str, series: Any, values: np.ndarray, nulls: int, kind: str | None, max_sample: int = MAX_SAMPLE
) -> ColumnProfile:
    """Profile a column of numbers given its sorted non-null values; ``kind=None`` infers it.

    The distinct count decides the kind, and sorted values give it in one pass.
    """
    if kind is None:
        distinct = int(np.count_nonzero(values[1:] != values[:-1])) + 1 if len(values) else 0
        kind = "numeric" if distinct > LOW_CARDINALITY else "categorical"
    if kind == "numeric":
        return numeric_profile(name, str(series.dtype), values, nulls, max_sample)
    return profile_column(name, series, "categorical", max_sample)


def sorted_lane(series: Any) -> tuple[np.ndarray, int]:
    """A numeric column's sorted non-null values, in a fresh array, and its number of nulls.

    The column is copied once, as floats, into an array of its own (contiguous
    even when the frame keeps the column strided, as one built from a 2-D array
    does) and sorted there in place: no mask copy to drop the nulls (NaN sorts
    last, so the non-null values are the first ``rows - nulls``) and no second
    copy to sort. Never the caller's memory. One column at a time on purpose:
    NumPy's 2-D sort along the rows is about twice as slow as sorting each lane,
    and a block of columns raises the peak memory.
    """
    lane = np.empty(len(series))
    lane[:] = series.to_numpy(dtype=float, na_value=np.nan)
    nulls = int(np.count_nonzero(np.isnan(lane)))
    lane.sort()
    return lane[: len(lane) - nulls], nulls


def numeric_profile(name: str, dtype: str, values: np.ndarray, nulls: int, max_sample: int = MAX_SAMPLE) -> ColumnProfile:
    """The profile of a numeric column from its sorted non-null values."""
    col = ColumnProfile(name=name, kind="numeric", dtype=dtype, count=len(values), nulls=nulls)
    if len(values) > max_sample:  # evenly spaced order statistics keep the shape
        values = values[np.linspace(0, len(values) - 1, max_sample).round().astype(int)]
    col.sample = values
    col.edges = stats.bin_edges(values) if len(values) else np.array([])
    col.shares = stats.binned_shares(values, col.edges)
    if len(values):
        col.minimum, col.maximum = float(values[0]), float(values[-1])
        col.mean, col.std = float(values.mean()), float(values.std())
    return col


@dataclass
class ReferenceProfile:
    """What drift needs to know about the reference data, per column."""

    columns: dict[str, ColumnProfile]
    rows: int

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        columns: Sequence[str] | None = None,
        column_types: Mapping[str, str] | None = None,
        max_sample: int = MAX_SAMPLE,
    ) -> ReferenceProfile:
        df = as_pandas(frame, "reference")
        if len(df) == 0:
            raise InvalidArgument("the reference has no rows", field="reference")
        names = list(columns) if columns is not None else [str(c) for c in df.columns]
        types = dict(column_types or {})
        for name, kind in types.items():
            if kind not in KINDS:
                raise InvalidArgument(
                    f"column type of {name!r} must be one of {', '.join(KINDS)}, not {kind!r}",
                    field="column_types",
                )
        for name in names:
            if name not in df.columns:
                raise InvalidArgument(f"the reference has no column {name!r}", field="columns")
        numbers = [n for n in dict.fromkeys(names) if types.get(n) in (None, "numeric") and is_number(df[n])]
        profiles = {}
        for name in numbers:
            profiles[name] = profile_sorted(name, df[name], *sorted_lane(df[name]), types.get(name), max_sample)
        for name in names:
            if name not in profiles:
                profiles[name] = profile_column(name, df[name], types.get(name), max_sample)
        return cls(columns={n: profiles[n] for n in names}, rows=len(df))

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": [c.to_dict() for c in self.columns.values()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        cols = [ColumnProfile.from_dict(c) for c in d["columns"]]
        return cls(columns={c.name: c for c in cols}, rows=int(d["rows"]))
