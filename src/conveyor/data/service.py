"""The data service: add and log versions, get them back, check them out.

Adding is ordered so that no half-registered version can ever appear:

1. hash every file (stat cache + thread pool) and, for tables, read and profile
   them: bad input is refused here, before anything is stored;
2. upload the blobs the store does not hold yet as one batch, durable (fsynced)
   before step 4 can commit anything that points to them;
3. store the manifest blob (its digest is the version's content hash);
4. register the version row, its number and its audit event in one transaction.

A crash anywhere before 4 leaves only blobs, which are harmless and are reused
when the add is run again; re-adding content equal to the newest version returns
that version instead of a copy.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_module
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core import validation as v
from conveyor.core.entities import ArtifactFile
from conveyor.core.errors import InvalidArgument, InvalidState, NotFound
from conveyor.data.files import WORKERS, LocalFile, hash_files
from conveyor.data.refs import check_dataset_name, parse_ref
from conveyor.data.statcache import StatCache
from conveyor.data.versions import DatasetVersion
from conveyor.stores.artifacts.cas import Blob, ContentStore, blob_key
from conveyor.stores.metadata.base import MetadataStore
from conveyor.stores.metadata.datasets import NewVersion, VersionRecord

if TYPE_CHECKING:
    from conveyor.data.compare import DatasetDiff
    from conveyor.data.transfer import TransferStats

TABLE_FILE = "data.parquet"


def _check_inputs(name: str, description: str, tags: Mapping[str, str] | None) -> None:
    """Refuse bad metadata before any file is read or stored."""
    check_dataset_name(name)
    if not isinstance(description, str):
        raise InvalidArgument("description must be a string", field="description")
    v.check_tags(tags or {})


class AddStats:
    """What an add did: files seen, files (re)hashed, blobs uploaded."""

    def __init__(self, files: int = 0, hashed: int = 0, uploaded: int = 0) -> None:
        self.files, self.hashed, self.uploaded = files, hashed, uploaded

    def __repr__(self) -> str:
        return f"AddStats(files={self.files}, hashed={self.hashed}, uploaded={self.uploaded})"


class DataService:
    """Dataset versions over a metadata store and a content store.

    Args:
        store: the metadata store (its ``datasets`` attribute is used).
        content: where the bytes go.
        home: the Conveyor home: the stat cache and checkouts live under it.
    """

    def __init__(self, store: MetadataStore, content: ContentStore, home: Path) -> None:
        self.store = store
        self.content = content
        self.home = Path(home)
        self._cache: StatCache | None = None
        self.last_add = AddStats()

    @property
    def stat_cache(self) -> StatCache:
        if self._cache is None:
            self._cache = StatCache(self.home / "cache" / "stat-cache.db")
        return self._cache

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- reading ---------------------------------------------------------------

    def get(self, ref: str) -> DatasetVersion:
        """The version ``ref`` names (``name``, ``name@3``, ``name@latest``)."""
        parsed = parse_ref(ref)
        return DatasetVersion(self.store.datasets.get_version(parsed.name, parsed.version), self)

    def get_by_id(self, version_id: str) -> DatasetVersion:
        return DatasetVersion(self.store.datasets.get_version_by_id(version_id), self)

    def versions(self, name: str) -> list[DatasetVersion]:
        return [DatasetVersion(r, self) for r in self.store.datasets.list_versions(name)]

    # -- writing ---------------------------------------------------------------

    def add(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        link: bool = False,
    ) -> DatasetVersion:
        """Version a file or a folder; CSV/Parquet files are read, profiled and typed.

        With ``link=True`` and a local artifact store on the same file system, new
        files are stored as hard links instead of copies and made read-only (the
        store shares them: replace such a file, never edit it in place). Elsewhere
        files are copied as usual.

        Raises:
            InvalidArgument: bad name, a malformed table, an empty folder.
            UnsafePath: a symlink in the folder points outside it.
            NotFound: ``path`` does not exist.
        """
        _check_inputs(name, description, tags)
        source = Path(path)
        files, hashed = hash_files(source, self.stat_cache)
        return self._register(files, hashed, name, description, tags, table=None, link=link)

    def log(
        self,
        data: Any,
        *,
        name: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> DatasetVersion:
        """Version a pandas/Polars DataFrame or Arrow table, stored as Parquet."""
        from conveyor.data.tables import to_arrow, write_parquet

        _check_inputs(name, description, tags)
        table = to_arrow(data)
        with tempfile.TemporaryDirectory(prefix="conveyor-log-") as tmp:
            target = Path(tmp) / TABLE_FILE
            write_parquet(table, target)
            files, hashed = hash_files(target, None)
            return self._register(files, hashed, name, description, tags, table=table)

    def _register(
        self,
        files: Sequence[LocalFile],
        hashed: int,
        name: str,
        description: str,
        tags: Mapping[str, str] | None,
        table: Any,
        link: bool = False,
    ) -> DatasetVersion:
        from conveyor.data.tables import read_table, table_format

        listed = [ArtifactFile(path=f.relpath, digest=f.digest, size=f.stat.size) for f in files]
        latest, latest_files = self._latest(name)
        if latest is not None and latest_files == listed:
            # Nothing changed since the newest version: no read, no upload, no new number.
            self.last_add = AddStats(len(files), hashed, 0)
            return DatasetVersion(latest, self)
        fmt = table_format([f.relpath for f in files])
        profile = schema = None
        if fmt is not None:
            from conveyor.data.profile import profile_frame, schema_from_profile

            if table is None:
                table = read_table([Path(f.path) for f in files], fmt)
            profile = profile_frame(table)
            schema = schema_from_profile(profile)
        known = {f.digest for f in latest_files}
        uploaded = self._upload([f for f in files if f.digest not in known], link)
        manifest = self.content.put_manifest(listed)
        record = self.store.datasets.create_version(
            NewVersion(
                name=name, content_hash=manifest, kind="table" if fmt else "files",
                num_files=len(files), size=sum(f.stat.size for f in files),
                num_rows=None if profile is None else profile["num_rows"],
                schema=schema, profile=profile, description=description, tags=dict(tags or {}),
            )
        )
        self.last_add = AddStats(len(files), hashed, uploaded)
        return DatasetVersion(record, self)

    def _latest(self, name: str) -> tuple[VersionRecord | None, list[ArtifactFile]]:
        """The newest version of ``name`` and its files (their blobs are known to be stored)."""
        try:
            latest = self.store.datasets.get_version(name)
        except NotFound:
            return None, []
        try:
            return latest, self.content.get_manifest(latest.content_hash)
        except NotFound:  # its manifest is not in this store (another artifact store)
            return None, []

    def _upload(self, files: Sequence[LocalFile], link: bool) -> int:
        """Store the blobs the backend lacks as one durable batch; returns how many were uploaded."""
        by_path = {f.path: f for f in files}
        uploaded = self.content.put_blobs(
            [(Blob(f.digest, f.stat.size), f.path) for f in files], link=link
        )
        for blob, path in uploaded:
            item = by_path[str(path)]
            after = path.stat()
            if (after.st_size, after.st_mtime_ns) != (item.stat.size, item.stat.mtime_ns):
                # The bytes uploaded may not be the bytes hashed: drop them unless they still
                # match (another writer may have stored the right bytes meanwhile); ask for a re-run.
                if not self.content.verify(blob.digest):
                    self.content.backend.delete(blob_key(blob.digest))
                raise InvalidState(
                    f"{item.relpath!r} changed while it was being added; run the add again"
                )
        return len(uploaded)

    def missing(self, ref: str) -> NotFound:
        """The error for a version whose bytes are not in this artifact store."""
        return NotFound(
            f"the files of {ref} are not in the artifact store {self.content.uri}; "
            f"fetch them with: conveyor data pull {ref} --from <store that has them>",
            field="ref",
        )

    # -- checkouts -------------------------------------------------------------

    def checkout_cached(self, version: DatasetVersion) -> Path:
        """A complete, verified checkout under the home, shared by every version with this content."""
        hexdigest = version.content_hash.split(":", 1)[1]
        root = self.home / "cache" / "checkouts" / hexdigest[:2] / hexdigest
        if root.is_dir():
            return root
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = root.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            try:
                self._fetch(version.files, staging)
            except NotFound:
                raise self.missing(version.ref) from None
            try:
                staging.rename(root)
            except OSError:
                if not root.is_dir():  # not a concurrent checkout that finished first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return root

    def checkout(self, ref: str, dest: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the files of ``ref`` under ``dest``; a non-empty ``dest`` needs ``force``."""
        version = self.get(ref)
        target = Path(dest)
        if target.exists() and not target.is_dir():
            raise InvalidArgument(f"{str(target)!r} exists and is not a folder", field="to")
        if target.is_dir() and any(target.iterdir()) and not force:
            raise InvalidArgument(
                f"{str(target)!r} is not empty; choose an empty folder or pass --force "
                "to overwrite the files of the dataset in it",
                field="to",
            )
        try:
            self._fetch(version.files, target)
        except NotFound:
            raise self.missing(version.ref) from None
        return target

    def _fetch(self, files: Sequence[ArtifactFile], dest: Path) -> None:
        from conveyor.core.uris import join_under

        dest.mkdir(parents=True, exist_ok=True)
        targets = [(f.digest, join_under(dest, f.path)) for f in files]

        def get(item: tuple[str, Path]) -> None:
            digest, target = item
            if target.is_dir():
                raise InvalidArgument(f"{str(target)!r} is a folder; cannot write a file there", field="to")
            self.content.get_file(digest, target, link=True)
            st = target.stat()
            if st.st_nlink > 1:  # a hard link to the stored blob: keep it from being edited
                os.chmod(target, stat_module.S_IMODE(st.st_mode) & ~0o222)

        with ThreadPoolExecutor(min(WORKERS, max(1, len(targets))), thread_name_prefix="conveyor-get") as pool:
            list(pool.map(get, targets))

    # -- between stores ----------------------------------------------------------

    def push(self, to_uri: str, refs: Sequence[str] = ()) -> TransferStats:
        """Copy the blobs of ``refs`` (every version of every dataset when empty) to ``to_uri``."""
        from conveyor.data.transfer import blobs_of, copy_blobs
        from conveyor.stores.artifacts.cas import open_content_store

        dest = open_content_store(to_uri)
        if refs:
            hashes = [self.get(ref).content_hash for ref in refs]
        else:
            hashes = [h for h in self.store.datasets.all_content_hashes() if self.content.exists(h)]
        return copy_blobs(self.content, dest, blobs_of(self.content, hashes))

    def pull(self, ref: str, from_uri: str) -> TransferStats:
        """Copy the blobs of ``ref`` from the store at ``from_uri`` into this one."""
        from conveyor.data.transfer import blobs_of, copy_blobs
        from conveyor.stores.artifacts.cas import open_content_store

        source = open_content_store(from_uri)
        version = self.get(ref)
        return copy_blobs(source, self.content, blobs_of(source, [version.content_hash]))

    def diff(self, a: str, b: str) -> DatasetDiff:
        """What changed from version ``a`` to version ``b``."""
        from conveyor.data.compare import diff

        return diff(self.get(a), self.get(b))
