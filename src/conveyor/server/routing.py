"""Endpoints declared once: method, path, who may call it, body type, docs.

Every route of the app is built from an :class:`Endpoint`, and an endpoint
cannot be declared without an :class:`Access`: the permission check is part of
the route, not something a handler may forget. The wrapper runs, in order:
authenticate (401) → read and decode the body (413/400/422) → authorise (403)
→ the handler, acting as the caller, in a worker thread.

Example::

    Endpoint("GET", "/runs/{run_id}", get_run, access=project_role("viewer", run_in_path),
             summary="Get a run")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.core.context import acting_as
from conveyor.core.errors import ConveyorError, InvalidArgument, PayloadTooLarge
from conveyor.server.errors import conveyor_error, error_response, json_response, validation_error
from conveyor.stores.metadata.wire import ACTOR_HEADER, API

if TYPE_CHECKING:
    from conveyor.server.state import ServerState
    from conveyor.stores.metadata.governance import Principal


@dataclass(frozen=True)
class Access:
    """Who may call an endpoint.

    ``kind`` is ``public`` (no credentials), ``authenticated`` (any valid token;
    the handler narrows what is visible), ``admin``, ``project`` (``role`` on every
    project ``resolve`` names, or on any of them with ``any_of``) or ``uploader``
    (editor somewhere). ``stricter`` names a higher role a particular call needs
    (given the decoded body), e.g. ``owner`` for a forced promotion; ``None`` keeps ``role``.
    """

    kind: str
    role: str = ""
    resolve: Callable[[Call], Iterable[str]] | None = None
    any_of: bool = False
    stricter: Callable[[Call], str | None] | None = None


PUBLIC = Access("public")
AUTHENTICATED = Access("authenticated")
ADMIN = Access("admin")
UPLOADER = Access("uploader")


def project_role(
    role: str, resolve: Callable[[Call], Iterable[str]], *, any_of: bool = False,
    stricter: Callable[[Call], str | None] | None = None,
) -> Access:
    return Access("project", role, resolve, any_of, stricter)


@dataclass(frozen=True)
class Param:
    """A query parameter, for validation messages and the OpenAPI document."""

    name: str
    type: str = "string"  # "string" | "integer" | "boolean"
    required: bool = False
    description: str = ""


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    state: ServerState
    principal: Principal
    path: dict[str, Any]
    query: QueryParams
    body: Any = None

    def query_int(self, name: str, default: int | None = None) -> int | None:
        """An integer query parameter in 0 .. 2**62."""
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or len(raw) > 18:
            raise InvalidArgument(f"query parameter {name} must be a non-negative integer, got {raw[:40]!r}", field=name)
        return int(raw)


Handler = Callable[[Call], Any]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below /api/v1
    handler: Handler
    access: Access
    summary: str
    body: type | None = None
    query: Sequence[Param] = ()
    stream: bool = False  # an async handler that reads the request body itself
    status: int = 200

    @property
    def full_path(self) -> str:
        return API + self.path


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(body_type: type, raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidArgument("this endpoint needs a JSON body", field="body")
    return msgspec.json.decode(raw, type=body_type)


def make_route(endpoint: Endpoint) -> Route:
    """The Starlette route that enforces ``endpoint.access`` before its handler runs."""
    from conveyor.server.auth import anonymous, authenticate, authorize

    async def asgi(request: Request) -> Response:
        state: ServerState = request.app.state.conveyor
        try:
            if endpoint.access.kind == "public":
                principal = anonymous()
            elif not state.config.auth_required:
                principal = state.local  # no database round trip when auth is off
                claimed = request.headers.get(ACTOR_HEADER)
                if claimed:  # a trusted local caller names who acts, as the embedded store would record
                    principal = msgspec.structs.replace(principal, name=unquote(claimed)[:250])
            else:
                principal = await run_in_threadpool(authenticate, state, request)
            call = Call(request, state, principal, dict(request.path_params), request.query_params)
            if endpoint.body is not None:
                raw = await read_body(request, state.config.max_body)
                call.body = decode_body(endpoint.body, raw)
            if endpoint.stream:
                await run_in_threadpool(authorize, call, endpoint.access)
                with acting_as(principal.name):
                    result = await endpoint.handler(call)
            else:  # one worker-thread hop for the check and the work
                result = await run_in_threadpool(_authorize_and_run, endpoint, call)
        except ConveyorError as exc:
            return conveyor_error(exc)
        except msgspec.ValidationError as exc:
            return validation_error(exc)
        except msgspec.DecodeError as exc:
            return error_response(400, "MALFORMED_JSON", f"the body is not valid JSON: {exc}", "body")
        if isinstance(result, Response):
            return result
        return json_response(result, endpoint.status)

    route = Route(endpoint.full_path, asgi, methods=[endpoint.method], name=f"{endpoint.method} {endpoint.path}")
    route.endpoint_spec = endpoint  # type: ignore[attr-defined]
    return route


def _authorize_and_run(endpoint: Endpoint, call: Call) -> Any:
    from conveyor.server.auth import authorize

    authorize(call, endpoint.access)
    with acting_as(call.principal.name):
        return endpoint.handler(call)
