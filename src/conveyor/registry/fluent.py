"""``cv.log_model``, ``cv.load_model``, ``cv.evaluate`` and the ``cv.models`` namespace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.registry import models
from conveyor.registry.evaluate import Evaluation, score
from conveyor.registry.package import LoadedModel
from conveyor.stores.metadata.registry import ModelVersion

__all__ = ["evaluate", "load_model", "log_model", "models"]


def log_model(
    model: Any,
    name: str,
    *,
    input_example: Any = None,
    signature: Any = None,
    format: str | None = None,
    datasets: Mapping[str, Any] | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> ModelVersion:
    """Register ``model`` as the next version of ``name``, linked to the active run.

    The flavour is detected from the object and the signature inferred from
    ``input_example``. ``format="onnx"`` (or ``"skops"``) stores a format that does
    not run code when loaded. ``datasets`` maps a role ("train", "valid"...) to a
    dataset version or a reference ``"name@N"``.
    """
    from conveyor.tracking import fluent

    active = fluent.active_run()
    if run_id is None and active is not None:
        run_id = active.id
    project = active.project if active is not None and run_id == active.id else None
    return models.registry(project).log_model(
        model, name, input_example=input_example, signature=signature, format=format, datasets=datasets,
        run_id=run_id, description=description, tags=tags,
    )


def load_model(uri: str) -> LoadedModel:
    """Load ``models:/NAME/3``, ``models:/NAME@champion`` or ``models:/NAME/latest`` after verifying it."""
    return models.registry().load(uri)


def evaluate(
    model: Any,
    data: Any,
    *,
    target: str,
    task: str = "regression",
    slices: Sequence[str] = (),
    log: bool = True,
) -> Evaluation:
    """Score ``model`` (an object with ``predict``, or a ``models:/`` URI) on labelled ``data``.

    ``data`` is a DataFrame, a dataset version, a reference ``"name@N"`` or a
    CSV/Parquet path. The metrics are logged to the active run, if any
    (slices as ``slice/COLUMN/VALUE/METRIC``).
    """
    from conveyor.registry import datasets
    from conveyor.tracking import fluent

    if isinstance(model, str):
        model = load_model(model)
    result = score(model, datasets.frame(data, field="data"), target=target, task=task, slices=slices)
    if log and fluent.active_run() is not None:
        import math

        fluent.log_metrics({k: val for k, val in result.flat().items() if not math.isnan(val)})
    return result
