"""Request bodies to model inputs, in every shape clients send.

Accepted on ``/v1/models/{name}/predict``::

    {"records": [{"season": 1, "hr": 8, ...}, ...]}          one object per row
    {"columns": ["season", "hr"], "data": [[1, 8], ...]}     split
    {"instances": [[...], ...]}                              arrays (tensor models) or objects

and on ``/invocations`` the MLflow scoring shapes, so existing clients work unchanged::

    {"dataframe_split": {"columns": [...], "data": [[...]]}}
    {"dataframe_records": [{...}, ...]}
    {"inputs": [[...]] | {"col": [...], ...}}

A body that is not JSON, or not one of these shapes, is an :class:`InvalidArgument`
naming the field (HTTP 400); more rows than allowed is :class:`PayloadTooLarge` (413).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import InvalidArgument, PayloadTooLarge


@dataclass
class Batchable:
    """Rows of one request, kept as the client sent them until a batch is assembled."""

    records: list[dict[str, Any]] | None = None
    columns: list[str] | None = None
    data: list[list[Any]] | None = None
    array: Any = None  # tensor input, served without batching across requests

    @property
    def rows(self) -> int:
        if self.records is not None:
            return len(self.records)
        if self.data is not None:
            return len(self.data)
        return len(self.array)

    def frame(self) -> Any:
        import pandas as pd

        if self.records is not None:
            return pd.DataFrame.from_records(self.records)
        return pd.DataFrame(self.data, columns=self.columns)


def loads(body: bytes) -> Any:
    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the body is not valid JSON: {exc}", field="body") from None


def _records(value: Any, field: str) -> Batchable:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise InvalidArgument(f"{field} must be a list of objects, one per row", field=field)
    return Batchable(records=value)


def _split(value: Any, field: str) -> Batchable:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be an object with columns and data", field=field)
    columns, data = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidArgument(f"{field}.columns must be a list of column names", field=f"{field}.columns")
    # Checked with map and set (C loops): a 100-row request paid more for a Python loop over its rows.
    if not isinstance(data, list) or (data and set(map(type, data)) != {list}):
        raise InvalidArgument(f"{field}.data must be a list of rows (lists)", field=f"{field}.data")
    if data and set(map(len, data)) != {len(columns)}:
        i, row = next((i, row) for i, row in enumerate(data) if len(row) != len(columns))
        raise InvalidArgument(
            f"{field}.data row {i} has {len(row)} values for {len(columns)} columns", field=f"{field}.data"
        )
    return Batchable(columns=list(columns), data=data)


def _tensor(value: Any, field: str) -> Batchable:
    import numpy as np

    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return Batchable(records=value)
    if isinstance(value, dict):  # column name -> values
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InvalidArgument(f"{field} as an object must map each column to a list of equal length", field=field)
        names = list(value)
        return Batchable(columns=names, data=[list(row) for row in zip(*value.values(), strict=True)])
    if not isinstance(value, list):
        raise InvalidArgument(f"{field} must be a list of rows", field=field)
    try:
        array = np.asarray(value)
    except ValueError:
        raise InvalidArgument(f"{field} rows must all have the same shape", field=field) from None
    if array.dtype == object:
        raise InvalidArgument(f"{field} rows must all have the same shape and hold numbers", field=field)
    return Batchable(array=array)


def parse(body: bytes, *, max_rows: int, mlflow: bool = False) -> Batchable:
    """The rows of a request body; ``mlflow=True`` accepts the MLflow shapes too."""
    payload = loads(body)
    if not isinstance(payload, dict):
        raise InvalidArgument("the body must be a JSON object", field="body")
    shapes = {"records": _records, "columns": None, "instances": _tensor}
    if mlflow:
        shapes |= {"dataframe_records": _records, "dataframe_split": _split, "inputs": _tensor}
    found = [k for k in shapes if k in payload]
    if len(found) != 1:
        known = ", ".join(sorted(k for k in shapes if k != "columns") + ["columns+data"])
        raise InvalidArgument(f"give exactly one input shape: {known}", field="body")
    key = found[0]
    extra = set(payload) - {key, "data"} - ({"params"} if mlflow else set())
    if extra:
        raise InvalidArgument(f"unknown field(s): {', '.join(sorted(extra))}", field=sorted(extra)[0])
    if key == "columns":
        batch = _split(payload, "body")
    else:
        if "data" in payload:
            raise InvalidArgument("data goes with columns only", field="data")
        parser = shapes[key]
        assert parser is not None
        batch = parser(payload[key], key)
    if batch.rows == 0:
        raise InvalidArgument("the request has no rows", field=key)
    if batch.rows > max_rows:
        raise PayloadTooLarge(f"{batch.rows} rows is more than the {max_rows} allowed per request", field=key)
    return batch
