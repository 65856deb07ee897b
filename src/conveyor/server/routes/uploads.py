"""``/blob-uploads``: blobs written straight to S3, checked by the server before it keeps them.

When the artifact store is S3 and presigning is on (``/health`` says
``direct_uploads``), a client asks ``POST /blob-uploads`` for the blobs it
wants to write; the server answers a presigned PUT URL for each blob the
caller does not hold (a blob stored for another project gets a URL too, so the
answer never tells who else stored what), under a staging key
``uploads/<random>/<hex digest>`` (never the blob's own key, so nothing
unchecked is ever readable as a blob). The client
PUTs the bytes there, then ``POST /blob-uploads/complete``: the server reads
each staged object back, checks its size and BLAKE3 hash, copies that very
version (``CopySourceIfMatch`` on the ETag it hashed) to the blob's key and
deletes the staged object; the caller gets a receipt for the blob
(``server/blob_index.py``). A tampered or truncated upload is refused (400)
and discarded. Staged objects a client never completes are expired by the
bucket's lifecycle rule and swept by the server (``server/upkeep.py``).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import blake3
from starlette.responses import Response

from conveyor.core.errors import InvalidArgument, NotFound, PayloadTooLarge
from conveyor.server.blob_index import holds, received
from conveyor.server.routing import UPLOADER, Call, Endpoint
from conveyor.stores.artifacts.cas import blob_key, check_digest
from conveyor.stores.metadata.wire import UploadsDoneIn, UploadsIn

_UPLOAD_ID = re.compile(r"uploads/[0-9a-f]{32}/([0-9a-f]{64})")


def negotiate(call: Call) -> Any:
    """A presigned PUT URL per blob the caller does not hold; ``direct: false`` means: stream through ``/blobs``."""
    body: UploadsIn = call.body
    state = call.state
    if not state.direct_uploads:
        return {"direct": False, "uploads": []}
    backend = state.content.backend
    limit = state.config.max_upload
    uploads = []
    digests = [check_digest(blob.digest, f"blobs[{i}].digest") for i, blob in enumerate(body.blobs)]
    held = holds(state, call.principal, digests, index=False)  # what the caller may see as stored: no leak
    for i, (blob, digest) in enumerate(zip(body.blobs, digests, strict=True)):
        if limit and blob.size > limit:
            raise PayloadTooLarge(f"blob {digest} of {blob.size} bytes is over the limit of {limit}",
                                  field=f"blobs[{i}].size")
        if digest in held and backend.size(blob_key(digest)) == blob.size:
            continue  # stored already
        upload_id = f"uploads/{uuid.uuid4().hex}/{digest.split(':', 1)[1]}"
        url = backend.presign_put(upload_id, state.config.presign_expiry)
        uploads.append({"digest": digest, "upload_id": upload_id, "url": url})
    return {"direct": True, "uploads": uploads}


def complete(call: Call) -> Response:
    """Check every staged upload and keep it as its blob; the first bad one is refused (400)."""
    body: UploadsDoneIn = call.body
    if not call.state.direct_uploads:
        raise InvalidArgument("this server takes no direct uploads; PUT /blobs/{key} instead", field="uploads")
    for i, upload in enumerate(body.uploads):
        field = f"uploads[{i}]"
        digest = check_digest(upload.digest, f"{field}.digest")
        match = _UPLOAD_ID.fullmatch(upload.upload_id)
        if match is None or match.group(1) != digest.split(":", 1)[1]:
            raise InvalidArgument(f"{field}.upload_id is not an upload of {digest}", field=f"{field}.upload_id")
        keep(call, upload.upload_id, digest, upload.size, field)
    return Response(status_code=204)


def keep(call: Call, upload_id: str, digest: str, size: int, field: str) -> None:
    """Hash the staged object as S3 holds it; copy that version to the blob's key if it is ``digest``.

    The caller gets a receipt for the blob before the staged object is deleted,
    so a retried completion finds it.
    """
    state = call.state
    backend = state.content.backend
    key = blob_key(digest)
    try:
        etag, chunks = backend.read_version(upload_id)
    except NotFound:
        if digest in holds(state, call.principal, [digest]) and backend.size(key) == size:
            return  # a retry of a completion that went through (knowing the digest is not enough)
        raise InvalidArgument(f"nothing was uploaded for {digest} under {upload_id}", field=field) from None
    try:
        hasher, seen = blake3.blake3(max_threads=blake3.blake3.AUTO), 0
        for chunk in chunks:
            seen += len(chunk)
            if seen > size:
                break  # longer than announced: no need to read the rest
            hasher.update(chunk)
        actual = f"blake3:{hasher.hexdigest()}"
        if seen != size or actual != digest:
            raise InvalidArgument(
                f"the upload of {digest} does not match it ({seen if seen <= size else 'over'} of {size} bytes, "
                f"hashing to {actual}); it was discarded, upload it again", field=field)
        if backend.size(key) != size:
            backend.copy_version(upload_id, key, etag)
        received(state, call.principal, [digest])
    finally:
        backend.delete(upload_id)


ENDPOINTS = [
    Endpoint("POST", "/blob-uploads", negotiate, UPLOADER,
             "Presigned URLs to write blobs straight to the artifact store (S3)", body=UploadsIn),
    Endpoint("POST", "/blob-uploads/complete", complete, UPLOADER,
             "Check blobs written to presigned URLs and keep them", body=UploadsDoneIn, status=204),
]
