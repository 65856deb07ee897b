"""Datasets as the registry meets them: for lineage links and for gate holdouts.

The data service (``conveyor.data``) is built separately; it is imported
lazily and its absence tolerated. A dataset may be given as a DatasetVersion
(anything with ``.id`` and ``.ref``, and ``.to_pandas()`` to read it), a
reference ``"name@N"``, a file path or ``file://`` URI (CSV or Parquet), or a
pandas DataFrame.

:func:`training_data` reads, for the gate, the validation results the data
service recorded for the dataset versions a model version was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.core.uris import local_path

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*@(?:\d+|latest)$")
#: How many recorded checks of one dataset (all its versions) the gate reads, newest first.
CHECKS_READ = 1000


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


@dataclass(frozen=True)
class TrainingData:
    """A dataset version a model version was trained on, and its newest validation per suite.

    ``checks`` holds the newest recorded check of each suite that validated exactly
    this version (newest first); ``None`` when the metadata store keeps no validation
    results at all.
    """

    ref: str
    role: str
    checks: Sequence[Any] | None


def is_training_role(role: str) -> bool:
    """``train``, ``training``, ``train_2019`` ...: the roles whose data must pass validation."""
    return role.lower().startswith("train")


def training_data(store: Any, model_version_id: str) -> list[TrainingData]:
    """The training dataset versions linked to a model version (lineage), with their checks.

    A check counts for a version only if it validated that version itself (its
    target is the version's ref): a suite derived from ``bikes@1`` records a new
    batch's result under ``bikes@1`` too, and that verdict is about the batch.
    """
    found: dict[str, TrainingData] = {}
    checks_store = getattr(store, "datasets", None)
    for edge in store.list_lineage(("model_version", model_version_id), direction="in"):
        kind, ident = edge["src"]
        role = str(edge["relation"])
        ref = str((edge["attributes"] or {}).get("ref") or ident)
        name, _, number = ref.rpartition("@")
        if kind != "dataset_version" or not is_training_role(role) or ref in found or not number.isdigit():
            continue
        checks: list[Any] | None = None
        if checks_store is not None:
            recorded: list[Any] = []
            for limit in (100, CHECKS_READ):  # most datasets have few checks: one small read
                recorded = checks_store.list_checks(name, limit)
                if len(recorded) < limit:
                    break
            newest: dict[str, Any] = {}
            for check in recorded:
                if check.version == int(number) and check.target == ref:
                    newest.setdefault(check.suite, check)
            checks = list(newest.values())
        found[ref] = TrainingData(ref=ref, role=role, checks=checks)
    return list(found.values())
