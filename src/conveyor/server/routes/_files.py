"""Streaming bytes in and out of the content store without holding them in memory."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import blake3
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse

from conveyor.core.errors import InvalidArgument, PayloadTooLarge, UnsafePath
from conveyor.core.uris import safe_relpath
from conveyor.stores.artifacts.cas import blob_key

_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


def check_artifact_path(raw: str | None, field: str = "path") -> str:
    """A user-supplied artifact path, stricter than the store: no backslash, no %xx, no control bytes."""
    if raw is None:
        raise InvalidArgument(f"query parameter {field} is required", field=field)
    if "\\" in raw:
        raise UnsafePath(f"{field} contains a backslash; use '/' between folders", field=field)
    if _ENCODED.search(raw):
        raise UnsafePath(f"{field} contains a percent-encoded sequence; send the plain path once encoded", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise UnsafePath(f"{field} contains a NUL or control character", field=field)
    return safe_relpath(raw, field)


async def receive_file(request: Request, folder: Path, limit: int) -> tuple[Path, str, int]:
    """Stream the body to a temp file in ``folder``, hashing as it arrives: (file, digest, size)."""
    hasher = blake3.blake3()
    fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    tmp = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if limit and size > limit:
                    raise PayloadTooLarge(f"upload is over the limit of {limit} bytes", field="body")
                hasher.update(chunk)
                out.write(chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp, f"blake3:{hasher.hexdigest()}", size


def store_blob(content: Any, tmp: Path, digest: str, size: int) -> None:
    """Keep the uploaded file as blob ``digest`` unless an intact copy is stored already."""
    try:
        key = blob_key(digest)
        if content.backend.size(key) != size:
            content.backend.put_file(key, tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


async def send_blob(content: Any, digest: str, folder: Path, size: int | None = None) -> FileResponse:
    """Verify the blob against its digest, then stream it; nothing unverified is sent."""
    tmp = folder / f".download-{uuid.uuid4().hex}"
    await run_in_threadpool(lambda: content.get_file(digest, tmp, link=True))
    return FileResponse(
        tmp,
        media_type="application/octet-stream",
        headers={"X-Content-Digest": digest},
        background=BackgroundTask(_unlink, tmp),
    )


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
