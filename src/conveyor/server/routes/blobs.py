"""``/blobs/{key}``: the content store over HTTP, for the SDK's artifact backend.

Keys are exactly ``blobs/<2 hex>/<62 hex>``; anything else (``..``, encoded
dots, backslashes, NUL...) is a 400 before any file is touched. An upload must
hash to its key. A blob is readable by whoever can read a run that recorded it or
a model version whose package lists it, and by any member of any project when a
dataset version lists it (``scope.blob_digest``, ``server/blob_index.py``). An
upload leaves a receipt: the uploader may then name the blob in a record.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.core.errors import InvalidArgument, UnsafePath
from conveyor.server.blob_index import received
from conveyor.server.routes._files import receive_file, send_blob, store_blob
from conveyor.server.routing import UPLOADER, Call, Endpoint, project_role
from conveyor.server.scope import blob_digest

_KEY = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{62})")


def digest_of_key(key: str) -> str:
    match = _KEY.fullmatch(key)
    if match is None:
        raise UnsafePath(f"blob key {key[:80]!r} is not blobs/<2 hex>/<62 hex>", field="key")
    return f"blake3:{match.group(1)}{match.group(2)}"


async def head(call: Call) -> Response:
    digest_of_key(call.path["key"])
    size = await run_in_threadpool(call.state.content.backend.size, call.path["key"])
    if size is None:
        return Response(status_code=404)
    return Response(headers={"Content-Length": str(size)})


async def get(call: Call) -> Any:
    digest = digest_of_key(call.path["key"])
    return await send_blob(call.state.content, digest, call.state.tmp_dir)


async def put(call: Call) -> Response:
    digest = digest_of_key(call.path["key"])
    state = call.state
    tmp, actual, size = await receive_file(call.request, state.tmp_dir, state.config.max_upload)
    if actual != digest:
        tmp.unlink()
        raise InvalidArgument(f"the body hashes to {actual}, not to its key's {digest}", field="body")
    await run_in_threadpool(store_blob, state.content, tmp, digest, size)
    await run_in_threadpool(received, state, call.principal, [digest])  # the caller proved they hold it
    return Response(status_code=204)


READ = project_role("viewer", blob_digest, any_of=True)

ENDPOINTS = [
    Endpoint("HEAD", "/blobs/{key:path}", head, READ, "Size of a blob", stream=True),
    Endpoint("GET", "/blobs/{key:path}", get, READ, "Download a blob (verified)", stream=True),
    Endpoint("PUT", "/blobs/{key:path}", put, UPLOADER, "Upload a blob (must hash to its key)", stream=True),
]

