"""Who may call the prediction service: the tracking server's own tokens and project roles.

With auth on, every route but ``/health`` and ``/ready`` needs ``Authorization:
Bearer <token>``, checked by the same governance store the tracking server uses
(hashed tokens, expiry, revocation): directly in the database on the embedded
store, through the server's ``/whoami`` when the registry is a remote server.
Predicting and reading the model's metadata or metrics need ``viewer`` on the
model's project; sending feedback needs ``editor``. No token, or a token that
is unknown, expired or revoked, is a 401; a known caller without the role is a
403, with the same JSON bodies as the tracking server.

A token's answer is remembered for ``cache_seconds`` (default 5 s) so the hot
path does not query the database on every request: a revoked token stops
working within that time.

Example::

    gate = TokenGate.for_store(registry.store, project="bikes", cache_seconds=5)
    principal = await gate.require(headers.get(b"authorization"), "viewer")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from conveyor.core.errors import BackendUnavailable, PermissionDenied, Unauthenticated
from conveyor.core.ids import now_ms
from conveyor.stores.metadata.governance import Principal, role_rank

Check = Callable[[str], "Principal | None"]  # token -> its principal, or None when not live


def bearer(header: bytes | str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, token = text.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def has_role(principal: Principal, project: str, role: str) -> bool:
    return principal.is_admin or role_rank(principal.roles.get(project)) >= role_rank(role)


class TokenGate:
    """Checks bearer tokens against a governance store and the caller's role on one project."""

    def __init__(self, check: Check, project: str, *, cache_seconds: float = 5.0, max_cached: int = 10_000) -> None:
        self._check = check
        self.project = project
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    @classmethod
    def for_store(cls, store: Any, project: str, *, cache_seconds: float = 5.0) -> TokenGate:
        """The gate of a metadata store: its database (embedded) or its server's ``/whoami`` (remote)."""
        governance = getattr(store, "governance", None)
        authenticate = getattr(governance, "authenticate", None)
        if callable(authenticate):
            return cls(lambda token: authenticate(token, now_ms()), project, cache_seconds=cache_seconds)
        session = getattr(store, "session", None)
        if session is None:
            raise BackendUnavailable("this metadata store cannot check tokens; serve with auth off, or from "
                                     "a database or a tracking server with auth on")
        return cls(_remote_check(session), project, cache_seconds=cache_seconds)

    def principal(self, token: str) -> Principal | None:
        """The token's principal (cached for ``cache_seconds``), or None when it is not live."""
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = self._check(token)
        if len(self._cache) >= self.max_cached:
            self._cache.clear()  # bounded: a flood of made-up tokens cannot grow it
        if self.cache_seconds > 0:
            self._cache[token] = (now + self.cache_seconds, principal)
        return principal

    async def require(self, header: bytes | str | None, role: str) -> Principal:
        """The caller, or :class:`Unauthenticated` (401) / :class:`PermissionDenied` (403)."""
        token = bearer(header)
        if token is None:
            raise Unauthenticated("this service needs a token: send 'Authorization: Bearer <token>' "
                                  "(a token of the tracking server: conveyor tokens create)")
        hit = self._cache.get(token)
        if hit is not None and hit[0] > time.monotonic():
            principal = hit[1]
        else:  # the database or the server: off the event loop
            principal = await asyncio.get_running_loop().run_in_executor(None, self.principal, token)
        if principal is None:
            raise Unauthenticated("the token is unknown, expired or revoked; ask an admin for a new "
                                  "one (conveyor tokens create)")
        if not has_role(principal, self.project, role):
            raise PermissionDenied(f"{principal.name} needs the {role} role on {self.project}")
        return principal


def _remote_check(session: Any) -> Check:
    """Ask the tracking server who a token belongs to (``GET /whoami`` with that token)."""
    import httpx
    import msgspec

    probe = session.client.get("/whoami", headers={"Authorization": "Bearer not-a-token"})
    if probe.status_code == 200:
        raise BackendUnavailable(
            f"the tracking server at {session.uri} does not check tokens (its auth is off), so it cannot "
            "vouch for callers; start it with --auth, or serve without --auth on a loopback address")

    def check(token: str) -> Principal | None:
        try:
            answer = session.client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"cannot reach the tracking server at {session.uri} to check a token "
                                     f"({type(exc).__name__})") from None
        if answer.status_code == 401:
            return None
        if answer.status_code != 200:
            raise BackendUnavailable(f"the tracking server answered {answer.status_code} to a token check")
        return msgspec.json.decode(answer.content, type=Principal)

    return check
