"""Who is calling (bearer tokens) and whether they may (roles).

With auth off (a loopback bind without ``--auth``) every caller acts as the
local user with admin rights, as the embedded store would. With auth on, a
request without a live token is answered 401 before anything else happens,
and one whose principal lacks the role an endpoint declares gets 403.
"""

from __future__ import annotations

from starlette.requests import Request

from conveyor.core.errors import PermissionDenied, Unauthenticated
from conveyor.core.ids import now_ms
from conveyor.core.settings import current_user
from conveyor.server.routing import Access, Call
from conveyor.server.state import ServerState
from conveyor.stores.metadata.governance import Principal, role_rank


def local_principal() -> Principal:
    return Principal(id="0" * 32, name=current_user() or "local", kind="user", is_admin=True, created_at=0)


def anonymous() -> Principal:
    """The caller of a public route (health, docs): no rights at all."""
    return Principal(id="0" * 32, name="anonymous", kind="user", is_admin=False, created_at=0)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(state: ServerState, request: Request) -> Principal:
    """The caller, or :class:`Unauthenticated` (401) when auth is on and no live token came."""
    if not state.config.auth_required:
        return local_principal()
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("this server needs a token: send 'Authorization: Bearer <token>' "
                              "(set CONVEYOR_TOKEN for the SDK and CLI)")
    principal: Principal | None = state.governance.authenticate(token, now_ms())
    if principal is None:
        raise Unauthenticated("the token is unknown, expired or revoked; ask an admin for a new "
                              "one (conveyor tokens create)")
    return principal


def has_role(principal: Principal, project: str, role: str) -> bool:
    return principal.is_admin or role_rank(principal.roles.get(project)) >= role_rank(role)


def readable_projects(principal: Principal) -> set[str] | None:
    """The projects the caller may read; ``None`` means all of them (admin)."""
    if principal.is_admin:
        return None
    return {p for p, r in principal.roles.items() if role_rank(r) >= role_rank("viewer")}


def authorize(call: Call, access: Access) -> None:
    """Raise :class:`PermissionDenied` (403) unless ``access`` lets the caller in."""
    principal = call.principal
    if access.kind in ("public", "authenticated") or principal.is_admin:
        return
    if access.kind == "admin":
        raise PermissionDenied(f"{principal.name} is not an admin; this needs the admin role")
    if access.kind == "uploader":
        if any(role_rank(r) >= role_rank("editor") for r in principal.roles.values()):
            return
        raise PermissionDenied(f"{principal.name} is not an editor of any project")
    if access.kind != "project" or access.resolve is None:
        raise PermissionDenied("this endpoint declares no usable permission")  # deny by default
    role = (access.stricter(call) if access.stricter is not None else None) or access.role
    projects = sorted(set(access.resolve(call)))
    allowed = [p for p in projects if has_role(principal, p, role)]
    if access.any_of:
        if allowed:
            return
    elif len(allowed) == len(projects):  # no project yet (an unknown run): the handler says 404
        return
    where = ", ".join(projects) or "the project this touches"
    raise PermissionDenied(f"{principal.name} needs the {role} role on {where}")
