"""``cv.models``: the registry as a namespace, on the current project.

Example::

    import conveyor as cv
    cv.models.set_alias("bike-demand", "challenger", version=3)
    cv.models.promote("bike-demand", version=3, to="champion",
                      gate={"rules": ["rmse <= champion.rmse * 0.98"], "dataset": holdout, "target": "cnt"})
    cv.models.rollback("bike-demand", alias="champion")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.registry.gate import Gate
from conveyor.registry.service import LineageGraph, ModelRegistry
from conveyor.stores.metadata.registry import GateEvaluation, ModelVersion, RegisteredModel

__all__ = [
    "Gate", "alias_history", "archive", "delete_alias", "delete_version", "evaluations", "get_model",
    "get_version", "lineage", "list_models", "list_versions", "promote", "registry", "restore", "rollback",
    "search", "set_alias", "set_gate", "update_model", "update_version",
]


def registry(project: str | None = None) -> ModelRegistry:
    """The registry of ``project`` (default: the current one) over the fluent client's stores."""
    from conveyor.tracking import fluent

    client = fluent.client()
    return ModelRegistry(client.store, client.content, project or fluent.get_project())


def get_model(name: str) -> RegisteredModel:
    return registry().get_model(name)


def get_version(name: str, version: int | str) -> ModelVersion:
    """A version by number, ``"latest"`` or alias name."""
    return registry().get_version(name, version)


def list_models(max_results: int = 100, page_token: str | None = None) -> Any:
    """A page of registered models in name order (``.next_page_token`` for the next)."""
    return registry().list_models(max_results, page_token)


def search(query: str | None = None, *, tag: tuple[str, str] | None = None, max_results: int = 100,
           page_token: str | None = None) -> Any:
    """Models whose name contains ``query`` and/or that carry tag ``(key, value)``."""
    return registry().search(query, tag=tag, max_results=max_results, page_token=page_token)


def list_versions(name: str, *, include_archived: bool = True, max_results: int = 100,
                  page_token: str | None = None) -> Any:
    """A page of versions of ``name``, newest first."""
    return registry().list_versions(name, include_archived=include_archived, max_results=max_results,
                                    page_token=page_token)


def update_model(name: str, *, description: str | None = None,
                 tags: Mapping[str, str] | None = None) -> RegisteredModel:
    """Change a model's description and/or merge tags into its tags (audited)."""
    reg = registry()
    return reg.records.update_model(reg.project, name, description=description, tags=tags)


def update_version(name: str, version: int, *, description: str | None = None,
                   tags: Mapping[str, str] | None = None) -> ModelVersion:
    """Change a version's description and/or merge tags into its tags (audited)."""
    reg = registry()
    return reg.records.update_version(reg.project, name, version, description=description, tags=tags)


def set_alias(name: str, alias: str, version: int) -> ModelVersion:
    """Point ``alias`` at ``version`` without a gate (audited; archived versions refused)."""
    return registry().set_alias(name, alias, version)


def delete_alias(name: str, alias: str) -> None:
    registry().delete_alias(name, alias)


def alias_history(name: str, alias: str) -> list[Any]:
    reg = registry()
    return reg.records.alias_history(reg.project, name, alias)


def archive(name: str, version: int) -> ModelVersion:
    return registry().archive(name, version)


def restore(name: str, version: int) -> ModelVersion:
    return registry().restore(name, version)


def delete_version(name: str, version: int) -> None:
    """Delete a version's record (refused while it holds an alias)."""
    registry().delete_version(name, version)


def set_gate(name: str, gate: Gate | Mapping[str, Any] | str | None) -> RegisteredModel:
    """Declare the promotion gate of ``name`` (a Gate, a dict or a YAML/TOML policy file)."""
    return registry().set_gate(name, gate)


def promote(name: str, version: int, to: str = "champion", *, gate: Gate | Mapping[str, Any] | str | None = None,
            force: bool = False, reason: str | None = None, against: str | None = None) -> GateEvaluation:
    """Move ``to`` onto ``version`` through the gate; raises GateFailed with the report if it fails.

    ``against`` names the alias whose holder the candidate must beat (default: ``to``).
    """
    return registry().promote(name, version, to, gate=gate, force=force, reason=reason, against=against)


def rollback(name: str, alias: str = "champion") -> ModelVersion:
    """Move ``alias`` back to its previous holder."""
    return registry().rollback(name, alias)


def evaluations(name: str, version: int | None = None) -> list[GateEvaluation]:
    """The recorded gate evaluations of ``name`` (of one version if given)."""
    return registry().evaluations(name, version)


def lineage(uri: str) -> LineageGraph:
    """Run, datasets, code commit and environment of ``models:/NAME/N`` as a graph."""
    return registry().lineage(uri)
