"""The narrow bytes-in / bytes-out interface every artifact backend implements.

Backends know nothing of hashes, manifests or verification: that is the job of
:class:`conveyor.stores.artifacts.cas.ContentStore`, which sits on top. Keys are
relative POSIX strings such as ``"blobs/ab/cdef..."``.

Rules every backend keeps (checked by
:class:`conveyor.testing.contracts.artifacts.ArtifactBackendContract`):

- writes are atomic: a reader sees the old object, the whole new one, or nothing;
- reads of big objects stream to disk and never hold the whole file in memory;
- a missing key raises :class:`~conveyor.core.errors.NotFound`, a connection problem
  :class:`~conveyor.core.errors.BackendUnavailable`, a key escaping the root
  :class:`~conveyor.core.errors.UnsafePath`.

Example, a complete (if forgetful) in-memory backend::

    class MemoryBackend:
        uri = "memory://"

        def __init__(self) -> None:
            self._data: dict[str, bytes] = {}

        def put_file(self, key: str, src: Path) -> None:
            self._data[key] = src.read_bytes()

        def put_bytes(self, key: str, data: bytes) -> None:
            self._data[key] = bytes(data)

        def get_file(self, key: str, dest: Path) -> None:
            dest.write_bytes(self.get_bytes(key))

        def get_bytes(self, key: str) -> bytes:
            try:
                return self._data[key]
            except KeyError:
                raise NotFound(f"no object {key!r} in {self.uri}") from None

        def exists(self, key: str) -> bool:
            return key in self._data

        def size(self, key: str) -> int | None:
            data = self._data.get(key)
            return None if data is None else len(data)

        def delete(self, key: str) -> None:
            self._data.pop(key, None)

        def list(self, prefix: str = "") -> Iterator[str]:
            return iter(sorted(k for k in self._data if k.startswith(prefix)))

        def local_path(self, key: str) -> Path | None:
            return None
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class ByteBackend(Protocol):
    """Stores opaque bytes under relative POSIX keys."""

    #: Where the objects live, e.g. ``file:///srv/artifacts`` or ``s3://bucket/prefix``.
    uri: str

    def put_file(self, key: str, src: Path) -> None:
        """Store the contents of ``src`` under ``key`` atomically (replaces any old object)."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (replaces any old object)."""
        ...

    def get_file(self, key: str, dest: Path) -> None:
        """Stream the object into ``dest`` (created or truncated); ``NotFound`` if missing."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory; ``NotFound`` if missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def size(self, key: str) -> int | None:
        """Size of the object in bytes, ``None`` if missing."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys that start with ``prefix``, in sorted order."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The real file behind ``key`` if the backend is a local folder, else ``None``."""
        ...


@runtime_checkable
class BatchWriter(Protocol):
    """An optional extra a backend may offer: store many files at a lower cost per file.

    :class:`~conveyor.stores.artifacts.cas.ContentStore` uses it when present and
    falls back to :meth:`ByteBackend.put_file` on a thread pool otherwise (S3, whose
    PUTs are durable one by one, needs nothing more).
    """

    def put_files(self, items: Sequence[tuple[str, Path]]) -> None:
        """Store each ``(key, src)`` as :meth:`ByteBackend.put_file` would; all are
        durable when this returns."""
        ...


@runtime_checkable
class LinkWriter(Protocol):
    """An optional extra of a local backend: store files as hard links, not copies.

    Used by ``conveyor data add --link``: the stored blob and the user's file become
    one file, made read-only so that an edit in place cannot change stored bytes.
    Where no link can be made (another file system) the file is copied instead.
    """

    def put_links(self, items: Sequence[tuple[str, Path]]) -> None:
        """Store each ``(key, src)`` as a read-only hard link to ``src`` (or a copy);
        all are durable when this returns."""
        ...
