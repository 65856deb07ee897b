"""The model registry over HTTP: ``RegistryStore`` answered by a server (``store.registry``).

Creates, alias moves, rollbacks and gate records carry an idempotency key, so
the session's retries after a lost answer never register a version twice, step
an alias back twice or record a verdict twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from conveyor.core import validation as v
from conveyor.core.entities import Page
from conveyor.core.errors import InvalidArgument
from conveyor.stores.metadata.registry import (
    AliasMove,
    GateEvaluation,
    ModelVersion,
    RegisteredModel,
)


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe builtins, anything else as its ``str`` (what the SQL store keeps)."""
    out: dict[str, Any] = json.loads(json.dumps(dict(value), default=str))
    return out


class RestRegistryStore:
    """:class:`~conveyor.stores.metadata.registry.RegistryStore` on a server."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session.request(method, path, **kwargs)

    @staticmethod
    def _model_path(project: str, name: str) -> str:
        # Names are checked here too: a '/' must not reach the URL as a path separator.
        v.check_name(project, "project")
        v.check_name(name, "model")
        return f"/projects/{project}/models/{name}"

    def _version_path(self, project: str, name: str, version: int | str) -> str:
        return f"{self._model_path(project, name)}/versions/{quote(str(version), safe='')}"

    def _alias_path(self, project: str, name: str, alias: str) -> str:
        return f"{self._model_path(project, name)}/aliases/{quote(str(alias), safe='')}"

    # ------------------------------------------------------------------ models

    def create_model(
        self, project: str, name: str, *, description: str = "",
        tags: Mapping[str, str] | None = None, exist_ok: bool = False,
    ) -> RegisteredModel:
        v.check_name(project, "project")
        body = {"name": name, "description": description, "tags": None if tags is None else dict(tags),
                "exist_ok": exist_ok, "idempotency_key": uuid.uuid4().hex}
        return msgspec.convert(self._call("POST", f"/projects/{project}/models", json=body), RegisteredModel)

    def get_model(self, project: str, name: str) -> RegisteredModel:
        return msgspec.convert(self._call("GET", self._model_path(project, name)), RegisteredModel)

    def list_models(
        self, project: str, *, name_contains: str | None = None, tag: tuple[str, str] | None = None,
        max_results: int = 100, page_token: str | None = None,
    ) -> Page:
        v.check_name(project, "project")
        params: dict[str, Any] = {"max_results": max_results}
        if name_contains:
            params["name_contains"] = name_contains
        if tag is not None:
            params["tag_key"], params["tag_value"] = tag
        if page_token:
            params["page_token"] = page_token
        answer = self._call("GET", f"/projects/{project}/models", params=params)
        return Page(msgspec.convert(answer["models"], list[RegisteredModel]), answer["next_page_token"])

    def update_model(
        self, project: str, name: str, *, description: str | None = None,
        tags: Mapping[str, str] | None = None, gate: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        body = {"description": description, "tags": None if tags is None else dict(tags),
                "gate": None if gate is None else _plain(gate)}
        return msgspec.convert(self._call("PATCH", self._model_path(project, name), json=body), RegisteredModel)

    # ---------------------------------------------------------------- versions

    def create_version(
        self, project: str, name: str, *, flavour: str, format: str, package_digest: str,
        signature: Mapping[str, Any] | None, info: Mapping[str, Any], run_id: str | None = None,
        description: str = "", tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        body = {
            "flavour": flavour, "format": format, "package_digest": package_digest,
            "signature": None if signature is None else _plain(signature), "info": _plain(info),
            "run_id": run_id, "description": description, "tags": None if tags is None else dict(tags),
            "idempotency_key": uuid.uuid4().hex,
        }
        answer = self._call("POST", f"{self._model_path(project, name)}/versions", json=body)
        return msgspec.convert(answer, ModelVersion)

    def get_version(self, project: str, name: str, version: int | str) -> ModelVersion:
        return msgspec.convert(self._call("GET", self._version_path(project, name, version)), ModelVersion)

    def list_versions(
        self, project: str, name: str, *, include_archived: bool = True,
        max_results: int = 100, page_token: str | None = None,
    ) -> Page:
        params: dict[str, Any] = {"include_archived": "true" if include_archived else "false",
                                  "max_results": max_results}
        if page_token:
            params["page_token"] = page_token
        answer = self._call("GET", f"{self._model_path(project, name)}/versions", params=params)
        return Page(msgspec.convert(answer["versions"], list[ModelVersion]), answer["next_page_token"])

    def update_version(
        self, project: str, name: str, version: int, *, description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        body = {"description": description, "tags": None if tags is None else dict(tags)}
        answer = self._call("PATCH", self._version_path(project, name, version), json=body)
        return msgspec.convert(answer, ModelVersion)

    def set_status(self, project: str, name: str, version: int, status: str) -> ModelVersion:
        answer = self._call("PUT", f"{self._version_path(project, name, version)}/status", json={"status": status})
        return msgspec.convert(answer, ModelVersion)

    def delete_version(self, project: str, name: str, version: int) -> None:
        self._call("DELETE", self._version_path(project, name, version), done_if_missing=True)

    # ----------------------------------------------------------------- aliases

    def set_alias(
        self, project: str, name: str, alias: str, version: int, *, action: str = "set",
        details: Mapping[str, Any] | None = None,
    ) -> int | None:
        if action != "set" or details is not None:
            # The server records gate promotions and rollbacks itself (record_gate, rollback_alias).
            raise InvalidArgument("through a server an alias move is a plain 'set' without details; promote "
                                  "with record_gate and roll back with rollback_alias", field="action")
        body = {"version": version, "idempotency_key": uuid.uuid4().hex}
        previous: int | None = self._call("PUT", self._alias_path(project, name, alias), json=body)["previous"]
        return previous

    def delete_alias(self, project: str, name: str, alias: str) -> None:
        self._call("DELETE", self._alias_path(project, name, alias), done_if_missing=True)

    def alias_history(self, project: str, name: str, alias: str) -> list[AliasMove]:
        answer = self._call("GET", f"{self._alias_path(project, name, alias)}/history")
        return msgspec.convert(answer, list[AliasMove])

    def rollback_alias(self, project: str, name: str, alias: str) -> tuple[int, int]:
        answer = self._call("POST", f"{self._alias_path(project, name, alias)}/rollback",
                            json={"idempotency_key": uuid.uuid4().hex})
        return int(answer["from"]), int(answer["to"])

    # ------------------------------------------------------------------- gates

    def record_gate(
        self, project: str, name: str, version: int, alias: str, *, champion_version: int | None,
        passed: bool, forced: bool, reason: str, report: Mapping[str, Any], move_alias: bool,
        against: str | None = None,
    ) -> GateEvaluation:
        body = {
            "alias": alias, "champion_version": champion_version, "passed": bool(passed), "forced": bool(forced),
            "reason": reason, "report": _plain(report), "move_alias": bool(move_alias), "against": against,
            "idempotency_key": uuid.uuid4().hex,
        }
        answer = self._call("POST", f"{self._version_path(project, name, version)}/gates", json=body)
        return msgspec.convert(answer, GateEvaluation)

    def list_gate_evaluations(
        self, project: str, name: str, version: int | None = None
    ) -> list[GateEvaluation]:
        params = None if version is None else {"version": version}
        answer = self._call("GET", f"{self._model_path(project, name)}/gates", params=params)
        return msgspec.convert(answer, list[GateEvaluation])
