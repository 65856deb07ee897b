"""Raw ASGI for the hot path: read a body, answer JSON, without per-request framework objects.

The prediction routes are called thousands of times a second, so they skip
Starlette's Request, Response and middleware stack: the headers are one dict
of bytes, the body is read straight from ``receive`` with the size limit
applied as it arrives, and the answer is two ``send`` calls. Errors use the
same ``{"error": {"code", "message", "field", ...}}`` body as every other
Conveyor HTTP face.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from conveyor.core.errors import ConveyorError, PayloadTooLarge, error_body

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_JSON_TYPE = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before its body was read."""


def dumps(body: Any) -> bytes:
    """JSON bytes; NumPy arrays are written directly, anything else orjson refuses goes through ``tolist``."""
    return orjson.dumps(body, option=_NUMPY, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    """The request headers by lower-case name (ASGI servers give lower-case names)."""
    return dict(scope["headers"])


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body has {declared.decode()} bytes; at most {limit} are accepted", field="body")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes", field="body")
        return body
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    out = [_JSON_TYPE, (b"content-length", str(len(payload)).encode())]
    if headers:
        out.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": payload})


def failure_body(code: str, message: str, *, field: str | None = None, **details: Any) -> bytes:
    return dumps(error_body(code, message, field, **details))


def error_payload(exc: ConveyorError, request_id: str | None = None) -> bytes:
    """The JSON error body of ``exc``: every signature problem listed, the request id when there is one."""
    details: dict[str, Any] = {}
    problems = getattr(exc, "problems", None)
    if problems:
        details["problems"] = [{"column": c, "problem": p} for c, p in problems]
    if request_id:
        details["request_id"] = request_id
    return failure_body(exc.code, exc.message, field=exc.field, **details)
