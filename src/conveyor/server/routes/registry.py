"""``/projects/{project}/models``: registered models, versions, aliases and gate records.

Thin over ``store.registry``: reads need ``viewer`` on the project, changes
``editor``, deleting a version ``owner``, and recording a *forced* gate verdict
(a promotion past a failing gate, ``--force``) ``owner`` as well.

Gated aliases: the gate runs in the client (it loads both models, and the
server does not run model code that editors upload), so its verdict is only as
trustworthy as the caller. When a model declares a gate, moving or removing one
of its gated aliases (``config.gated_aliases``, ``champion`` by default) takes
the ``owner`` role, whether by a recorded "passed" verdict, a forced one, a
direct move or a rollback; so does changing a declared gate. An editor's
client-side verdict on such an alias is refused (403) and changes nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from conveyor.core.errors import InvalidArgument, NotFound, PermissionDenied
from conveyor.server.auth import has_role
from conveyor.server.blob_index import index_manifest, manifest_digests, require_held
from conveyor.server.routing import Call, Endpoint, Param, project_role
from conveyor.server.scope import project_in_path
from conveyor.stores.metadata.sql.blob_refs import MODEL
from conveyor.stores.metadata.wire import (
    AliasIn,
    GateIn,
    ModelIn,
    ModelPatch,
    RollbackIn,
    VersionIn,
    VersionPatch,
    VersionStatusIn,
)

_MODEL = "/projects/{project}/models/{name}"
_VERSION = _MODEL + "/versions/{version}"
_ALIAS = _MODEL + "/aliases/{alias}"


def version_number(raw: str) -> int:
    """A version number from the path (aliases and ``latest`` only where a read resolves them)."""
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidArgument(f"version must be a positive integer, got {raw[:40]!r}", field="version")
    return int(raw)


def _page(page: Any, key: str) -> dict[str, Any]:
    return {key: list(page), "next_page_token": page.next_page_token}


def _bool(call: Call, name: str, default: bool) -> bool:
    raw = call.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise InvalidArgument(f"query parameter {name} must be true or false, got {raw[:40]!r}", field=name)
    return raw.lower() == "true"


# ------------------------------------------------------------------ models


def create_model(call: Call) -> Any:
    body: ModelIn = call.body
    return call.state.store.registry.create_model(
        call.path["project"], body.name, description=body.description, tags=body.tags, exist_ok=body.exist_ok,
        idempotency_key=body.idempotency_key,
    )


def list_models(call: Call) -> Any:
    key, value = call.query.get("tag_key"), call.query.get("tag_value")
    if (key is None) != (value is None):
        raise InvalidArgument("tag_key and tag_value go together", field="tag_key" if key is None else "tag_value")
    page = call.state.store.registry.list_models(
        call.path["project"], name_contains=call.query.get("name_contains") or None,
        tag=(key, value) if key is not None and value is not None else None,
        max_results=call.query_int("max_results", 100), page_token=call.query.get("page_token") or None,
    )
    return _page(page, "models")


def get_model(call: Call) -> Any:
    return call.state.store.registry.get_model(call.path["project"], call.path["name"])


def update_model(call: Call) -> Any:
    body: ModelPatch = call.body
    return call.state.store.registry.update_model(
        call.path["project"], call.path["name"], description=body.description, tags=body.tags, gate=body.gate,
    )


# ---------------------------------------------------------------- versions


def create_version(call: Call) -> Any:
    """Register the version, then index its package so viewers of the project can load it.

    The caller must hold the package and every file it lists (uploaded them
    through this server, or can read them already): 403 otherwise, nothing recorded.
    """
    body: VersionIn = call.body
    listed = manifest_digests(call.state, body.package_digest)
    require_held(call.state, call.principal, listed or [body.package_digest], "package_digest")
    version = call.state.store.registry.create_version(
        call.path["project"], call.path["name"], flavour=body.flavour, format=body.format,
        package_digest=body.package_digest, signature=body.signature, info=body.info, run_id=body.run_id,
        description=body.description, tags=body.tags, idempotency_key=body.idempotency_key,
    )
    index_manifest(call.state, MODEL, call.path["project"], version.id, body.package_digest, listed)
    return version


def list_versions(call: Call) -> Any:
    page = call.state.store.registry.list_versions(
        call.path["project"], call.path["name"], include_archived=_bool(call, "include_archived", True),
        max_results=call.query_int("max_results", 100), page_token=call.query.get("page_token") or None,
    )
    return _page(page, "versions")


def get_version(call: Call) -> Any:
    return call.state.store.registry.get_version(call.path["project"], call.path["name"], call.path["version"])


def update_version(call: Call) -> Any:
    body: VersionPatch = call.body
    return call.state.store.registry.update_version(
        call.path["project"], call.path["name"], version_number(call.path["version"]),
        description=body.description, tags=body.tags,
    )


def set_status(call: Call) -> Any:
    body: VersionStatusIn = call.body
    return call.state.store.registry.set_status(
        call.path["project"], call.path["name"], version_number(call.path["version"]), body.status
    )


def delete_version(call: Call) -> Response:
    call.state.store.registry.delete_version(call.path["project"], call.path["name"], version_number(call.path["version"]))
    return Response(status_code=204)


# ----------------------------------------------------------------- aliases


def set_alias(call: Call) -> Any:
    body: AliasIn = call.body
    previous = call.state.store.registry.set_alias(
        call.path["project"], call.path["name"], call.path["alias"], body.version,
        idempotency_key=body.idempotency_key,
    )
    return {"previous": previous}


def delete_alias(call: Call) -> Response:
    call.state.store.registry.delete_alias(call.path["project"], call.path["name"], call.path["alias"])
    return Response(status_code=204)


def alias_history(call: Call) -> Any:
    return call.state.store.registry.alias_history(call.path["project"], call.path["name"], call.path["alias"])


def rollback_alias(call: Call) -> Any:
    body: RollbackIn = call.body
    was, now = call.state.store.registry.rollback_alias(
        call.path["project"], call.path["name"], call.path["alias"], idempotency_key=body.idempotency_key
    )
    return {"from": was, "to": now}


# ------------------------------------------------------------------- gates


def record_gate(call: Call) -> Any:
    body: GateIn = call.body
    return call.state.store.registry.record_gate(
        call.path["project"], call.path["name"], version_number(call.path["version"]), body.alias,
        champion_version=body.champion_version, passed=body.passed, forced=body.forced, reason=body.reason,
        report=body.report, move_alias=body.move_alias, against=body.against, idempotency_key=body.idempotency_key,
    )


def list_gates(call: Call) -> Any:
    return call.state.store.registry.list_gate_evaluations(
        call.path["project"], call.path["name"], call.query_int("version")
    )


def _gated(call: Call, alias: str) -> bool:
    """Whether ``alias`` of the model in the path needs its declared gate (an unknown model: the handler's 404)."""
    if alias not in call.state.config.gated_aliases:
        return False
    try:
        return bool(call.state.store.registry.get_model(call.path["project"], call.path["name"]).gate)
    except NotFound:
        return False


def _owner_for_gated(call: Call, alias: str, what: str) -> str | None:
    """``owner`` when ``alias`` is gated, refusing editors with the reason (not just the role).

    Callers below editor get the plain role refusal, which says nothing about the model.
    """
    project = call.path["project"]
    if not has_role(call.principal, project, "editor") or not _gated(call, alias):
        return None
    if not has_role(call.principal, project, "owner"):
        raise PermissionDenied(
            f"{call.principal.name} may not {what} {alias!r} of {call.path['name']}: the model declares a gate, and "
            f"a gate run by a client is not proof, so only an owner of {project} may move a gated alias "
            "(conveyor models promote --force --reason …, audited)", field="alias")
    return "owner"


def _gate_record_role(call: Call) -> str | None:
    """A forced verdict overrides a failing gate; a passing one on a gated alias is the client's word: owners only."""
    body: GateIn = call.body
    if (body.passed or body.move_alias) and _owner_for_gated(call, body.alias, "record a passing gate verdict for"):
        return "owner"
    return "owner" if body.forced else None


def _alias_role(what: str) -> Any:
    return lambda call: _owner_for_gated(call, call.path["alias"], what)


def _model_patch_role(call: Call) -> str | None:
    """The declared gate is the project's promotion policy: changing it needs an owner."""
    return "owner" if call.body.gate is not None else None


VIEW = project_role("viewer", project_in_path)
EDIT = project_role("editor", project_in_path)
OWN = project_role("owner", project_in_path)
GATE = project_role("editor", project_in_path, stricter=_gate_record_role)
_PAGING = [Param("max_results", "integer"), Param("page_token")]

ENDPOINTS = [
    Endpoint("GET", "/projects/{project}/models", list_models, VIEW, "List registered models in name order",
             query=[Param("name_contains"), Param("tag_key"), Param("tag_value"), *_PAGING]),
    Endpoint("POST", "/projects/{project}/models", create_model, EDIT,
             "Register a model (idempotent with idempotency_key)", body=ModelIn, status=201),
    Endpoint("GET", _MODEL, get_model, VIEW, "Get a registered model with its aliases"),
    Endpoint("PATCH", _MODEL, update_model, project_role("editor", project_in_path, stricter=_model_patch_role),
             "Change a model's description, tags or declared gate (the gate: owner)", body=ModelPatch),
    Endpoint("GET", _MODEL + "/versions", list_versions, VIEW, "List versions, newest first",
             query=[Param("include_archived", "boolean"), *_PAGING]),
    Endpoint("POST", _MODEL + "/versions", create_version, EDIT,
             "Register the next version (idempotent with idempotency_key)", body=VersionIn, status=201),
    Endpoint("GET", _VERSION, get_version, VIEW, "Get a version by number, alias or 'latest'"),
    Endpoint("PATCH", _VERSION, update_version, EDIT, "Change a version's description or tags", body=VersionPatch),
    Endpoint("PUT", _VERSION + "/status", set_status, EDIT, "Archive or restore a version", body=VersionStatusIn),
    Endpoint("DELETE", _VERSION, delete_version, OWN, "Delete a version that holds no alias"),
    Endpoint("PUT", _ALIAS, set_alias, project_role("editor", project_in_path, stricter=_alias_role("move")),
             "Point an alias at a version (a gated alias: owner; idempotent with idempotency_key)", body=AliasIn),
    Endpoint("DELETE", _ALIAS, delete_alias, project_role("editor", project_in_path, stricter=_alias_role("remove")),
             "Remove an alias (a gated alias: owner)"),
    Endpoint("GET", _ALIAS + "/history", alias_history, VIEW, "Every move of an alias, oldest first"),
    Endpoint("POST", _ALIAS + "/rollback", rollback_alias,
             project_role("editor", project_in_path, stricter=_alias_role("roll back")),
             "Move an alias back to its previous holder (a gated alias: owner; idempotent with idempotency_key)",
             body=RollbackIn),
    Endpoint("POST", _VERSION + "/gates", record_gate, GATE,
             "Record a gate verdict and move the alias; forced, or passing on a gated alias, needs the owner role",
             body=GateIn, status=201),
    Endpoint("GET", _MODEL + "/gates", list_gates, VIEW, "Gate evaluations of a model, oldest first",
             query=[Param("version", "integer")]),
]
