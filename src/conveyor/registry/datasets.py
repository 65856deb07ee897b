"""Datasets as the registry meets them: for lineage links and for gate holdouts.

The data service (``conveyor.data``) is built separately; it is imported
lazily and its absence tolerated. A dataset may be given as a DatasetVersion
(anything with ``.id`` and ``.ref``, and ``.to_pandas()`` to read it), a
reference ``"name@N"``, a file path or ``file://`` URI (CSV or Parquet), or a
pandas DataFrame.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.core.uris import local_path

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*@(?:\d+|latest)$")


def is_ref(value: object) -> bool:
    return isinstance(value, str) and bool(_REF.match(value))


def _data_service() -> Any:
    try:
        import conveyor.data as data
    except ImportError:
        return None
    return data if callable(getattr(data, "get", None)) else None


def link(value: Any, role: str) -> tuple[str, dict[str, Any]]:
    """``(node id, attributes)`` of a dataset given to ``log_model`` under ``role``."""
    ident, ref = getattr(value, "id", None), getattr(value, "ref", None)
    if ident is not None and ref is not None:
        return str(ident), {"ref": str(ref), "role": role}
    if is_ref(value):
        service = _data_service()
        if service is not None:
            found = service.get(value)
            return str(found.id), {"ref": str(found.ref), "role": role}
        return str(value), {"ref": str(value), "role": role, "resolved": False}
    raise InvalidArgument(
        f"datasets[{role!r}] must be a dataset version (with .id and .ref) or a reference "
        f"'name@N', got {type(value).__name__}",
        field=f"datasets.{role}",
    )


def frame(value: Any, field: str = "dataset") -> Any:
    """The pandas DataFrame a dataset argument stands for."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    if callable(getattr(value, "to_pandas", None)):
        return value.to_pandas()
    if isinstance(value, str | Path):
        text = str(value)
        if is_ref(text) and not Path(text).exists():
            service = _data_service()
            if service is None:
                raise InvalidArgument(
                    f"{field} {text!r} is a dataset reference, but the data service (conveyor.data) "
                    "is not available here; give a DataFrame or a file path",
                    field=field,
                )
            return service.get(text).to_pandas()
        path = local_path(text)
        if not path.is_file():
            raise NotFound(f"{field} {text!r}: no such file", field=field)
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in (".csv", ".gz", ".txt"):
            return pd.read_csv(path)
        raise InvalidArgument(f"{field} {text!r}: read CSV or Parquet files only", field=field)
    raise InvalidArgument(
        f"{field} must be a DataFrame, a dataset version, a reference 'name@N' or a file path, "
        f"got {type(value).__name__}",
        field=field,
    )
