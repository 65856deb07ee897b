"""Model input for a whole batch, built once, with a fast path for the common case.

JSON rows from many requests become one DataFrame in the signature's column
order. When every request sent exactly the signature's columns and every value
is a number (the usual case for tabular models), the rows go through one NumPy
array: a few microseconds instead of pandas' per-column inference, and the
signature check shrinks to dtype and NaN tests on that array. Anything else
(missing or extra columns, text, nulls) takes the slow path, per request, with
the signature's full report of every problem.

What can be prepared once per served version (the column names, their pandas
index, which columns are integers) lives in a :class:`FramePlan`, so a batch
pays only for its own rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conveyor.serving.inputs import Batchable

_NUMERIC = {"integer", "float"}


class FastBatch:
    """A clean numeric batch in signature order.

    ``array`` is what ``frame.to_numpy()`` would give (int64 when every column is an
    integer, else float64); ``columns`` holds one 1-D array per column (views where
    possible) for the prediction log; ``frame``, the DataFrame, is built on first use.
    """

    __slots__ = ("array", "columns", "_plan", "_frame")

    def __init__(self, array: Any, columns: dict[str, Any], plan: FramePlan) -> None:
        self.array = array
        self.columns = columns
        self._plan = plan
        self._frame: Any = None

    @property
    def frame(self) -> Any:
        if self._frame is None:
            self._frame = self._plan.to_frame(self.array, self.columns)
        return self._frame


class FramePlan:
    """How to turn clean numeric rows into the signature's DataFrame (None: no fast path for it)."""

    def __init__(self, signature: Any) -> None:
        import pandas as pd

        self.usable = bool(
            signature is not None and signature.inputs.tensor is None and signature.inputs.columns
            and all(s.dtype in _NUMERIC for s in signature.inputs.columns)
        )
        specs = signature.inputs.columns if self.usable else []
        self.names: list[str] = [s.name for s in specs]
        self.wanted = frozenset(self.names)
        self.integer = np.array([s.dtype == "integer" for s in specs], dtype=bool)
        self.any_integer = bool(self.integer.any())
        self.all_integer = bool(self.integer.all()) if specs else False
        # An object index is built once; pandas and scikit-learn read plain strings fastest.
        self.index = pd.Index(self.names, dtype=object)

    def frame(self, items: list[Batchable]) -> FastBatch | None:
        """One DataFrame for ``items`` if they are all clean numeric rows of the signature, else None."""
        if not self.usable:
            return None
        rows: list[list[Any]] = []
        for item in items:
            part = _rows_in_order(item, self.names, self.wanted)
            if part is None:
                return None
            if len(items) == 1:
                rows = part
            else:
                rows.extend(part)
        try:
            array = np.array(rows)
        except ValueError:  # ragged rows
            return None
        if array.dtype.kind not in "iuf" or array.ndim != 2:  # text, None, bools or ragged rows
            return None
        if array.dtype.kind == "f":
            if not np.isfinite(array).all():
                return None  # let the full check decide what nulls are allowed, and the model what infinity is
            if self.any_integer:
                ints = array[:, self.integer]
                if not (ints == np.round(ints)).all():
                    return None  # 1.5 where an integer is expected: the full check reports it
        return self._build(array)

    def _build(self, array: Any) -> FastBatch:
        block = array.astype(np.int64 if self.all_integer else np.float64, copy=False)
        if self.all_integer or not self.any_integer:  # one dtype: the columns are views of the block
            return FastBatch(block, {n: block[:, i] for i, n in enumerate(self.names)}, self)
        columns = {
            name: array[:, i].astype(np.int64 if self.integer[i] else np.float64)
            for i, name in enumerate(self.names)
        }
        return FastBatch(block, columns, self)

    def to_frame(self, block: Any, columns: dict[str, Any]) -> Any:
        """The model's DataFrame: the block itself when every column has its dtype, else the columns."""
        import pandas as pd

        if self.all_integer or not self.any_integer:
            return pd.DataFrame(block, columns=self.index, copy=False)
        frame = pd.DataFrame(columns, copy=False)
        frame.columns = self.index
        return frame

    def to_array(self, frame: Any) -> Any:
        """What the hot path builds for a DataFrame of the signature's columns (the array predictor's probe)."""
        return np.asarray(frame[self.names].to_numpy(), dtype=np.int64 if self.all_integer else np.float64)


def _rows_in_order(item: Batchable, names: list[str], wanted: frozenset[str]) -> list[list[Any]] | None:
    """The item's rows as lists in ``names`` order, or None if its columns differ."""
    if item.records is not None:
        rows = []
        width = len(names)
        for record in item.records:
            if len(record) != width or record.keys() != wanted:
                return None
            rows.append([record[n] for n in names])
        return rows
    if item.columns is None or item.data is None or len(item.columns) != len(names):
        return None
    if item.columns == names:
        return item.data
    if set(item.columns) != wanted:
        return None
    index = [item.columns.index(n) for n in names]
    return [[row[i] for i in index] for row in item.data]

