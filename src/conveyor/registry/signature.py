"""Model signatures: what a model takes and returns, checked before it predicts.

A signature is inferred from the input example given to ``log_model`` and the
model's output on it. Tabular inputs are columns (name, dtype kind, nullable);
array inputs are tensors (dtype, shape with ``None`` for free dimensions).
Nullability is what the example shows: a column with no missing value in the
example refuses NaN later; pass an explicit signature to allow it.

Serving calls :meth:`Signature.validate` on every request; the promotion gate
calls :meth:`Signature.compatibility` to check a candidate can take the
champion's traffic.

Example::

    sig = infer_signature(X.head(5), model.predict(X.head(5)))
    sig.validate(request_frame)        # raises SignatureMismatch listing each bad column
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.errors import InvalidArgument

#: dtype kinds a column may have, from the most to the least specific.
KINDS = ("bool", "integer", "float", "string", "category", "datetime", "object")

# What a column of each declared kind accepts: an integer column fits where
# floats are expected (no information lost), never the other way round.
_ACCEPTS = {
    "bool": {"bool"},
    "integer": {"integer"},
    "float": {"float", "integer"},
    "string": {"string", "category"},
    "category": {"category", "string"},
    "datetime": {"datetime"},
    "object": set(KINDS),
}


class SignatureMismatch(InvalidArgument):
    """Input does not fit a model's signature; ``problems`` lists each bad column."""

    http_status = 422  # well-formed, but not what this model takes
    code = "SIGNATURE_MISMATCH"

    def __init__(self, problems: Sequence[tuple[str, str]], what: str = "input") -> None:
        lines = "\n".join(f"  - {col}: {why}" for col, why in problems)
        super().__init__(f"{what} does not match the model signature ({len(problems)} problem(s)):\n{lines}",
                         field=problems[0][0] if problems else what)
        self.problems = list(problems)


def dtype_kind(dtype: Any) -> str:
    """The signature kind of a NumPy or pandas dtype."""
    import numpy as np
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, np.dtype) and dtype.kind in "US":
        return "string"
    return "object"


def _series_kind(series: Any) -> str:
    kind = dtype_kind(series.dtype)
    if kind == "object":  # pandas stores str as object: look at the values
        values = series.dropna()
        if len(values) and all(isinstance(x, str) for x in values.iloc[:100]):
            return "string"
    return kind


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str
    nullable: bool = False


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class Schema:
    """Named columns, or one tensor."""

    columns: tuple[ColumnSpec, ...] = ()
    tensor: TensorSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.tensor is not None:
            return {"tensor": {"dtype": self.tensor.dtype, "shape": list(self.tensor.shape)}}
        return {"columns": [{"name": c.name, "dtype": c.dtype, "nullable": c.nullable} for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if "tensor" in data:
            t = data["tensor"]
            return cls(tensor=TensorSpec(str(t["dtype"]), tuple(t["shape"])))
        return cls(columns=tuple(ColumnSpec(str(c["name"]), str(c["dtype"]), bool(c["nullable"]))
                                 for c in data.get("columns", [])))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def schema_of(data: Any) -> Schema:
    """The schema of a DataFrame, Series, NumPy array or list."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.Series):
        data = data.to_frame(name=data.name if data.name is not None else "prediction")
    if isinstance(data, pd.DataFrame):
        return Schema(columns=tuple(
            ColumnSpec(str(name), _series_kind(data[name]), bool(data[name].isna().any()))
            for name in data.columns
        ))
    array = np.asarray(data)
    return Schema(tensor=TensorSpec(dtype_kind(array.dtype), (None, *array.shape[1:])))


@dataclass(frozen=True)
class Signature:
    """The inputs a model takes and the outputs it returns."""

    inputs: Schema
    outputs: Schema | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs.to_dict(), "outputs": self.outputs.to_dict() if self.outputs else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        outputs = data.get("outputs")
        return cls(Schema.from_dict(data["inputs"]), Schema.from_dict(outputs) if outputs else None)

    def problems(self, data: Any) -> list[tuple[str, str]]:
        """Every way ``data`` does not fit the inputs, as ``(column, reason)``."""
        import numpy as np
        import pandas as pd

        if self.inputs.tensor is not None:
            tensor = self.inputs.tensor
            array = np.asarray(data)
            found: list[tuple[str, str]] = []
            if array.ndim != len(tensor.shape):
                found.append(("input", f"expected {len(tensor.shape)} dimensions, got {array.ndim}"))
            else:
                for i, (want, got) in enumerate(zip(tensor.shape, array.shape, strict=True)):
                    if want is not None and want != got:
                        found.append(("input", f"dimension {i} must be {want}, got {got}"))
            kind = dtype_kind(array.dtype)
            if kind not in _ACCEPTS[tensor.dtype]:
                found.append(("input", f"expected {tensor.dtype} values, got {kind}"))
            return found
        if not isinstance(data, pd.DataFrame):
            return [("input", f"expected a DataFrame with columns {self.inputs.names}, got {type(data).__name__}")]
        found = []
        expected = {c.name: c for c in self.inputs.columns}
        for spec in self.inputs.columns:
            if spec.name not in data.columns:
                found.append((spec.name, f"missing column (expected {spec.dtype})"))
                continue
            column = data[spec.name]
            kind = _series_kind(column)
            nulls = int(column.isna().sum())
            if kind == "float" and spec.dtype == "integer" and nulls:
                # pandas turns an integer column with a gap into floats: judge the values
                present = column.dropna()
                kind = "integer" if bool((present == present.round()).all()) else kind
            if kind not in _ACCEPTS[spec.dtype] and not (nulls == len(column) and spec.nullable):
                found.append((spec.name, f"wrong type: expected {spec.dtype}, got {kind}"))
            if nulls and not spec.nullable:
                found.append((spec.name, f"{nulls} missing value(s) (NaN/None) where none are allowed"))
        for name in data.columns:
            if str(name) not in expected:
                found.append((str(name), "unexpected column (not in the signature)"))
        return found

    def validate(self, data: Any) -> None:
        """Raise :class:`SignatureMismatch` listing every bad column of ``data``."""
        found = self.problems(data)
        if found:
            raise SignatureMismatch(found)

    def compatibility(self, champion: Signature) -> list[str]:
        """Why a model with this signature cannot take ``champion``'s traffic (empty: it can)."""
        found: list[str] = []
        if (self.inputs.tensor is None) != (champion.inputs.tensor is None):
            return ["one model takes columns, the other a tensor"]
        if self.inputs.tensor is not None and champion.inputs.tensor is not None:
            mine, theirs = self.inputs.tensor, champion.inputs.tensor
            if mine.shape[1:] != theirs.shape[1:]:
                found.append(f"input shape {list(mine.shape)} differs from the champion's {list(theirs.shape)}")
            if theirs.dtype not in _ACCEPTS[mine.dtype]:
                found.append(f"input dtype {mine.dtype} does not accept the champion's {theirs.dtype}")
        else:
            sent = {c.name: c for c in champion.inputs.columns}
            for col in self.inputs.columns:
                other = sent.get(col.name)
                if other is None:
                    found.append(f"input column {col.name!r} is not among the champion's inputs")
                elif other.dtype not in _ACCEPTS[col.dtype]:
                    found.append(f"input column {col.name!r} is {col.dtype}; the champion takes {other.dtype}")
                elif other.nullable and not col.nullable:
                    found.append(f"input column {col.name!r} refuses missing values the champion accepts")
        if self.outputs is not None and champion.outputs is not None:
            mine_out, theirs_out = self.outputs, champion.outputs
            if mine_out.tensor is not None and theirs_out.tensor is not None:
                if mine_out.tensor.shape[1:] != theirs_out.tensor.shape[1:]:
                    found.append(f"output shape {list(mine_out.tensor.shape)} differs from the champion's "
                                 f"{list(theirs_out.tensor.shape)}")
            elif mine_out.names != theirs_out.names:
                found.append(f"outputs {mine_out.names or 'tensor'} differ from the champion's "
                             f"{theirs_out.names or 'tensor'}")
        return found


def infer_signature(input_example: Any, output: Any = None) -> Signature:
    """A signature from an input example and (optionally) the model's output on it."""
    if input_example is None:
        raise InvalidArgument("an input example is needed to infer a signature", field="input_example")
    return Signature(schema_of(input_example), schema_of(output) if output is not None else None)
