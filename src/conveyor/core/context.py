"""Who is acting: the identity that audit events and ownership are recorded under.

Embedded, it is the login name of the process. The server sets it per request
from the authenticated token (``acting_as``), so the stores record the real
caller without every method growing an ``actor`` argument. It lives in a
``ContextVar``: threads and asyncio tasks each see their own.

Example::

    with acting_as("alice"):
        store.registry.set_alias(...)      # audited as alice
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_actor: ContextVar[str | None] = ContextVar("conveyor_actor", default=None)


def current_actor() -> str:
    """The name changes are recorded under."""
    actor = _actor.get()
    if actor is not None:
        return actor
    from conveyor.core.settings import current_user

    return current_user() or "unknown"


@contextlib.contextmanager
def acting_as(name: str) -> Iterator[None]:
    token = _actor.set(name)
    try:
        yield
    finally:
        _actor.reset(token)
