"""A Conveyor server as an artifact backend: blobs stream through ``/api/v1/blobs/{key}``.

Chosen when ``CONVEYOR_ARTIFACTS`` (or, by default, ``CONVEYOR_URI``) is
``http(s)://``. Uploads and downloads stream in 1 MiB chunks, so multi-GB
files never sit in memory; the content layer above verifies every download.

When the server says ``direct_uploads`` (``/health``: its store is S3 and it
presigns), uploads skip it: ``POST /blob-uploads`` names the blobs, the server
answers a presigned PUT URL for each one it lacks, the bytes go straight to S3
(without the Conveyor token), and ``POST /blob-uploads/complete`` has the
server check and keep them. Otherwise each blob streams through ``PUT /blobs``.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conveyor.core.errors import BackendUnavailable, InvalidArgument, NotFound, PermissionDenied
from conveyor.stores.metadata.rest import HttpSession

_CHUNK = 1 << 20
_BATCH = 1000  # blobs per negotiation, the server's limit
_WORKERS = 8
_ATTEMPTS = 5  # tries of one presigned PUT

#: What to upload: (key, size, a callable giving a fresh body per attempt).
Source = tuple[str, int, Callable[[], Any]]


def _digest(key: str) -> str:
    """``blobs/ab/cdef…`` → ``blake3:abcdef…``."""
    _, head, tail = key.split("/")
    return f"blake3:{head}{tail}"


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            yield block


class HttpBackend:
    """:class:`~conveyor.stores.artifacts.base.ByteBackend` over a Conveyor server."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self._session = HttpSession(self.uri)
        self._direct: bool | None = None  # learnt from /health on the first upload
        self._s3: Any = None

    def __repr__(self) -> str:
        return f"HttpBackend({self.uri!r})"

    def _path(self, key: str) -> str:
        return f"/blobs/{key}"

    def put_file(self, key: str, src: Path) -> None:
        self.put_files([(key, Path(src))])

    def put_bytes(self, key: str, data: bytes) -> None:
        data = bytes(data)
        self._upload([(key, len(data), lambda: data)])

    def put_files(self, items: Sequence[tuple[str, Path]]) -> None:
        """Store each ``(key, src)``: one negotiation per 1,000 blobs when the server allows direct uploads."""
        sources: list[Source] = []
        for key, src in items:
            path = Path(src)
            if not path.is_file():
                raise NotFound(f"cannot store {str(path)!r}: no such file")
            sources.append((key, path.stat().st_size, lambda p=path: _chunks(p)))  # type: ignore[misc]
        self._upload(sources)

    # -- uploads -------------------------------------------------------------------

    def direct_uploads(self) -> bool:
        """Whether the server hands out presigned URLs (asked once, on the first upload)."""
        if self._direct is None:
            info = self._session.request("GET", "/health") or {}
            self._direct = bool(info.get("direct_uploads"))
        return self._direct

    def _upload(self, sources: list[Source]) -> None:
        for start in range(0, len(sources), _BATCH):
            batch = sources[start:start + _BATCH]
            if not (self.direct_uploads() and self._upload_direct(batch)):
                self._stream(batch)

    def _stream(self, sources: list[Source]) -> None:
        def put(source: Source) -> None:
            key, _, body = source
            self._session.request("PUT", self._path(key), content=body)

        if len(sources) == 1:
            put(sources[0])
            return
        with ThreadPoolExecutor(min(_WORKERS, len(sources)), thread_name_prefix="conveyor-http-put") as pool:
            list(pool.map(put, sources))

    def _upload_direct(self, sources: list[Source]) -> bool:
        """Negotiate, PUT to S3, complete; ``False`` when the server declines (then stream)."""
        by_digest = {_digest(key): (size, body) for key, size, body in sources}
        answer = self._session.request("POST", "/blob-uploads", json={
            "blobs": [{"digest": d, "size": size} for d, (size, _) in by_digest.items()]})
        if not answer or not answer.get("direct"):
            self._direct = False
            return False
        uploads = answer["uploads"]

        def put(upload: dict[str, Any]) -> None:
            size, body = by_digest[upload["digest"]]
            self._put_presigned(upload["url"], size, body)

        if uploads:
            with ThreadPoolExecutor(min(_WORKERS, len(uploads)), thread_name_prefix="conveyor-s3-put") as pool:
                list(pool.map(put, uploads))
            self._session.request("POST", "/blob-uploads/complete", json={"uploads": [
                {"digest": u["digest"], "size": by_digest[u["digest"]][0], "upload_id": u["upload_id"]}
                for u in uploads]})
        return True

    def _put_presigned(self, url: str, size: int, body: Callable[[], Any]) -> None:
        """PUT to a presigned URL (S3 wants a Content-Length, not chunks), retrying errors and 5xx."""
        import httpx

        for attempt in range(_ATTEMPTS):
            try:
                resp = self._s3_client().put(url, content=body(), headers={"Content-Length": str(size)})
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 300:
                    return
                problem = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code < 500:
                    break
            if attempt + 1 < _ATTEMPTS:
                time.sleep(min(2.0, 0.1 * 2 ** attempt) * (0.5 + random.random() / 2))
        raise BackendUnavailable(f"the direct upload to the artifact store failed ({problem})")

    def _s3_client(self) -> Any:
        """A client without the Conveyor token: presigned URLs carry their own authorisation."""
        if self._s3 is None:
            import httpx

            self._s3 = httpx.Client(timeout=httpx.Timeout(self._session.timeout, connect=10.0))
        return self._s3

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
