"""Tables in and out: DataFrames and files to Arrow, with errors that name the problem.

Everything tabular goes through Arrow: a pandas or Polars frame, a CSV or a
Parquet file becomes a ``pyarrow.Table`` here, and a bad one (ragged CSV rows,
a truncated Parquet file, a column of mixed types) is refused with an
:class:`~conveyor.core.errors.InvalidArgument` before anything is stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument

TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(paths: Sequence[str]) -> str | None:
    """``"csv"`` or ``"parquet"`` when every path is a table file of that one format."""
    formats = {TABLE_SUFFIXES.get(Path(p).suffix.lower()) for p in paths}
    if len(formats) == 1:
        return formats.pop()
    return None


def _column_of(message: str) -> str | None:
    match = re.search(r"column '?([^'\s]+)'? with type", message) or re.search(
        r"for column (\S+)", message
    )
    return match.group(1) if match else None


def _reason(exc: Exception) -> str:
    return "; ".join(str(a) for a in exc.args) or type(exc).__name__


def to_arrow(data: Any) -> Any:
    """A ``pyarrow.Table`` from a pandas or Polars DataFrame or an Arrow table."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if type(data).__module__.startswith("polars"):
        return data.to_arrow()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas ships with the data extra
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        bad = [c for c in data.columns if not isinstance(c, str)]
        duplicated = sorted({c for c in data.columns if list(data.columns).count(c) > 1}, key=str)
        if duplicated:
            raise InvalidArgument(
                f"column names must be unique; {duplicated[0]!r} appears more than once",
                field="columns",
            )
        if bad:
            raise InvalidArgument(
                f"column names must be strings; {bad[0]!r} is {type(bad[0]).__name__}",
                field="columns",
            )
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            column = _column_of(str(exc))
            raise InvalidArgument(
                f"column {column!r} has values of mixed types ({_reason(exc)}); convert it to one type, "
                "e.g. df[col].astype(str)" if column else f"the DataFrame cannot be stored: {exc}",
                field=f"columns.{column}" if column else "data",
            ) from None
    raise InvalidArgument(
        f"expected a pandas or Polars DataFrame or a pyarrow Table, got {type(data).__name__}",
        field="data",
    )


def read_table(paths: Sequence[Path], fmt: str) -> Any:
    """Read table files (all CSV or all Parquet) into one ``pyarrow.Table``.

    Raises:
        InvalidArgument: a file is not a well-formed table (names the file and the reason).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    tables = []
    for path in paths:
        try:
            if fmt == "csv":
                tables.append(pcsv.read_csv(path))
            else:
                tables.append(pq.read_table(path))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            reason = str(exc).splitlines()[0]
            raise InvalidArgument(
                f"{path.name} is not a readable {fmt.upper()} table: {reason}", field="path"
            ) from None
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidArgument(f"the table files do not share one schema: {exc}", field="path") from None


def write_parquet(table: Any, path: Path) -> None:
    """Write ``table`` as Parquet (zstd) with deterministic bytes for the same data."""
    import pyarrow.parquet as pq

    # No creation timestamp, fixed writer: identical frames give identical files,
    # so logging the same DataFrame twice is deduplicated down to one blob.
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def read_any(data: Any) -> Any:
    """A ``pyarrow.Table`` from a DataFrame, an Arrow table or a path to a table file."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        fmt = table_format([path.name])
        if not path.is_file():
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.is_file())
                fmt = table_format([p.name for p in files])
                if files and fmt:
                    return read_table(files, fmt)
            raise InvalidArgument(f"{str(path)!r} is not a table file (.csv or .parquet)", field="path")
        if fmt is None:
            raise InvalidArgument(f"{path.name} is not a .csv or .parquet file", field="path")
        return read_table([path], fmt)
    return to_arrow(data)
