"""A Conveyor server as an artifact backend: blobs stream through ``/api/v1/blobs/{key}``.

Chosen when ``CONVEYOR_ARTIFACTS`` (or, by default, ``CONVEYOR_URI``) is
``http(s)://``. Uploads and downloads stream in 1 MiB chunks, so multi-GB
files never sit in memory; the content layer above verifies every download.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument, NotFound, PermissionDenied
from conveyor.stores.metadata.rest import HttpSession

_CHUNK = 1 << 20


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            yield block


class HttpBackend:
    """:class:`~conveyor.stores.artifacts.base.ByteBackend` over a Conveyor server."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self._session = HttpSession(self.uri)

    def __repr__(self) -> str:
        return f"HttpBackend({self.uri!r})"

    def _path(self, key: str) -> str:
        return f"/blobs/{key}"

    def put_file(self, key: str, src: Path) -> None:
        src = Path(src)
        if not src.is_file():
            raise NotFound(f"cannot store {str(src)!r}: no such file")
        self._session.request("PUT", self._path(key), content=lambda: _chunks(src))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._session.request("PUT", self._path(key), content=lambda: bytes(data))

    def get_file(self, key: str, dest: Path) -> None:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)

        def save(resp: Any) -> None:  # rewritten from the start on every attempt
            with open(dest, "wb") as out:
                for block in resp.iter_bytes(_CHUNK):
                    out.write(block)

        try:
            self._session.send("GET", self._path(key), stream_to=save)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            raise

    def get_bytes(self, key: str) -> bytes:
        return bytes(self._session.send("GET", self._path(key)).content)

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        try:
            resp = self._session.send("HEAD", self._path(key), ok_missing=True)
        except PermissionDenied:  # unreadable counts as missing: the caller uploads it
            return None
        return None if resp is None else int(resp.headers.get("content-length", "0"))

    def delete(self, key: str) -> None:
        raise InvalidArgument("blobs cannot be deleted through the server", field="key")

    def list(self, prefix: str = "") -> Iterator[str]:
        raise InvalidArgument("the server does not list blobs; list a run's artifacts instead", field="prefix")

    def local_path(self, key: str) -> Path | None:
        return None
