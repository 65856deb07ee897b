"""The ASGI app: routes from every resource module, state from the lifespan.

``create_app(config)`` is what tests and ``conveyor server`` run;
``app_from_env()`` is the factory uvicorn's workers import (the config travels
in ``CONVEYOR_SERVER_CONFIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from conveyor.core.errors import InvalidArgument
from conveyor.core.uris import scheme_of
from conveyor.server import openapi
from conveyor.server.config import ServerConfig
from conveyor.server.errors import http_exception, unexpected
from conveyor.server.routes import (
    artifacts,
    audit,
    automation,
    blobs,
    datasets,
    governance,
    lineage,
    meta,
    metrics,
    monitors,
    projects,
    registry,
    runs,
    search,
    uploads,
)
from conveyor.server.routing import Endpoint, make_route
from conveyor.server.security import SecurityMiddleware
from conveyor.server.state import ServerState
from conveyor.server.upkeep import prune_keys_forever, tend_uploads_forever

RESOURCES = (
    meta, projects, search, runs, metrics, artifacts, blobs, uploads, lineage, governance, audit, registry,
    datasets, monitors, automation,
)


def all_endpoints() -> list[Endpoint]:
    """Every endpoint the app serves, in routing order."""
    return [e for module in RESOURCES for e in module.ENDPOINTS]


def _open_state(config: ServerConfig) -> ServerState:
    from conveyor.core.plugins import load_backend
    from conveyor.stores.artifacts.cas import open_content_store

    scheme = scheme_of(config.backend)
    if scheme in ("http", "https"):
        raise InvalidArgument("the server needs a database backend (sqlite: or postgresql:), not another server",
                              field="backend")
    store = load_backend("metadata", scheme)(config.backend)
    content = open_content_store(config.artifacts)
    local = content.backend.local_path("x")
    if local is not None:  # same file system as the blobs: downloads hard-link instead of copying
        tmp_dir = Path(local).parent.parent / ".conveyor-server-tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp_dir = Path(tempfile.mkdtemp(prefix="conveyor-server-"))
    from conveyor.server.auth import local_principal

    return ServerState(config=config, store=store, content=content, tmp_dir=tmp_dir, local=local_principal())


def create_app(config: ServerConfig) -> Starlette:
    """The app serving ``config.backend`` and ``config.artifacts``."""
    endpoints = all_endpoints()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = _open_state(config)
        app.state.conveyor = state
        tasks = []
        if config.prune_every > 0:
            tasks.append(asyncio.create_task(prune_keys_forever(state)))
        if config.sweep_every > 0 and config.upload_expiry_days > 0:
            tasks.append(asyncio.create_task(tend_uploads_forever(state)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.close()
            if state.tmp_dir.name.startswith("conveyor-server-"):
                shutil.rmtree(state.tmp_dir, ignore_errors=True)

    middleware = [Middleware(SecurityMiddleware, config=config)]
    if config.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
            allow_headers=["Authorization", "Content-Type"],
        ))
    app = Starlette(
        routes=[make_route(e) for e in endpoints],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception, Exception: unexpected},
    )
    app.state.openapi = openapi.build(endpoints, auth=config.auth_required)
    app.state.endpoints = endpoints
    return app


def app_from_env() -> Starlette:
    """The factory uvicorn workers call: the config comes from ``CONVEYOR_SERVER_CONFIG``."""
    return create_app(ServerConfig.from_env())
