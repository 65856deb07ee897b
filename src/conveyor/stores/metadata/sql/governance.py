"""Governance on the relational database: principals, hashed tokens, roles, audit reads.

Every change appends an audit event in its own transaction. Tokens are
``cvt_`` + 43 URL-safe characters (256 random bits); only their SHA-256 is
stored, so a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.core import validation as v
from conveyor.core.errors import AlreadyExists, InvalidArgument, NotFound
from conveyor.core.ids import check_id, new_id, now_ms
from conveyor.stores.metadata.governance import (
    KINDS,
    ROLES,
    AuditEntry,
    ChainStatus,
    IssuedToken,
    Principal,
    TokenInfo,
)
from conveyor.stores.metadata.sql.audit import append_event, verify_chain
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.schema import api_tokens, audit_events, principals, project_roles

TOKEN_PREFIX = "cvt_"
MAX_AUDIT_PAGE = 10_000


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: Any, principal: str) -> TokenInfo:
    return TokenInfo(
        id=row.id, principal=principal, name=row.name, created_at=row.created_at,
        expires_at=row.expires_at, revoked_at=row.revoked_at,
    )


class SqlGovernanceStore:
    """Governance records in the shared engine of a :class:`SqlMetadataStore`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -------------------------------------------------------------- principals

    def _principal_row(self, conn: Any, name: str) -> Any:
        row = conn.execute(select(principals).where(principals.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user or service account named {name!r}", field="principal")
        return row

    def _principal(self, conn: Any, row: Any) -> Principal:
        roles = dict(
            conn.execute(
                select(project_roles.c.project, project_roles.c.role)
                .where(project_roles.c.principal_id == row.id)
                .order_by(project_roles.c.project)
            ).all()
        )
        return Principal(
            id=row.id, name=row.name, kind=row.kind, is_admin=bool(row.is_admin),
            created_at=row.created_at, roles=roles,
        )

    def create_principal(self, name: str, *, kind: str = "user", admin: bool = False) -> IssuedToken:
        """Create a user or service account and its first token (returned once)."""
        v.check_name(name, "user")
        if kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
        row: dict[str, Any] = {"id": new_id(), "name": name, "kind": kind, "is_admin": bool(admin), "created_at": now_ms()}
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(insert(principals).values(**row))
                append_event(
                    conn, action="principal.create", object_kind="principal", object_id=name,
                    after={"kind": kind, "is_admin": bool(admin)},
                )
                issued = self._issue(conn, row["id"], name, "initial", None)
        except IntegrityError:
            raise AlreadyExists(f"a user or service account named {name!r} exists", field="name") from None
        return issued

    def get_principal(self, name: str) -> Principal:
        with read_transaction(self._engine) as conn:
            return self._principal(conn, self._principal_row(conn, name))

    def list_principals(self) -> list[Principal]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(principals).order_by(principals.c.name)).all()
            return [self._principal(conn, r) for r in rows]

    # ------------------------------------------------------------------ tokens

    def _issue(self, conn: Any, principal_id: str, principal: str, name: str, expires_in: int | None) -> IssuedToken:
        if expires_in is not None and (not isinstance(expires_in, int) or expires_in <= 0):
            raise InvalidArgument("expires_in must be a positive number of seconds", field="expires_in")
        if len(name) > 250:
            raise InvalidArgument("token name must have at most 250 characters", field="name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = now_ms()
        row: dict[str, Any] = {
            "id": new_id(), "principal_id": principal_id, "name": name, "token_hash": hash_token(token),
            "created_at": created, "expires_at": None if expires_in is None else created + expires_in * 1000,
            "revoked_at": None,
        }
        conn.execute(insert(api_tokens).values(**row))
        append_event(
            conn, action="token.create", object_kind="token", object_id=row["id"],
            after={"principal": principal, "name": name, "expires_at": row["expires_at"]},
        )
        return IssuedToken(token=token, info=TokenInfo(
            id=row["id"], principal=principal, name=name, created_at=created, expires_at=row["expires_at"],
        ))

    def create_token(self, principal: str, *, name: str = "", expires_in: int | None = None) -> IssuedToken:
        """A new API token for ``principal``; the secret is in the result only."""
        with write_transaction(self._engine) as conn:
            row = self._principal_row(conn, principal)
            return self._issue(conn, row.id, principal, name, expires_in)

    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]:
        query = select(api_tokens, principals.c.name.label("principal")).join(
            principals, principals.c.id == api_tokens.c.principal_id
        )
        if principal is not None:
            query = query.where(principals.c.name == principal)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(api_tokens.c.created_at, api_tokens.c.id)).all()
        return [_info(r, r.principal) for r in rows]

    def get_token(self, token_id: str) -> TokenInfo:
        check_id(token_id, "token_id")
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                select(api_tokens, principals.c.name.label("principal"))
                .join(principals, principals.c.id == api_tokens.c.principal_id)
                .where(api_tokens.c.id == token_id)
            ).first()
        if row is None:
            raise NotFound(f"no token {token_id}", field="token_id")
        return _info(row, row.principal)

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Make a token unusable from now on (revoking twice is a no-op)."""
        current = self.get_token(token_id)
        if current.revoked_at is not None:
            return current
        at = now_ms()
        with write_transaction(self._engine) as conn:
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            append_event(
                conn, action="token.revoke", object_kind="token", object_id=token_id,
                before={"revoked_at": None}, after={"revoked_at": at}, details={"principal": current.principal},
            )
        return self.get_token(token_id)

    def authenticate(self, token: str, now: int | None = None) -> Principal | None:
        """The principal a live (unexpired, unrevoked) token belongs to, else ``None``."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        now = now or now_ms()
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                select(principals, api_tokens.c.expires_at, api_tokens.c.revoked_at)
                .join(api_tokens, api_tokens.c.principal_id == principals.c.id)
                .where(api_tokens.c.token_hash == hash_token(token))
            ).first()
            if row is None or row.revoked_at is not None:
                return None
            if row.expires_at is not None and row.expires_at <= now:
                return None
            return self._principal(conn, row)

    # ------------------------------------------------------------------- roles

    def grant(self, principal: str, *, project: str, role: str | None) -> Principal:
        """Give ``principal`` a role on ``project``; ``role=None`` takes it away."""
        v.check_name(project, "project")
        if role is not None and role not in ROLES:
            raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
        with write_transaction(self._engine) as conn:
            row = self._principal_row(conn, principal)
            before = conn.execute(
                select(project_roles.c.role).where(
                    project_roles.c.principal_id == row.id, project_roles.c.project == project
                )
            ).scalar()
            conn.execute(
                delete(project_roles).where(
                    project_roles.c.principal_id == row.id, project_roles.c.project == project
                )
            )
            if role is not None:
                conn.execute(insert(project_roles).values(principal_id=row.id, project=project, role=role))
            if before != role:
                append_event(
                    conn, action="role.grant" if role else "role.revoke", object_kind="principal",
                    object_id=principal, project=project, before={"role": before}, after={"role": role},
                )
            return self._principal(conn, row)

    # ------------------------------------------------------------------- audit

    def list_audit(
        self,
        *,
        project: str | None = None,
        since: int | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Events in chain order, optionally of one project and from a time on."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_AUDIT_PAGE:
            raise InvalidArgument(f"limit must be 1 to {MAX_AUDIT_PAGE}", field="limit")
        query = select(audit_events).where(audit_events.c.seq > after_seq)
        if project is not None:
            query = query.where(audit_events.c.project == project)
        if since is not None:
            query = query.where(audit_events.c.at >= since)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(audit_events.c.seq).limit(limit)).all()
        return [
            AuditEntry(
                seq=r.seq, id=r.id, at=r.at, actor=r.actor, action=r.action, object_kind=r.object_kind,
                object_id=r.object_id, project=r.project, before=r.before, after=r.after,
                details=r.details or {}, hash=r.hash,
            )
            for r in rows
        ]

    def verify_audit(self) -> ChainStatus:
        """Recompute the hash chain; ``ok`` is false at the first altered or missing event."""
        with read_transaction(self._engine) as conn:
            report = verify_chain(conn)
        return ChainStatus(ok=report.ok, checked=report.checked, broken_at=report.broken_at, reason=report.reason)
