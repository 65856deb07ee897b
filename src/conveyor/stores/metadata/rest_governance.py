"""Governance over HTTP: the same methods as the SQL store, for an admin's token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec

from conveyor.stores.metadata.governance import (
    AuditEntry,
    ChainStatus,
    IssuedToken,
    Principal,
    TokenInfo,
)


class RestGovernanceStore:
    """:class:`~conveyor.stores.metadata.governance.GovernanceStore` on a server (``store.governance``)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session.request(method, path, **kwargs)

    def create_principal(self, name: str, *, kind: str = "user", admin: bool = False) -> IssuedToken:
        answer = self._call("POST", "/principals", json={"name": name, "kind": kind, "admin": admin})
        return msgspec.convert(answer, IssuedToken)

    def get_principal(self, name: str) -> Principal:
        return msgspec.convert(self._call("GET", f"/principals/{quote(name, safe='')}"), Principal)

    def list_principals(self) -> list[Principal]:
        return msgspec.convert(self._call("GET", "/principals"), list[Principal])

    def whoami(self) -> Principal:
        return msgspec.convert(self._call("GET", "/whoami"), Principal)

    def create_token(self, principal: str, *, name: str = "", expires_in: int | None = None) -> IssuedToken:
        body = {"principal": principal, "name": name, "expires_in": expires_in}
        return msgspec.convert(self._call("POST", "/tokens", json=body), IssuedToken)

    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]:
        params = {"principal": principal} if principal else None
        return msgspec.convert(self._call("GET", "/tokens", params=params), list[TokenInfo])

    def revoke_token(self, token_id: str) -> TokenInfo:
        return msgspec.convert(self._call("DELETE", f"/tokens/{quote(token_id, safe='')}"), TokenInfo)

    def grant(self, principal: str, *, project: str, role: str | None) -> Principal:
        answer = self._call("PUT", f"/principals/{quote(principal, safe='')}/roles",
                            json={"project": project, "role": role})
        return msgspec.convert(answer, Principal)

    def list_audit(
        self,
        *,
        project: str | None = None,
        since: int | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        params: dict[str, Any] = {"after_seq": after_seq, "limit": limit}
        if project:
            params["project"] = project
        if since is not None:
            params["since"] = since
        return msgspec.convert(self._call("GET", "/audit", params=params), list[AuditEntry])

    def verify_audit(self) -> ChainStatus:
        return msgspec.convert(self._call("GET", "/audit/verify"), ChainStatus)
