"""How step outputs become bytes in the artifact store, chosen by type from a table.

The table is searched in order; the first serializer that accepts a value
stores it. Built in: pandas DataFrame → Parquet, NumPy array → ``.npy`` (no
pickle), dict/list/str/numbers/bool/None → JSON, LightGBM Booster → its text
model format. Anything else falls back to
pickle with a :class:`~conveyor.core.errors.ConveyorWarning`, because loading
a pickle runs code. Other services add their own formats up front, e.g. the
model registry its packaging for models::

    register_serializer(Serializer(
        name="lightgbm-text",
        accepts=lambda v: type(v).__name__ == "Booster",
        dump=lambda b: b.model_to_string().encode(),
        load=lambda data: lightgbm.Booster(model_str=data.decode()),
    ))
"""

from __future__ import annotations

import io
import json
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from conveyor.core.errors import ConveyorWarning, InvalidArgument


class Unsuitable(Exception):
    """Raised by ``dump`` when a value it accepted by type still cannot be stored that way."""


@dataclass(frozen=True)
class Serializer:
    """One row of the table: which values, and how to turn them into bytes and back."""

    name: str
    accepts: Callable[[Any], bool]
    dump: Callable[[Any], bytes]
    load: Callable[[bytes], Any]


class StoredValue(msgspec.Struct, frozen=True):
    """A step output in the content store: where it is and how to read it."""

    digest: str
    serializer: str
    size: int
    type: str = ""


# ------------------------------------------------------------------ built-ins


def _is(module: str, cls: str) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        mod = sys.modules.get(module)  # never import pandas/numpy just to say no
        return mod is not None and isinstance(value, getattr(mod, cls))

    return accepts


def _dump_frame(df: Any) -> bytes:
    buf = io.BytesIO()
    try:
        df.to_parquet(buf, engine="pyarrow", index=True)
    except (ValueError, TypeError) as exc:  # e.g. non-string column names, mixed objects
        raise Unsuitable(str(exc)) from None
    return buf.getvalue()


def _load_frame(data: bytes) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


def _dump_array(arr: Any) -> bytes:
    if arr.dtype.hasobject:
        raise Unsuitable("object arrays need pickle")
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _load_array(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


_JSON_TYPES = (dict, list, str, int, float, bool, type(None))


def _json_exact(value: Any) -> bool:
    """Only values that come back equal (no tuples, no non-string keys, no subclasses)."""
    kind = type(value)
    if kind in (str, int, bool, type(None)):
        return True
    if kind is float:
        return True
    if kind is list:
        return all(_json_exact(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _json_exact(v) for k, v in value.items())
    return False


def _dump_json(value: Any) -> bytes:
    if not _json_exact(value):
        raise Unsuitable("not plain JSON")
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _load_json(data: bytes) -> Any:
    return json.loads(data)


def _dump_pickle(value: Any) -> bytes:
    import pickle

    try:
        return pickle.dumps(value, protocol=5)
    except Exception as exc:
        raise Unsuitable(f"{type(exc).__name__}: {exc}") from None


def _dump_booster(booster: Any) -> bytes:
    return str(booster.model_to_string()).encode()


def _load_booster(data: bytes) -> Any:
    import lightgbm

    return lightgbm.Booster(model_str=data.decode())


def _load_pickle(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)  # only blobs whose hash checked out reach this


PICKLE = Serializer("pickle", lambda v: True, _dump_pickle, _load_pickle)
_table: list[Serializer] = [
    Serializer("parquet", _is("pandas", "DataFrame"), _dump_frame, _load_frame),
    Serializer("npy", _is("numpy", "ndarray"), _dump_array, _load_array),
    Serializer("json", lambda v: isinstance(v, _JSON_TYPES), _dump_json, _load_json),
    # LightGBM's own text format: loading it runs no code, unlike a pickle
    Serializer("lightgbm-text", _is("lightgbm", "Booster"), _dump_booster, _load_booster),
]
_lock = threading.Lock()


def register_serializer(serializer: Serializer, *, first: bool = True) -> None:
    """Add a format; ``first=True`` puts it ahead of the built-ins. Same name replaces."""
    with _lock:
        rest = [s for s in _table if s.name != serializer.name]
        _table[:] = [serializer, *rest] if first else [*rest, serializer]


def serializers() -> list[Serializer]:
    """The table, in the order it is searched (the pickle fallback is not listed)."""
    return list(_table)


def by_name(name: str) -> Serializer:
    if name == PICKLE.name:
        return PICKLE
    for s in _table:
        if s.name == name:
            return s
    raise InvalidArgument(
        f"no serializer {name!r} is registered in this process; import the module that "
        "registers it before loading this output",
        field="serializer",
    )


def dump(value: Any, where: str) -> tuple[str, bytes]:
    """``(serializer name, bytes)`` for ``value``; pickle only as a warned fallback.

    Raises:
        InvalidArgument: not even pickle can store the value (names ``where``).
    """
    for s in list(_table):
        if s.accepts(value):
            try:
                return s.name, s.dump(value)
            except Unsuitable:
                continue
    try:
        data = PICKLE.dump(value)
    except Unsuitable as exc:
        raise InvalidArgument(f"{where} cannot be stored: {exc}", field=where) from None
    warnings.warn(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which has no "
        "registered format; it is stored with pickle, which runs code when loaded. "
        "Register a serializer for it with conveyor.pipelines.register_serializer",
        ConveyorWarning,
        stacklevel=2,
    )
    return PICKLE.name, data


