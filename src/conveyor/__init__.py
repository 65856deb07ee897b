"""Conveyor: the production line for ML models.

``import conveyor as cv`` is cheap: the public names below are loaded on first
use, so no pandas, SQLAlchemy or NumPy is imported until a call needs them.

    >>> import conveyor as cv
    >>> cv.set_project("bikes")
    >>> with cv.start_run(name="baseline") as run:
    ...     cv.log_metric("rmse", 41.2)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__

_FLUENT = "conveyor.tracking.fluent"
_REGISTRY = "conveyor.registry.fluent"
_LAZY: dict[str, str] = {
    "ActiveRun": _FLUENT,
    "ArtifactFile": "conveyor.core.entities",
    "ConveyorError": "conveyor.core.errors",
    "Gate": "conveyor.registry.gate",
    "GateFailed": "conveyor.core.errors",
    "LoadedModel": "conveyor.registry.package",
    "MetricPoint": "conveyor.core.entities",
    "ModelVersion": "conveyor.stores.metadata.registry",
    "Project": "conveyor.core.entities",
    "Run": "conveyor.core.entities",
    "RunStatus": "conveyor.core.entities",
    "Signature": "conveyor.registry.signature",
    "TrackingClient": "conveyor.tracking.client",
    "active_run": _FLUENT,
    "client": _FLUENT,
    "configure": _FLUENT,
    "delete_tag": _FLUENT,
    "download_artifacts": _FLUENT,
    "end_run": _FLUENT,
    "evaluate": _REGISTRY,
    "flush": _FLUENT,
    "get_metric_history": _FLUENT,
    "get_project": _FLUENT,
    "get_run": _FLUENT,
    "list_projects": _FLUENT,
    "log_input": "conveyor.data.api",
    "load_model": _REGISTRY,
    "log_artifact": _FLUENT,
    "log_artifacts": _FLUENT,
    "log_batch": _FLUENT,
    "log_dict": _FLUENT,
    "log_metric": _FLUENT,
    "log_metrics": _FLUENT,
    "log_model": _REGISTRY,
    "log_param": _FLUENT,
    "log_params": _FLUENT,
    "log_text": _FLUENT,
    "pipeline": "conveyor.pipelines",
    "models": _REGISTRY,
    "search_runs": _FLUENT,
    "set_project": _FLUENT,
    "set_tag": _FLUENT,
    "set_tags": _FLUENT,
    "start_run": _FLUENT,
    "step": "conveyor.pipelines",
}

# Service namespaces: ``cv.data.log(...)``, ``cv.monitoring.drift(...)``. Imported on first use, like the names above.
_NAMESPACES: dict[str, str] = {
    "automation": "conveyor.automation",
    "data": "conveyor.data",
    "monitoring": "conveyor.monitoring",
}

__all__ = sorted([*_LAZY, *_NAMESPACES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _NAMESPACES:
        value: Any = importlib.import_module(_NAMESPACES[name])
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from conveyor import data
    from conveyor.core.entities import ArtifactFile, MetricPoint, Project, Run, RunStatus
    from conveyor.core.errors import ConveyorError, GateFailed
    from conveyor.data.api import log_input
    from conveyor.pipelines import pipeline, step
    from conveyor.registry.fluent import evaluate, load_model, log_model, models
    from conveyor.registry.gate import Gate
    from conveyor.registry.package import LoadedModel
    from conveyor.registry.signature import Signature
    from conveyor.stores.metadata.registry import ModelVersion
    from conveyor.tracking.client import TrackingClient
    from conveyor.tracking.fluent import (
        ActiveRun,
        active_run,
        client,
        configure,
        delete_tag,
        download_artifacts,
        end_run,
        flush,
        get_metric_history,
        get_project,
        get_run,
        list_projects,
        log_artifact,
        log_artifacts,
        log_batch,
        log_dict,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        search_runs,
        set_project,
        set_tag,
        set_tags,
        start_run,
    )
