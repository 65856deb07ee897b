"""The content-addressed layer: BLAKE3 hashing, manifests and verify-on-read.

Every blob is stored under the BLAKE3 hash of its bytes
(``blobs/<2 hex>/<62 hex>``), so identical files are stored once no matter how
many runs, datasets or models log them. A folder is a list of
:class:`~conveyor.core.entities.ArtifactFile` records, which can itself be stored
as a small canonical JSON *manifest* blob. Every read is checked against its
hash: a tampered or truncated blob raises
:class:`~conveyor.core.errors.ArtifactCorrupted` and never reaches the caller.

Backends (:mod:`.base`) know nothing of this; they move bytes.

Example::

    store = open_content_store("s3://team-bucket/artifacts")
    files = store.put_tree(Path("model/"), prefix="model")
    manifest = store.put_manifest(files)
    store.get_tree(store.get_manifest(manifest), Path("/tmp/restored"))
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import blake3
import msgspec

from conveyor.core.entities import ArtifactFile
from conveyor.core.errors import (
    ArtifactCorrupted,
    InvalidArgument,
    NotFound,
    UnsafePath,
)
from conveyor.core.plugins import load_backend
from conveyor.core.settings import get_settings
from conveyor.core.uris import join_under, safe_relpath, scheme_of
from conveyor.stores.artifacts.base import BatchWriter, ByteBackend, LinkWriter

ALGORITHM = "blake3"
MMAP_THRESHOLD = 1 << 20  # files this big are hashed with mmap and several threads
MANIFEST_FORMAT = "conveyor.manifest/1"
_DIGEST_RE = re.compile(r"blake3:[0-9a-f]{64}")
_TMP_MARKER = ".conveyor-tmp-"
_WORKERS = min(32, (os.cpu_count() or 1) + 4)


class Blob(NamedTuple):
    """A stored blob: its digest (``blake3:<hex>``) and size in bytes."""

    digest: str
    size: int


class _Manifest(msgspec.Struct, frozen=True):
    format: str
    files: list[ArtifactFile]


def check_digest(digest: object, field: str = "digest") -> str:
    """Return ``digest`` if it is ``blake3:`` + 64 lowercase hex, else raise InvalidArgument."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidArgument(
            f"{field} {digest!r} is not a content digest "
            "(expected 'blake3:' followed by 64 lowercase hex characters)",
            field=field,
        )
    return digest


def blob_key(digest: str) -> str:
    """The backend key of a blob: ``blobs/<first 2 hex>/<other 62 hex>``."""
    hexdigest = check_digest(digest)[len(ALGORITHM) + 1 :]
    return f"blobs/{hexdigest[:2]}/{hexdigest[2:]}"


def hash_bytes(data: bytes) -> str:
    """The digest text of ``data``."""
    return f"{ALGORITHM}:{blake3.blake3(data).hexdigest()}"


def hash_file(path: Path | str) -> tuple[str, int]:
    """``(digest, size)`` of a file; big files are memory-mapped and hashed in parallel."""
    path = Path(path)
    size = path.stat().st_size
    if size >= MMAP_THRESHOLD:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
    else:
        data = path.read_bytes()
        size = len(data)
        hasher = blake3.blake3(data)
    return f"{ALGORITHM}:{hasher.hexdigest()}", size


def _corrupted(digest: str, actual: str, where: str) -> ArtifactCorrupted:
    return ArtifactCorrupted(
        f"blob {digest} is corrupted: expected {digest}, got {actual}; "
        f"it was modified or truncated in the store {where}"
    )


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _walk(folder: Path) -> list[tuple[str, Path]]:
    """Every file under ``folder`` as ``(relative POSIX path, path)``, sorted.

    Symlinks inside the folder are followed; one that points outside is refused.
    """
    root = folder.resolve()
    if not root.is_dir():
        raise NotFound(f"{str(folder)!r} is not a folder")
    found: list[tuple[str, Path]] = []
    seen = {root}
    stack: list[tuple[Path, str]] = [(folder, "")]
    while stack:
        current, rel = stack.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                relpath = f"{rel}{entry.name}"
                path = Path(entry.path)
                real = path.resolve()
                if entry.is_symlink() and not _inside(real, root):
                    raise UnsafePath(
                        f"{relpath!r} in {str(folder)!r} is a symlink to {str(real)!r}, "
                        "outside the folder; copy the file in instead",
                        field="path",
                    )
                if entry.is_dir():
                    if real not in seen:  # a link back up would loop forever
                        seen.add(real)
                        stack.append((path, relpath + "/"))
                elif entry.is_file():
                    found.append((relpath, path))
                elif entry.is_symlink():
                    raise InvalidArgument(
                        f"{relpath!r} in {str(folder)!r} is a broken symlink", field="path"
                    )
    found.sort()
    return found


class ContentStore:
    """Content-addressed blobs over any :class:`~.base.ByteBackend`.

    Args:
        backend: where the bytes go (a local folder, an S3 bucket...).
    """

    def __init__(self, backend: ByteBackend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"ContentStore({self.backend!r})"

    @property
    def uri(self) -> str:
        """The backend's URI."""
        return self.backend.uri

    # -- writing -----------------------------------------------------------------

    def _stored(self, key: str, size: int) -> bool:
        # A blob of the wrong size is truncated: upload it again to repair it.
        return self.backend.size(key) == size

    def put_file(self, path: Path | str) -> Blob:
        """Store a file's bytes; an identical blob already stored is not uploaded again."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"cannot store {str(path)!r}: no such file")
        digest, size = hash_file(path)
        key = blob_key(digest)
        if not self._stored(key, size):
            self.backend.put_file(key, path)
        return Blob(digest, size)

    def put_blobs(
        self, items: Sequence[tuple[Blob, Path | str]], *, link: bool = False
    ) -> list[tuple[Blob, Path]]:
        """Store files already hashed, skipping blobs the store holds; returns those uploaded.

        Every blob is durable when this returns. A backend that can write a batch
        (:class:`~.base.BatchWriter`, e.g. a local folder) syncs the batch together;
        others get one ``put_file`` per blob on a thread pool. With ``link=True`` a
        backend that can (:class:`~.base.LinkWriter`) stores hard links to the files,
        made read-only, instead of copies; others ignore it. The caller vouches
        that each path hashes to its blob.
        """
        unique = list({blob.digest: (blob, Path(path)) for blob, path in items}.values())
        if not unique:
            return []
        workers = min(_WORKERS, len(unique))
        with ThreadPoolExecutor(workers, thread_name_prefix="conveyor-put") as pool:
            present = list(pool.map(lambda item: self._stored(blob_key(item[0].digest),
                                                              item[0].size), unique))
            todo = [item for item, stored in zip(unique, present, strict=True) if not stored]
            keyed = [(blob_key(blob.digest), path) for blob, path in todo]
            if link and isinstance(self.backend, LinkWriter):
                self.backend.put_links(keyed)
            elif isinstance(self.backend, BatchWriter):
                self.backend.put_files(keyed)
            else:
                list(pool.map(lambda pair: self.backend.put_file(*pair), keyed))
        return todo

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; returns its digest."""
        data = bytes(data)
        digest = hash_bytes(data)
        key = blob_key(digest)
        if not self._stored(key, len(data)):
            self.backend.put_bytes(key, data)
        return digest

    def put_tree(self, folder: Path | str, prefix: str = "") -> list[ArtifactFile]:
        """Store every file under ``folder``; paths are relative, joined under ``prefix``.

        Files are hashed on several threads (BLAKE3 releases the GIL), then the
        missing blobs are stored as one batch (:meth:`put_blobs`).

        Raises:
            UnsafePath: a symlink points outside ``folder``, or ``prefix`` escapes.
        """
        folder = Path(folder)
        base = safe_relpath(prefix, field="prefix") + "/" if prefix else ""
        entries = _walk(folder)
        workers = max(1, min(_WORKERS, len(entries)))
        with ThreadPoolExecutor(workers, thread_name_prefix="conveyor-hash") as pool:
            blobs = [Blob(*hashed) for hashed in pool.map(lambda entry: hash_file(entry[1]), entries)]
        self.put_blobs([(blob, path) for blob, (_, path) in zip(blobs, entries, strict=True)])
        return [
            ArtifactFile(path=base + rel, digest=blob.digest, size=blob.size)
            for (rel, _), blob in zip(entries, blobs, strict=True)
        ]

    def put_manifest(self, files: Sequence[ArtifactFile]) -> str:
        """Store a canonical JSON list of files (sorted by path); returns its digest."""
        checked: dict[str, ArtifactFile] = {}
        for i, item in enumerate(files):
            path = safe_relpath(item.path, field=f"files[{i}].path")
            check_digest(item.digest, field=f"files[{i}].digest")
            if isinstance(item.size, bool) or not isinstance(item.size, int) or item.size < 0:
                raise InvalidArgument(
                    f"files[{i}].size must be a non-negative integer", field=f"files[{i}].size"
                )
            if path in checked:
                raise InvalidArgument(
                    f"files[{i}].path {path!r} appears twice in the manifest",
                    field=f"files[{i}].path",
                )
            checked[path] = ArtifactFile(path=path, digest=item.digest, size=item.size)
        manifest = _Manifest(MANIFEST_FORMAT, [checked[p] for p in sorted(checked)])
        return self.put_bytes(msgspec.json.encode(manifest))

    # -- reading -----------------------------------------------------------------

    def get_bytes(self, digest: str) -> bytes:
        """The blob's bytes, verified against ``digest``."""
        data = self.backend.get_bytes(blob_key(digest))
        actual = hash_bytes(data)
        if actual != digest:
            raise _corrupted(digest, actual, self.uri)
        return data

    def get_manifest(self, digest: str) -> list[ArtifactFile]:
        """The files listed in a manifest stored by :meth:`put_manifest`."""
        data = self.get_bytes(digest)
        try:
            manifest = msgspec.json.decode(data, type=_Manifest)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise InvalidArgument(f"blob {digest} is not a manifest", field="digest") from None
        if manifest.format != MANIFEST_FORMAT:
            raise InvalidArgument(
                f"blob {digest} is a {manifest.format!r} manifest; this Conveyor reads "
                f"{MANIFEST_FORMAT!r}; upgrade Conveyor",
                field="digest",
            )
        return list(manifest.files)

    def get_file(self, digest: str, dest: Path | str, *, link: bool = False) -> Path:
        """Download a blob to ``dest`` after checking its hash; ``dest`` is never half-written.

        The bytes land in a temp file next to ``dest`` and replace it only once they
        hash to ``digest``. With ``link=True`` and a local backend the stored file is
        hard-linked instead of copied (after verification); do not edit such a file in
        place, it *is* the stored blob.

        Raises:
            ArtifactCorrupted: the stored bytes do not match ``digest``; ``dest`` is untouched.
            NotFound: no such blob.
        """
        key = blob_key(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f"{_TMP_MARKER}{uuid.uuid4().hex}-{dest.name}"[:255]
        try:
            if not (link and self._link(key, tmp)):
                self.backend.get_file(key, tmp)
            actual, _ = hash_file(tmp)
            if actual != digest:
                raise _corrupted(digest, actual, self.uri)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return dest

    def _link(self, key: str, tmp: Path) -> bool:
        source = self.backend.local_path(key)
        if source is None or not source.is_file():
            return False
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or links not supported: copy instead
            return False
        return True

    def get_tree(self, files: Sequence[ArtifactFile], dest: Path | str) -> list[Path]:
        """Write each file under ``dest`` (safe paths only), downloading in parallel.

        Every path and digest is checked before anything is written.
        """
        dest = Path(dest)
        targets = []
        for i, item in enumerate(files):
            check_digest(item.digest, field=f"files[{i}].digest")
            targets.append((item.digest, join_under(dest, item.path)))
        dest.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(_WORKERS, thread_name_prefix="conveyor-get") as pool:
            return list(pool.map(lambda t: self.get_file(t[0], t[1]), targets))

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored (its bytes are not checked)."""
        return self.backend.exists(blob_key(digest))

    def verify(self, digest: str) -> bool:
        """``True`` if the stored blob hashes to ``digest``, ``False`` if it does not.

        Raises:
            NotFound: no such blob.
        """
        key = blob_key(digest)
        local = self.backend.local_path(key)
        if local is not None:
            if not local.is_file():
                raise NotFound(f"no object {key!r} in {self.uri}")
            return hash_file(local)[0] == digest
        with tempfile.TemporaryDirectory(prefix="conveyor-verify-") as tmpdir:
            tmp = Path(tmpdir) / "blob"
            self.backend.get_file(key, tmp)
            return hash_file(tmp)[0] == digest


def open_content_store(uri: str | None = None) -> ContentStore:
    """A :class:`ContentStore` over the backend ``uri``'s scheme names.

    Args:
        uri: a folder, ``file:///path`` or ``s3://bucket/prefix``; defaults to
            ``CONVEYOR_ARTIFACTS`` (a folder under the Conveyor home).
    """
    uri = uri or get_settings().artifacts_uri
    backend_cls = load_backend("artifacts", scheme_of(uri))
    return ContentStore(backend_cls(uri))
