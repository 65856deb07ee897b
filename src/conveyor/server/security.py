"""Request checks that come before routing: Host (DNS rebinding) and Origin (CSRF).

A browser page on another site can make a request to ``127.0.0.1:7007``, and a
rebound DNS name can make it look same-origin. So: the Host header must be one
the server answers to, and a state-changing request that carries an Origin
(or ``Sec-Fetch-Site: cross-site``) must come from this server's own origin or
one configured for CORS.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.server.config import ServerConfig
from conveyor.server.errors import error_response

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_name(host: str) -> str:
    if host.startswith("["):  # [::1]:7007
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.hosts = {h.lower() for h in config.host_allow_list}
        self.origins = set(config.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if "*" not in self.hosts and _host_name(host.lower()) not in self.hosts:
            response = error_response(
                421, "BAD_HOST", "this server does not answer to that Host header (see --allowed-host)", "host"
            )
            await response(scope, receive, send)
            return
        if scope["method"] not in _SAFE_METHODS:
            origin = headers.get("origin")
            own = {f"http://{host}", f"https://{host}"}
            if origin is not None and origin not in own and origin not in self.origins:
                response = error_response(
                    403, "CROSS_ORIGIN", "state-changing requests from another origin are refused", "origin"
                )
                await response(scope, receive, send)
                return
            if origin is None and headers.get("sec-fetch-site") == "cross-site":
                response = error_response(403, "CROSS_ORIGIN", "cross-site requests are refused", "origin")
                await response(scope, receive, send)
                return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_with_headers)
