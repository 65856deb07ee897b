"""The module-level data API (``cv.data.*``) over the process's tracking client.

It shares the metadata store, the artifact store and the settings of
``conveyor.tracking.fluent.client()``, so ``cv.configure(...)`` points both
tracking and data at the same place, and ``log_input`` can link a version to
the active run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument
from conveyor.data.service import DataService
from conveyor.data.versions import LINEAGE_KIND, DatasetVersion
from conveyor.stores.metadata.datasets import CheckRecord, DatasetSummary

if TYPE_CHECKING:
    from conveyor.data.compare import DatasetDiff
    from conveyor.data.transfer import TransferStats

_lock = threading.Lock()
_services: dict[int, DataService] = {}


def service() -> DataService:
    """The data service bound to the current tracking client (built on first use)."""
    from conveyor.tracking import fluent

    client = fluent.client()
    with _lock:
        found = _services.get(id(client))
        if found is None or found.store is not client.store:
            for old in _services.values():
                old.close()
            _services.clear()
            found = DataService(client.store, client.content, client.settings.home)
            _services[id(client)] = found
    return found


def add(
    path: str | os.PathLike[str],
    *,
    name: str,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    link: bool = False,
) -> DatasetVersion:
    """Version a file or folder as dataset ``name``; returns the new (or unchanged) version.

    ``link=True`` stores new files as read-only hard links instead of copies where the
    artifact store is a local folder on the same file system (see :meth:`DataService.add`).
    """
    return _record_output(
        service().add(path, name=name, description=description, tags=tags, link=link)
    )


def log(
    data: Any, *, name: str, description: str = "", tags: Mapping[str, str] | None = None
) -> DatasetVersion:
    """Version a DataFrame (pandas, Polars, Arrow) as Parquet under ``name``."""
    return _record_output(service().log(data, name=name, description=description, tags=tags))


def _record_output(version: DatasetVersion) -> DatasetVersion:
    """Inside a run, the run produced this version: record the edge run -> version."""
    from conveyor.tracking import fluent

    run = fluent.active_run()
    if run is not None:
        fluent.client().store.add_lineage(("run", run.id), version.lineage_node, "output")
    return version


def get(ref: str) -> DatasetVersion:
    """The version ``ref`` names: ``"bikes-raw"``, ``"bikes-raw@2"`` or ``"bikes-raw@latest"``."""
    return service().get(ref)


def list_datasets() -> list[DatasetSummary]:
    return service().store.datasets.list_datasets()


def list_versions(name: str) -> list[DatasetVersion]:
    return service().versions(name)


def checks(name: str, limit: int = 100) -> list[CheckRecord]:
    """Recorded validation results for dataset ``name``, newest first."""
    return service().store.datasets.list_checks(name, limit)


def log_input(ds: DatasetVersion | str, role: str = "train", *, run_id: str | None = None) -> None:
    """Record that the active run (or ``run_id``) read ``ds``: lineage ``ds -> run``.

    The edge's relation is ``input:<role>``, e.g. ``input:train``.
    """
    from conveyor.tracking import fluent

    version = get(ds) if isinstance(ds, str) else ds
    if not isinstance(version, DatasetVersion):
        raise InvalidArgument(
            f"ds must be a DatasetVersion or a reference string, got {type(ds).__name__}", field="ds"
        )
    v.check_key(role, "role")
    if len(role) > 58:
        raise InvalidArgument("role must have at most 58 characters", field="role")
    target = fluent._run_id(run_id)
    fluent.client().store.add_lineage(
        (LINEAGE_KIND, version.id), ("run", target), f"input:{role}",
        {"ref": version.ref, "content_hash": version.content_hash},
    )


def diff(a: str, b: str) -> DatasetDiff:
    """Files added/removed/changed and, for tables, schema, row and profile changes."""
    return service().diff(a, b)


def push(to: str, refs: Sequence[str] = ()) -> TransferStats:
    """Copy dataset blobs to another artifact store (only the missing ones)."""
    return service().push(to, refs)


def pull(ref: str, source: str) -> TransferStats:
    """Copy the blobs of ``ref`` from the artifact store ``source`` into the configured one."""
    return service().pull(ref, source)


def checkout(ref: str, to: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write the files of ``ref`` into the folder ``to`` (non-empty only with ``force``)."""
    return service().checkout(ref, to, force=force)
