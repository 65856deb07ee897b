"""``/health``, ``/openapi.json`` and ``/docs``: the only routes open without a token."""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, Response

from conveyor._version import __version__
from conveyor.server.errors import json_response
from conveyor.server.routing import PUBLIC, Call, Endpoint


def health(call: Call) -> Any:
    return {"status": "ok", "version": __version__, "auth": call.state.config.auth_required,
            "direct_uploads": call.state.direct_uploads}


def openapi(call: Call) -> Response:
    return json_response(call.request.app.state.openapi)


def docs(call: Call) -> Response:
    from conveyor.server.docs_page import PAGE

    return HTMLResponse(PAGE, headers={
        "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; connect-src 'self'",
    })


ENDPOINTS = [
    Endpoint("GET", "/health", health, PUBLIC, "Liveness and version"),
    Endpoint("GET", "/openapi.json", openapi, PUBLIC, "This API as an OpenAPI 3 document"),
    Endpoint("GET", "/docs", docs, PUBLIC, "Interactive API documentation"),
]
