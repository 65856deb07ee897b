"""Datasets over HTTP: ``DatasetStore`` answered by a server (``store.datasets``).

Registering a version is idempotent by nature (the same content as the newest
version names that version); recording a check carries an idempotency key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from conveyor.core import validation as v
from conveyor.core.ids import check_id
from conveyor.stores.metadata.datasets import CheckRecord, DatasetSummary, NewVersion, VersionRecord


class RestDatasetStore:
    """:class:`~conveyor.stores.metadata.datasets.DatasetStore` on a server."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session.request(method, path, **kwargs)

    @staticmethod
    def _path(name: str) -> str:
        # Checked here as the store checks it: a '/' must not reach the URL as a separator.
        return f"/datasets/{v.check_name(name, 'dataset')}"

    def create_version(self, new: NewVersion) -> VersionRecord:
        body = msgspec.structs.asdict(new)
        path = self._path(body.pop("name"))
        return msgspec.convert(self._call("POST", f"{path}/versions", json=body), VersionRecord)

    def get_version(self, name: str, version: int | None = None) -> VersionRecord:
        which = "latest" if version is None else str(int(version))
        return msgspec.convert(self._call("GET", f"{self._path(name)}/versions/{which}"), VersionRecord)

    def get_version_by_id(self, version_id: str) -> VersionRecord:
        check_id(version_id, "version_id")
        return msgspec.convert(self._call("GET", f"/dataset-versions/{version_id}"), VersionRecord)

    def list_versions(self, name: str) -> list[VersionRecord]:
        return msgspec.convert(self._call("GET", f"{self._path(name)}/versions"), list[VersionRecord])

    def list_datasets(self) -> list[DatasetSummary]:
        return msgspec.convert(self._call("GET", "/datasets"), list[DatasetSummary])

    def all_content_hashes(self) -> list[str]:
        return msgspec.convert(self._call("GET", "/datasets/content-hashes"), list[str])

    def record_check(
        self,
        *,
        dataset: str,
        version: int | None,
        target: str,
        suite: str,
        ok: bool,
        num_failures: int,
        report: Mapping[str, Any],
        run_id: str | None = None,
    ) -> CheckRecord:
        body = {"version": version, "target": target, "suite": suite, "ok": bool(ok),
                "num_failures": int(num_failures), "report": dict(report), "run_id": run_id,
                "idempotency_key": uuid.uuid4().hex}
        return msgspec.convert(self._call("POST", f"{self._path(dataset)}/checks", json=body), CheckRecord)

    def list_checks(self, dataset: str, limit: int = 100) -> list[CheckRecord]:
        answer = self._call("GET", f"{self._path(dataset)}/checks", params={"limit": limit})
        return msgspec.convert(answer, list[CheckRecord])
