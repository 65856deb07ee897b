"""``/principals``, ``/tokens``, ``/whoami``: users, service accounts, tokens and roles."""

from __future__ import annotations

from typing import Any

from conveyor.core.errors import PermissionDenied
from conveyor.server.routing import ADMIN, AUTHENTICATED, Call, Endpoint, Param, project_role
from conveyor.server.scope import body_project
from conveyor.stores.metadata.wire import GrantIn, PrincipalIn, TokenIn


def whoami(call: Call) -> Any:
    return call.principal


def create_principal(call: Call) -> Any:
    body: PrincipalIn = call.body
    return call.state.governance.create_principal(body.name, kind=body.kind, admin=body.admin)


def list_principals(call: Call) -> Any:
    return call.state.governance.list_principals()


def get_principal(call: Call) -> Any:
    return call.state.governance.get_principal(call.path["name"])


def grant(call: Call) -> Any:
    body: GrantIn = call.body
    return call.state.governance.grant(call.path["name"], project=body.project, role=body.role)


def _self_or_admin(call: Call, principal: str) -> None:
    if principal != call.principal.name and not call.principal.is_admin:
        raise PermissionDenied(f"{call.principal.name} may manage only their own tokens")


def create_token(call: Call) -> Any:
    body: TokenIn = call.body
    principal = body.principal or call.principal.name
    _self_or_admin(call, principal)
    return call.state.governance.create_token(principal, name=body.name, expires_in=body.expires_in)


def list_tokens(call: Call) -> Any:
    principal = call.query.get("principal")
    if principal is None and not call.principal.is_admin:
        principal = call.principal.name
    if principal is not None:
        _self_or_admin(call, principal)
    return call.state.governance.list_tokens(principal)


def revoke_token(call: Call) -> Any:
    gov = call.state.governance
    _self_or_admin(call, gov.get_token(call.path["token_id"]).principal)
    return gov.revoke_token(call.path["token_id"])


ENDPOINTS = [
    Endpoint("GET", "/whoami", whoami, AUTHENTICATED, "The caller and their roles"),
    Endpoint("POST", "/principals", create_principal, ADMIN, "Create a user or service account (returns its token once)",
             body=PrincipalIn, status=201),
    Endpoint("GET", "/principals", list_principals, ADMIN, "List users and service accounts"),
    Endpoint("GET", "/principals/{name}", get_principal, ADMIN, "Get a user or service account"),
    Endpoint("PUT", "/principals/{name}/roles", grant, project_role("owner", body_project),
             "Grant (or with role null, take away) a project role", body=GrantIn),
    Endpoint("POST", "/tokens", create_token, AUTHENTICATED, "Create a token (yours; any for admins)",
             body=TokenIn, status=201),
    Endpoint("GET", "/tokens", list_tokens, AUTHENTICATED, "List tokens (yours; any for admins)",
             query=[Param("principal")]),
    Endpoint("DELETE", "/tokens/{token_id}", revoke_token, AUTHENTICATED, "Revoke a token"),
]
