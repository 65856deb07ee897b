"""The registry store interface and the records it returns.

The model registry service (``conveyor.registry``) talks to this Protocol only;
``SqlMetadataStore.registry`` implements it on SQLite and PostgreSQL. Every
method that changes state appends an audit event in the same transaction, and
either applies completely or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.core.entities import Page

#: The status of a version that can be loaded, aliased and promoted.
READY = "ready"
#: A retired version: still loadable by number, never the target of an alias.
ARCHIVED = "archived"


@dataclass(frozen=True)
class RegisteredModel:
    """A named model in a project; its versions are numbered 1, 2, 3 ..."""

    id: str
    project: str
    name: str
    description: str
    tags: dict[str, str]
    created_at: int
    updated_at: int
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None
    gate: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelVersion:
    """One immutable package of a registered model."""

    id: str
    project: str
    name: str
    version: int
    status: str
    description: str
    tags: dict[str, str]
    run_id: str | None
    flavour: str
    format: str
    package_digest: str
    signature: dict[str, Any] | None
    info: dict[str, Any]
    created_by: str
    created_at: int
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``, what :func:`conveyor.load_model` takes."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class AliasMove:
    """One entry of an alias's history (``version`` is ``None`` when it was removed)."""

    alias: str
    action: str
    version: int | None
    previous: int | None
    actor: str
    at: int


@dataclass(frozen=True)
class GateEvaluation:
    """A promotion gate that ran: its verdict and the report of every rule."""

    id: str
    name: str
    version: int
    alias: str
    champion_version: int | None
    passed: bool
    forced: bool
    reason: str
    report: dict[str, Any]
    actor: str
    at: int


class RegistryStore(Protocol):
    """Registered models, versions, aliases and gate records of one metadata store."""

    def create_model(
        self, project: str, name: str, *, description: str = "",
        tags: Mapping[str, str] | None = None, exist_ok: bool = False,
    ) -> RegisteredModel: ...
    def get_model(self, project: str, name: str) -> RegisteredModel: ...
    def list_models(
        self, project: str, *, name_contains: str | None = None, tag: tuple[str, str] | None = None,
        max_results: int = 100, page_token: str | None = None,
    ) -> Page: ...
    def update_model(
        self, project: str, name: str, *, description: str | None = None,
        tags: Mapping[str, str] | None = None, gate: Mapping[str, Any] | None = None,
    ) -> RegisteredModel: ...
    def create_version(
        self, project: str, name: str, *, flavour: str, format: str, package_digest: str,
        signature: Mapping[str, Any] | None, info: Mapping[str, Any], run_id: str | None = None,
        description: str = "", tags: Mapping[str, str] | None = None,
    ) -> ModelVersion: ...
    def get_version(self, project: str, name: str, version: int | str) -> ModelVersion: ...
    def list_versions(
        self, project: str, name: str, *, include_archived: bool = True,
        max_results: int = 100, page_token: str | None = None,
    ) -> Page: ...
    def update_version(
        self, project: str, name: str, version: int, *, description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion: ...
    def set_status(self, project: str, name: str, version: int, status: str) -> ModelVersion: ...
    def delete_version(self, project: str, name: str, version: int) -> None: ...
    def set_alias(
        self, project: str, name: str, alias: str, version: int, *, action: str = "set",
        details: Mapping[str, Any] | None = None,
    ) -> int | None: ...
    def delete_alias(self, project: str, name: str, alias: str) -> None: ...
    def alias_history(self, project: str, name: str, alias: str) -> list[AliasMove]: ...
    def rollback_alias(self, project: str, name: str, alias: str) -> tuple[int, int]: ...
    def record_gate(
        self, project: str, name: str, version: int, alias: str, *, champion_version: int | None,
        passed: bool, forced: bool, reason: str, report: Mapping[str, Any], move_alias: bool,
        against: str | None = None,
    ) -> GateEvaluation:
        """Record a gate's verdict and, with ``move_alias``, move ``alias`` onto ``version``.

        ``champion_version`` is the holder of ``against`` (default: ``alias``) the gate
        compared with; if that alias has moved since, ``InvalidState`` and nothing changes.
        """
        ...
    def list_gate_evaluations(
        self, project: str, name: str, version: int | None = None
    ) -> list[GateEvaluation]: ...
