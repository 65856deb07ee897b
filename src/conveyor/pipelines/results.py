"""What a pipeline run hands back: per-step status, cache keys, timing and lazy outputs."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.entities import RunStatus
from conveyor.core.errors import InvalidArgument
from conveyor.pipelines.serializers import StoredValue

PIPELINE_TAG = "conveyor.pipeline"
SOURCE_TAG = "conveyor.pipeline.source"
STEPS_TAG = "conveyor.pipeline.steps"
PARAMS_TAG = "conveyor.pipeline.params"
RESULT_TAG = "conveyor.pipeline.outputs"
STEP_TAG = "conveyor.step"
KEY_TAG = "conveyor.cache.key"
HIT_TAG = "conveyor.cache.hit"
SOURCE_RUN_TAG = "conveyor.cache.source_run"
ATTEMPTS_TAG = "conveyor.step.attempts"  # also written by the worker (worker.ATTEMPTS_TAG)
ERROR_TAG = "conveyor.step.error"


class StepStatus(enum.StrEnum):
    PENDING = "pending"  # never started (the run was interrupted)
    SUCCEEDED = "succeeded"
    CACHED = "cached"  # outputs reused from an earlier run with the same key
    REUSED = "reused"  # finished in the run being resumed
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream step failed

    @property
    def ok(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.REUSED)


@dataclass(frozen=True)
class StepRun:
    """One step of a pipeline run."""

    name: str
    status: StepStatus
    run_id: str | None = None
    cache_key: str = ""
    cache_hit: bool = False
    attempts: int = 0
    start_time: int | None = None
    end_time: int | None = None
    error: str = ""
    outputs: tuple[StoredValue, ...] = ()

    @property
    def duration_ms(self) -> int | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    def load(self, index: int = 0) -> Any:
        """Output ``index`` of this step, read from the artifact store (hash verified)."""
        from conveyor.pipelines.worker import load_value
        from conveyor.tracking import fluent

        if not self.outputs:
            raise InvalidArgument(f"step {self.name!r} has no stored outputs ({self.status})", field="step")
        if not 0 <= index < len(self.outputs):
            raise InvalidArgument(
                f"step {self.name!r} has {len(self.outputs)} outputs; there is no output {index}",
                field="index",
            )
        return load_value(fluent.client().content, self.outputs[index])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status.value, "run_id": self.run_id,
            "cache_key": self.cache_key, "cache_hit": self.cache_hit, "attempts": self.attempts,
            "start_time": self.start_time, "end_time": self.end_time,
            "duration_ms": self.duration_ms, "error": self.error,
            "outputs": [o.digest for o in self.outputs],
        }


@dataclass(frozen=True)
class PipelineRun:
    """A run of a pipeline: a tracked run whose child runs are its steps."""

    id: str
    pipeline: str
    status: RunStatus
    params: Mapping[str, Any]
    steps: Mapping[str, StepRun]
    result_refs: tuple[tuple[str, int], ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> StepRun:
        try:
            return self.steps[name]
        except KeyError:
            raise InvalidArgument(f"run {self.id} has no step {name!r}", field="step") from None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.FINISHED

    def output(self, index: int = 0) -> Any:
        """Output ``index`` of what the pipeline function returned, loaded now."""
        if not self.result_refs:
            raise InvalidArgument(f"pipeline {self.pipeline!r} returns nothing", field="index")
        if not 0 <= index < len(self.result_refs):
            raise InvalidArgument(f"the pipeline has {len(self.result_refs)} outputs", field="index")
        node, i = self.result_refs[index]
        return self[node].load(i)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "pipeline": self.pipeline, "status": self.status.value,
            "params": dict(self.params), "metrics": dict(self.metrics),
            "steps": [s.to_dict() for s in self.steps.values()],
        }


def load_pipeline_run(run_id: str) -> PipelineRun:
    """Rebuild a :class:`PipelineRun` from the tracked runs."""
    from conveyor.pipelines.worker import OUTPUTS_TAG, decode_outputs
    from conveyor.tracking import fluent

    client = fluent.client()
    parent = client.get_run(run_id)
    if PIPELINE_TAG not in parent.tags:
        raise InvalidArgument(f"run {run_id} is not a pipeline run", field="run_id")
    names = json.loads(parent.tags.get(STEPS_TAG, "[]"))
    children = _children(client, parent.project, run_id)
    steps: dict[str, StepRun] = {n: StepRun(n, StepStatus.PENDING) for n in names}
    for child in sorted(children, key=lambda r: r.start_time):
        name = child.tags.get(STEP_TAG, child.name)
        hit = child.tags.get(HIT_TAG) == "true"
        if child.status is RunStatus.FINISHED:
            status = StepStatus.CACHED if hit else StepStatus.SUCCEEDED
        elif child.status is RunStatus.RUNNING:
            status = StepStatus.PENDING
        else:
            status = StepStatus.FAILED
        outputs = decode_outputs(child.tags[OUTPUTS_TAG]) if OUTPUTS_TAG in child.tags else ()
        steps[name] = StepRun(
            name, status, child.id, child.tags.get(KEY_TAG, ""), hit,
            int(child.tags.get(ATTEMPTS_TAG, "0") or 0), child.start_time, child.end_time,
            "" if status.ok else child.tags.get(ERROR_TAG, ""), outputs,  # not a retried-away error
        )
    failed = {n for n, s in steps.items() if s.status is StepStatus.FAILED}
    if failed and parent.status.is_terminal:
        steps = {
            n: StepRun(n, StepStatus.SKIPPED) if s.status is StepStatus.PENDING else s
            for n, s in steps.items()
        }
    refs = tuple(tuple(r) for r in json.loads(parent.tags.get(RESULT_TAG, "[]")))
    return PipelineRun(
        parent.id, parent.tags[PIPELINE_TAG], parent.status,
        json.loads(parent.tags.get(PARAMS_TAG, "{}")), steps, refs,
        {k: v for k, v in parent.metrics.items() if not k.startswith("system/")},
    )


def _children(client: Any, project: str, run_id: str) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        page = client.search_runs([project], f"attributes.parent_id = '{run_id}'", None, 1000, token)
        found.extend(page)
        token = page.next_page_token
        if not token:
            return found
