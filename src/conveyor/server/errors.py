"""Errors as JSON: ``{"error": {"code", "message", "field"}}`` with the error's status.

Every :class:`~conveyor.core.errors.ConveyorError` keeps its class across the
wire: the REST store maps ``code`` back to the same class. Anything else that
escapes a handler is logged and answered with a 500 that reveals nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from conveyor.core.errors import ConveyorError, error_body

log = logging.getLogger(__name__)

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response; user-supplied strings are data here, never markup."""
    return Response(msgspec.json.encode(body), status_code=status, media_type=JSON, headers=headers)


def error_response(
    status: int, code: str, message: str, field: str | None = None,
    headers: Mapping[str, str] | None = None, **details: Any
) -> Response:
    return json_response(error_body(code, message, field, **details), status, headers)


def conveyor_error(exc: ConveyorError) -> Response:
    return json_response(exc.to_dict(), exc.http_status)


_PATH = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"field `([^`]+)`")


def validation_error(exc: msgspec.ValidationError) -> Response:
    """A body of the wrong shape: 422 naming the field (``$.points[3][2]`` → ``points[3][2]``)."""
    text = str(exc)
    path = _PATH.search(text)
    named = _NAMED.search(text)
    field = path.group(1) if path and path.group(1) else None
    if named:
        field = f"{field}.{named.group(1)}" if field else named.group(1)
    return error_response(422, "INVALID_BODY", text, field or "body")


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as our JSON errors."""
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, code, str(exc.detail), None, headers=exc.headers)


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "INTERNAL", "internal server error; the server log has the details")
