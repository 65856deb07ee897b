"""Starting pipeline runs: ``run``, ``sweep`` and ``resume`` over the one :class:`Runner`.

Parameters are resolved and checked here, before any run is recorded, so bad
input changes nothing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from conveyor.core.entities import RunStatus
from conveyor.core.errors import InvalidArgument, InvalidState
from conveyor.pipelines import results as r
from conveyor.pipelines.graph import Pipeline, canonical_json, check_value
from conveyor.pipelines.results import PipelineRun
from conveyor.pipelines.runner import Runner, Trial
from conveyor.pipelines.worker import OUTPUTS_TAG, decode_outputs


def resolve_params(pipeline: Pipeline, given: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's parameters with defaults applied, every one checked; nothing runs on error."""
    known = {p.name: p for p in pipeline.params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        expected = ", ".join(known) or "none"
        raise InvalidArgument(
            f"pipeline {pipeline.name!r} has no parameter {unknown[0]!r} (it takes: {expected})",
            field=unknown[0],
        )
    values: dict[str, Any] = {}
    for name, param in known.items():
        if name in given:
            value = given[name]
        elif param.required:
            raise InvalidArgument(
                f"pipeline {pipeline.name!r} needs parameter {name!r}; pass {name}=...", field=name
            )
        else:
            value = param.default
        check_value(value, param.annotation, name)
        canonical_json(value, name)
        values[name] = value
    return values


def _project(project: str | None) -> str:
    from conveyor.tracking import fluent

    if project is None:
        return fluent.get_project()
    return fluent.client().get_or_create_project(project).name


def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any],
    *,
    executor: Any = None,
    no_cache: bool = False,
    project: str | None = None,
) -> PipelineRun:
    values = resolve_params(pipeline, params)
    trial = Trial(pipeline, values, _project(project))
    return Runner(executor, no_cache=no_cache).run([trial])[0]


def sweep_pipeline(
    pipeline: Pipeline,
    grid: Mapping[str, Any],
    *,
    order_by: str | None = None,
    executor: Any = None,
    no_cache: bool = False,
    project: str | None = None,
) -> list[PipelineRun]:
    swept = {k: v for k, v in grid.items() if isinstance(v, list | tuple)}
    for key, values in swept.items():
        if not values:
            raise InvalidArgument(f"sweep value list for {key!r} is empty", field=key)
    fixed = {k: v for k, v in grid.items() if k not in swept}
    combos = [dict(zip(swept, combo, strict=True)) for combo in itertools.product(*swept.values())]
    sort_key, descending = _parse_order(order_by)
    trials = []
    for combo in combos:
        trials.append(Trial(pipeline, resolve_params(pipeline, {**fixed, **combo}), ""))
    name = _project(project)
    for trial in trials:
        trial.project = name
    runs = Runner(executor, no_cache=no_cache).run(trials)
    if sort_key is None:
        return runs
    missing = [run for run in runs if sort_key not in run.metrics]
    present = sorted(
        (run for run in runs if sort_key in run.metrics),
        key=lambda run: run.metrics[sort_key],
        reverse=descending,
    )
    return [*present, *missing]


def _parse_order(order_by: str | None) -> tuple[str | None, bool]:
    if order_by is None:
        return None, False
    parts = order_by.split()
    if not parts or len(parts) > 2 or not parts[0].startswith("metrics.") or len(parts[0]) <= 8:
        raise InvalidArgument(
            f"order_by {order_by!r} must look like 'metrics.rmse' or 'metrics.r2 DESC'",
            field="order_by",
        )
    direction = parts[1].upper() if len(parts) == 2 else "ASC"
    if direction not in ("ASC", "DESC"):
        raise InvalidArgument(f"order_by direction must be ASC or DESC, got {parts[1]!r}", field="order_by")
    return parts[0][len("metrics.") :], direction == "DESC"


def resume_pipeline(run_id: str, *, pipeline: Pipeline | None = None, executor: Any = None) -> PipelineRun:
    """Run again the steps of ``run_id`` that failed or never ran, reusing finished outputs."""
    from conveyor.pipelines.loading import load_from_source
    from conveyor.tracking import fluent

    client = fluent.client()
    parent = client.get_run(run_id)
    if r.PIPELINE_TAG not in parent.tags:
        raise InvalidArgument(f"run {run_id} is not a pipeline run", field="run_id")
    if parent.status is RunStatus.RUNNING:
        raise InvalidState(f"pipeline run {run_id} is still running; wait for it to end")
    if pipeline is None:
        source = json.loads(parent.tags.get(r.SOURCE_TAG, "null"))
        if not source:
            raise InvalidArgument(f"run {run_id} does not say where its pipeline is defined", field="run_id")
        pipeline = load_from_source(*source)
    names = json.loads(parent.tags.get(r.STEPS_TAG, "[]"))
    missing = [n for n in names if n not in pipeline]
    if missing:
        raise InvalidArgument(
            f"the pipeline no longer has step {missing[0]!r} that run {run_id} had", field="run_id"
        )
    if len(names) != len(pipeline):
        pipeline = pipeline.only(*names)
    params = json.loads(parent.tags.get(r.PARAMS_TAG, "{}"))
    trial = Trial(pipeline, resolve_params(pipeline, params), parent.project, run_id=run_id)
    for child in r._children(client, parent.project, run_id):
        if child.status is RunStatus.FINISHED and OUTPUTS_TAG in child.tags:
            trial.reused[child.tags.get(r.STEP_TAG, child.name)] = (child.id, decode_outputs(child.tags[OUTPUTS_TAG]))
    client.resume_run(run_id)
    return Runner(executor).run([trial])[0]
