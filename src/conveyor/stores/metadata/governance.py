"""Who may do what: principals, API tokens, project roles and the audit trail.

The server asks this store who a bearer token belongs to and which role that
principal holds on a project; the CLI (``conveyor users|tokens|audit``) manages
it. ``SqlMetadataStore.governance`` implements it on the database, and
``RestMetadataStore.governance`` over HTTP (admin token required). Only a
SHA-256 of each token is stored; the token itself is shown once, on creation.

Example::

    gov = open_metadata_store().governance
    issued = gov.create_principal("ana", admin=True)   # prints nothing; returns the token
    gov.grant("bob", project="bikes", role="editor")
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import msgspec

#: Roles on a project, weakest first; each includes the rights of those before it.
ROLES: tuple[str, ...] = ("viewer", "editor", "owner")
KINDS: tuple[str, ...] = ("user", "service")


def role_rank(role: str | None) -> int:
    """0 for no role, then 1, 2, 3 for viewer, editor, owner."""
    return ROLES.index(role) + 1 if role in ROLES else 0


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """A user or a service account."""

    id: str
    name: str
    kind: str
    is_admin: bool
    created_at: int
    roles: dict[str, str] = {}  # project -> role


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An API token without its secret."""

    id: str
    principal: str
    name: str
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None


class IssuedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A new token: ``token`` is the secret, returned this once and never stored."""

    token: str
    info: TokenInfo


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One audit event as read back: who did what to which object, and when."""

    seq: int
    id: str
    at: int
    actor: str
    action: str
    object_kind: str
    object_id: str
    project: str | None
    before: Any
    after: Any
    details: dict[str, Any]
    hash: str


class ChainStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The result of re-computing the audit hash chain."""

    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str = ""


@runtime_checkable
class GovernanceStore(Protocol):
    def create_principal(self, name: str, *, kind: str = "user", admin: bool = False) -> IssuedToken: ...
    def get_principal(self, name: str) -> Principal: ...
    def list_principals(self) -> list[Principal]: ...
    def create_token(
        self, principal: str, *, name: str = "", expires_in: int | None = None
    ) -> IssuedToken: ...
    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]: ...
    def revoke_token(self, token_id: str) -> TokenInfo: ...
    def grant(self, principal: str, *, project: str, role: str | None) -> Principal: ...
    def list_audit(
        self,
        *,
        project: str | None = None,
        since: int | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]: ...
    def verify_audit(self) -> ChainStatus: ...
