"""Housekeeping the server does while it runs, as tasks of the ASGI lifespan.

Today one job: forget idempotency keys older than ``config.key_retention``
seconds (a day by default), every ``config.prune_every`` seconds (hourly; 0
turns it off), starting when the server starts. With ``--workers N`` each
worker prunes; deleting the same old keys twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from conveyor.server.state import ServerState

log = logging.getLogger("conveyor.server")


async def prune_keys_forever(state: ServerState) -> None:
    """Prune now, then every ``prune_every`` seconds until cancelled; a failed prune waits for the next."""
    config = state.config
    while True:
        try:
            removed = await run_in_threadpool(state.store.prune_idempotency_keys, int(config.key_retention * 1000))
            if removed:
                log.info("pruned %d idempotency keys older than %s s", removed, config.key_retention)
        except Exception as exc:  # the database may be away for a while; the server keeps serving
            log.warning("could not prune idempotency keys: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(config.prune_every)
