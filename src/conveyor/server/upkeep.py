"""Housekeeping the server does while it runs, as tasks of the ASGI lifespan.

- Forget idempotency keys older than ``config.key_retention`` seconds (a day by
  default), every ``config.prune_every`` seconds (hourly; 0 turns it off).
- Staged direct uploads (``uploads/``, ``routes/uploads.py``) that a client never
  completed: when the server starts on an S3 store, a bucket lifecycle rule
  expires them after ``config.upload_expiry_days`` (and aborts multipart uploads
  left unfinished as long), if the bucket allows it; and in any case the server
  deletes those older than that every ``config.sweep_every`` seconds, so stores
  without lifecycle rules (and local folders) are swept too.

Both start when the server starts. With ``--workers N`` each worker does them;
deleting the same old keys or objects twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.concurrency import run_in_threadpool

from conveyor.server.state import ServerState

log = logging.getLogger("conveyor.server")

#: Where direct uploads are staged before the server checks them.
STAGING = "uploads/"
DAY = 24 * 3600


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


def expire_uploads(state: ServerState) -> bool:
    """Put the bucket lifecycle rule for ``uploads/``; ``False`` without one (not S3, or refused)."""
    expire = getattr(state.content.backend, "expire_under", None)
    days = state.config.upload_expiry_days
    if expire is None or days <= 0:
        return False
    done = bool(expire(STAGING.rstrip("/"), days))
    if not done:
        log.warning("the bucket of %s refused a lifecycle rule for %s; the server sweeps them itself",
                    state.content.uri, STAGING)
    return done


def sweep_uploads(state: ServerState, now: float | None = None) -> int:
    """Delete staged uploads older than ``upload_expiry_days`` (and abort such multipart uploads); how many."""
    backend = state.content.backend
    days = state.config.upload_expiry_days
    stale = getattr(backend, "stale", None)
    if stale is None or days <= 0:
        return 0
    before = (time.time() if now is None else now) - days * DAY
    removed = 0
    for key in stale(STAGING, before):
        backend.delete(key)
        removed += 1
    abort = getattr(backend, "abort_multipart", None)
    if abort is not None:
        removed += abort(STAGING, before)
    return removed


async def tend_uploads_forever(state: ServerState) -> None:
    """The lifecycle rule once, then a sweep now and every ``sweep_every`` seconds until cancelled."""
    try:
        await run_in_threadpool(expire_uploads, state)
    except Exception as exc:  # the store may be away for a while; the server keeps serving
        log.warning("could not set the lifecycle rule for %s: %s: %s", STAGING, type(exc).__name__, exc)
    while True:
        try:
            removed = await run_in_threadpool(sweep_uploads, state)
            if removed:
                log.info("swept %d staged uploads older than %d days", removed, state.config.upload_expiry_days)
        except Exception as exc:
            log.warning("could not sweep staged uploads: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(state.config.sweep_every)
