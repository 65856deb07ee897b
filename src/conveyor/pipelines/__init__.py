"""Pipelines: reusable steps, content-hash caching, resume, parallel and Ray execution.

Example::

    from conveyor import pipeline, step

    @step
    def double(x: int) -> int:
        return 2 * x

    @pipeline
    def twice(x: int = 1):
        return double(double(x))

    run = twice.run(x=3)
    run.output()            # 12

See ``docs/pipelines.md``.
"""

from __future__ import annotations

from conveyor.pipelines.executors import Executor, InProcessExecutor, ProcessExecutor
from conveyor.pipelines.graph import Node, Pipeline, pipeline
from conveyor.pipelines.results import PipelineRun, StepRun, StepStatus, load_pipeline_run
from conveyor.pipelines.serializers import Serializer, register_serializer
from conveyor.pipelines.steps import Step, step


def resume(run_id: str, *, executor: object = None) -> PipelineRun:
    """Re-run only the failed and not-yet-run steps of pipeline run ``run_id``."""
    from conveyor.pipelines.launch import resume_pipeline

    return resume_pipeline(run_id, executor=executor)


__all__ = [
    "Executor",
    "InProcessExecutor",
    "Node",
    "Pipeline",
    "PipelineRun",
    "ProcessExecutor",
    "Serializer",
    "Step",
    "StepRun",
    "StepStatus",
    "load_pipeline_run",
    "pipeline",
    "register_serializer",
    "resume",
    "step",
]
