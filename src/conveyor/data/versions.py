"""The :class:`DatasetVersion` users hold: a stored record plus ways to read its bytes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from conveyor.core.entities import ArtifactFile
from conveyor.core.errors import InvalidState, NotFound
from conveyor.stores.metadata.datasets import VersionRecord

if TYPE_CHECKING:
    from conveyor.data.service import DataService

LINEAGE_KIND = "dataset_version"


class DatasetVersion:
    """One immutable version of a dataset.

    Attributes mirror the stored record (``name``, ``version``, ``id``,
    ``content_hash``, ``kind``, ``num_rows``, ``schema``, ``profile``...). Reading
    the data checks every file against its hash first.

    Example::

        ds = cv.data.get("bikes-raw@1")
        ds.ref, ds.num_rows          # ("bikes-raw@1", 17379)
        df = ds.to_pandas()
    """

    def __init__(self, record: VersionRecord, service: DataService) -> None:
        self.record = record
        self._service = service
        self._files: list[ArtifactFile] | None = None

    def __repr__(self) -> str:
        return f"<DatasetVersion {self.ref} {self.kind} {self.content_hash[:19]}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetVersion) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- the record ------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        """``name@version``, e.g. ``"bikes-raw@2"``."""
        return self.record.ref

    @property
    def content_hash(self) -> str:
        """The digest of the manifest: equal hashes mean equal files."""
        return self.record.content_hash

    @property
    def kind(self) -> str:
        """``"table"`` (CSV or Parquet files, readable as one table) or ``"files"``."""
        return self.record.kind

    @property
    def num_rows(self) -> int | None:
        return self.record.num_rows

    @property
    def schema(self) -> dict[str, Any] | None:
        return self.record.schema

    @property
    def profile(self) -> dict[str, Any] | None:
        return self.record.profile

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def created_at(self) -> int:
        return self.record.created_at

    @property
    def creator(self) -> str:
        return self.record.creator

    @property
    def description(self) -> str:
        return self.record.description

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.record.tags)

    @property
    def lineage_node(self) -> tuple[str, str]:
        return (LINEAGE_KIND, self.id)

    def to_dict(self, *, with_profile: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self.record)
        data["ref"] = self.ref
        if not with_profile:
            data.pop("profile", None)
        return data

    # -- the bytes -------------------------------------------------------------

    @property
    def files(self) -> list[ArtifactFile]:
        """Every file: path inside the dataset, digest and size."""
        if self._files is None:
            try:
                self._files = self._service.content.get_manifest(self.content_hash)
            except NotFound:
                raise self._service.missing(self.ref) from None
        return list(self._files)

    @property
    def path(self) -> Path:
        """A verified local checkout: the file itself for a one-file version, else the folder.

        Files may be hard links into a local artifact store; they are read-only.
        """
        root = self._service.checkout_cached(self)
        files = self.files
        return root / files[0].path if len(files) == 1 else root

    def to_arrow(self) -> Any:
        """The table as a ``pyarrow.Table``."""
        from conveyor.data.tables import read_table, table_format

        if self.kind != "table":
            raise InvalidState(
                f"{self.ref} is a folder of files, not a table; read the files under .path"
            )
        root = self._service.checkout_cached(self)
        files = self.files
        fmt = table_format([f.path for f in files])
        assert fmt is not None
        return read_table([root / f.path for f in files], fmt)

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """The table as a Polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())
