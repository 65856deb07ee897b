"""The dataset store interface: datasets, immutable versions and validation results.

The data service (``conveyor.data``) talks to this Protocol only; the SQL
implementation is ``sql/datasets.py`` and :class:`SqlMetadataStore` exposes it
as ``store.datasets``. Records are plain values; the bytes of a version live in
the artifact store under its manifest digest (``content_hash``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec


class DatasetSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A dataset and its newest version number."""

    id: str
    name: str
    created_at: int
    latest_version: int
    num_versions: int


class VersionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One immutable dataset version as stored."""

    id: str
    dataset_id: str
    name: str
    version: int
    content_hash: str  # the digest of the manifest blob that lists the files
    kind: str  # "table" or "files"
    num_files: int
    size: int
    num_rows: int | None = None
    schema: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    description: str = ""
    tags: dict[str, str] = {}
    creator: str = ""
    created_at: int = 0

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class NewVersion(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller gives to register a version (the store numbers it)."""

    name: str
    content_hash: str
    kind: str
    num_files: int
    size: int
    num_rows: int | None = None
    schema: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    description: str = ""
    tags: dict[str, str] = {}
    creator: str = ""


class CheckRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded validation of some data against a suite."""

    id: str
    dataset: str
    version: int | None
    target: str  # what was validated: a ref, a path or "<dataframe>"
    suite: str
    ok: bool
    num_failures: int
    report: dict[str, Any]
    run_id: str | None
    actor: str
    created_at: int


@runtime_checkable
class DatasetStore(Protocol):
    def create_version(self, new: NewVersion) -> VersionRecord:
        """Number and store a version; if the newest version has the same content, return it."""
        ...

    def get_version(self, name: str, version: int | None = None) -> VersionRecord:
        """Version ``version`` of ``name`` (the newest when ``None``); ``NotFound`` if missing."""
        ...

    def get_version_by_id(self, version_id: str) -> VersionRecord: ...

    def list_versions(self, name: str) -> list[VersionRecord]:
        """Every version of ``name``, oldest first (without profiles)."""
        ...

    def list_datasets(self) -> list[DatasetSummary]: ...

    def all_content_hashes(self) -> list[str]:
        """The manifest digest of every version of every dataset."""
        ...

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
    ) -> CheckRecord: ...

    def list_checks(self, dataset: str, limit: int = 100) -> list[CheckRecord]:
        """Recorded checks of ``dataset``, newest first."""
        ...
