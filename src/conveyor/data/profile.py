"""Column profiles and inferred schemas, computed with vectorised Polars/NumPy operations.

A profile holds, per column: the type family, count, nulls, distinct values,
min/max/mean/std and quantiles for numbers and times, a histogram for numbers,
and the top categories for strings and booleans. All aggregates of all columns
are one Polars ``select`` (one pass, no Python loop over rows); histograms are
``numpy.histogram`` over each numeric column.

Profiles are plain JSON-able dicts, stored with each tabular version::

    {"num_rows": 17379, "columns": {"cnt": {"type": "int", "count": 17379, "nulls": 0,
     "distinct": 869, "min": 1, "max": 977, "mean": 189.5, "std": 181.4,
     "quantiles": {"0.05": 5.0, ...}, "histogram": {"edges": [...], "counts": [...]}}}}
"""

from __future__ import annotations

import math
from typing import Any

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HISTOGRAM_BINS = 10
TOP_CATEGORIES = 20
#: A string column with at most this many distinct values is treated as categorical.
MAX_CATEGORIES = 50

NUMERIC = ("int", "float")
ORDERED = ("int", "float", "date", "datetime", "duration")


def type_family(dtype: Any) -> str:
    """The coarse type of a Polars dtype: int, float, bool, string, date, datetime, duration, other."""
    import polars as pl

    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if dtype in (pl.Utf8, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "string"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if isinstance(dtype, pl.Duration):
        return "duration"
    return "other"


def to_polars(data: Any) -> Any:
    """A Polars DataFrame from any table-like input (see :func:`conveyor.data.tables.read_any`)."""
    import polars as pl

    if isinstance(data, pl.DataFrame):
        return data
    from conveyor.data.tables import read_any

    return pl.from_arrow(read_any(data))


def _json(value: Any) -> Any:
    """A JSON-safe scalar: NaN/inf become None, times become ISO text."""
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (int, str, bool)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    return str(value)


def bin_counts(values: Any, edges: Any) -> Any:
    """Counts of ``values`` in the equal-width bins ``edges``; values outside go to the end bins.

    Two vectorised passes (index arithmetic and ``bincount``): several times faster than
    ``numpy.histogram``, which also handles unequal bins.
    """
    import numpy as np

    bins = len(edges) - 1
    low, high = float(edges[0]), float(edges[-1])
    index = ((values - low) * (bins / (high - low))).astype(np.int64)
    np.clip(index, 0, bins - 1, out=index)
    return np.bincount(index, minlength=bins)


def profile_frame(data: Any) -> dict[str, Any]:
    """The statistical profile of a table (see the module docstring for its shape)."""
    import numpy as np
    import polars as pl

    df = to_polars(data)
    families = {name: type_family(dtype) for name, dtype in df.schema.items()}
    exprs = []
    for name, family in families.items():
        col = pl.col(name)
        # Exact distinct counts for keys-to-be (ints, text, times); HyperLogLog for floats,
        # where hashing every value costs ten times more and uniqueness means nothing.
        n_unique = col.approx_n_unique() if family == "float" else col.n_unique()
        exprs += [col.null_count().alias(f"{name}\0nulls"), n_unique.alias(f"{name}\0distinct")]
        if family in ORDERED:
            exprs += [col.min().alias(f"{name}\0min"), col.max().alias(f"{name}\0max")]
        if family in NUMERIC:
            as_float = col.cast(pl.Float64)
            exprs += [as_float.mean().alias(f"{name}\0mean"), as_float.std().alias(f"{name}\0std")]
            exprs += [
                as_float.quantile(q, interpolation="linear").alias(f"{name}\0q{q}") for q in QUANTILES
            ]
    stats = df.select(exprs).row(0, named=True) if exprs else {}
    columns: dict[str, Any] = {}
    for name, family in families.items():
        nulls = int(stats[f"{name}\0nulls"])
        distinct = int(stats[f"{name}\0distinct"]) - (1 if nulls else 0)
        distinct = max(0, min(distinct, df.height - nulls))  # the estimate may overshoot
        entry: dict[str, Any] = {
            "type": family, "dtype": str(df.schema[name]), "count": df.height - nulls,
            "nulls": nulls, "distinct": distinct,
        }
        if family in ORDERED:
            entry["min"] = _json(stats[f"{name}\0min"])
            entry["max"] = _json(stats[f"{name}\0max"])
        if family in NUMERIC:
            entry["mean"] = _json(stats[f"{name}\0mean"])
            entry["std"] = _json(stats[f"{name}\0std"])
            entry["quantiles"] = {str(q): _json(stats[f"{name}\0q{q}"]) for q in QUANTILES}
            values = df.get_column(name).drop_nulls().cast(pl.Float64).to_numpy()
            values = values[np.isfinite(values)]
            if values.size:
                low, high = float(values.min()), float(values.max())
                if high == low:
                    low, high = low - 0.5, high + 0.5  # numpy's convention for a single value
                edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
                entry["histogram"] = {"edges": edges.tolist(), "counts": bin_counts(values, edges).tolist()}
        if family in ("string", "bool"):
            top = (
                df.get_column(name).drop_nulls().cast(pl.Utf8).value_counts(sort=True)
                .head(TOP_CATEGORIES)
            )
            entry["top"] = {str(k): int(c) for k, c in top.iter_rows()}
        columns[name] = entry
    return {"num_rows": df.height, "columns": columns}


def schema_from_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """The schema a profile implies: per column type, nullability, range, categories, uniqueness."""
    rows = profile["num_rows"]
    schema: dict[str, Any] = {}
    for name, col in profile["columns"].items():
        entry: dict[str, Any] = {
            "type": col["type"], "dtype": col["dtype"], "nullable": col["nulls"] > 0,
            "unique": rows > 0 and col["nulls"] == 0 and col["distinct"] == rows,
        }
        if "min" in col:
            entry["min"], entry["max"] = col["min"], col["max"]
        if col["type"] == "string" and 0 < col["distinct"] <= min(MAX_CATEGORIES, TOP_CATEGORIES):
            entry["categories"] = sorted(col.get("top", {}))
        if col["type"] == "bool":
            entry["categories"] = sorted(col.get("top", {}))
        schema[name] = entry
    return schema


def infer_schema(data: Any) -> dict[str, Any]:
    """Types, nullability, ranges, categories and uniqueness of each column of ``data``.

    ``data`` is a pandas or Polars DataFrame, an Arrow table or a path to a table file.
    """
    return schema_from_profile(profile_frame(data))
