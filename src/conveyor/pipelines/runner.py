"""The one runner: caching, retries, failure propagation, tracking and lineage.

Mechanism (where a step runs) is an :class:`~conveyor.pipelines.executors.Executor`;
everything else is decided here, in the driver process:

- Each pipeline run is a tracked run; each step run a child run, created before
  the step is submitted so a worker that dies leaves a run the runner can mark
  FAILED (it is never FINISHED: only the worker sets that, after the outputs are
  stored).
- Before a step runs, its cache key is computed from its code, parameters, input
  digests and declared files. A FINISHED step run carrying that key as its cache
  entry is a hit: its outputs are reused and the step does not run. The keys of
  all the steps that became ready together (a level of the DAG) are looked up in
  one query, and a hit is recorded as a child run created already FINISHED, in
  one transaction.
- Several trials of a sweep share one scheduler, so a step with the same key in
  two trials (or twice in one) runs once and the other takes its outputs.
- A failed step is retried with doubling backoff; when it finally fails its
  descendants are skipped while independent branches go on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import time
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.entities import Run, RunStatus
from conveyor.core.errors import ConveyorWarning, InvalidArgument, InvalidState
from conveyor.core.ids import now_ms
from conveyor.pipelines import results as r
from conveyor.pipelines.executors import Executor, WorkerLost, open_executor
from conveyor.pipelines.graph import (
    Const,
    Node,
    OutputRef,
    ParamRef,
    Pipeline,
    canonical_json,
)
from conveyor.pipelines.hashing import cache_key, code_fingerprint, file_digest
from conveyor.pipelines.results import PipelineRun, StepRun, StepStatus
from conveyor.pipelines.serializers import StoredValue
from conveyor.pipelines.worker import (
    CACHE_ENTRY_TAG,
    OUTPUTS_TAG,
    StepOutcome,
    StepRef,
    StepTask,
    decode_outputs,
    encode_outputs,
    execute_step,
)

_MAX_ERROR = 2000


@dataclass
class _Job:
    """The runner's bookkeeping for one step of one trial."""

    trial: Trial
    node: Node
    status: StepStatus = StepStatus.PENDING
    run_id: str | None = None
    key: str = ""
    hit: bool = False
    attempts: int = 0
    start_time: int | None = None
    end_time: int | None = None
    error: str = ""
    outputs: tuple[StoredValue, ...] = ()
    inputs: dict[str, StoredValue] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    follow: bool = True  # may wait for an identical step that is running
    unbound: str = ""  # why its inputs could not be bound (e.g. a declared file is missing)
    run: Run | None = None  # its run as created, handed to the worker of the first attempt

    @property
    def done(self) -> bool:
        return self.status not in (StepStatus.PENDING,)

    def result(self) -> StepRun:
        return StepRun(
            self.node.name, self.status, self.run_id, self.key, self.hit, self.attempts,
            self.start_time, self.end_time, self.error, self.outputs,
        )


@dataclass
class Trial:
    pipeline: Pipeline
    params: dict[str, Any]
    project: str
    run_id: str = ""
    reused: dict[str, tuple[str, tuple[StoredValue, ...]]] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)


class Runner:
    """Runs trials (pipeline runs) to completion on one executor."""

    def __init__(self, executor: Any = None, *, no_cache: bool = False) -> None:
        from conveyor.tracking import fluent

        self.client = fluent.client()
        self.executor_spec = executor
        self.no_cache = no_cache
        self._fingerprints: dict[int, str] = {}
        self._leaders: dict[str, _Job] = {}
        self._followers: dict[str, list[_Job]] = {}
        self._ready: deque[_Job] = deque()
        self._delayed: list[tuple[float, int, _Job]] = []
        self._inflight: dict[Future[StepOutcome], _Job] = {}
        self._seq = itertools.count()
        # Cache entries read ahead: (project, key) -> a FINISHED step run that published the key.
        self._entries: dict[tuple[str, str], Any] = {}
        self._scanned: set[str] = set()  # pipeline runs whose step runs' entries were read ahead

    # -- driving ---------------------------------------------------------------

    def run(self, trials: Sequence[Trial]) -> list[PipelineRun]:
        executor, owned = open_executor(self.executor_spec)  # a bad executor fails before any run
        preload = getattr(executor, "preload", None)
        if callable(preload):
            preload([StepRef.of(n.step) for t in trials for n in t.pipeline.nodes])
        try:
            try:
                for trial in trials:
                    self._open(trial)
                self._scanned.update(t.run_id for t in trials)  # their entries are being written now
                self._loop(executor)
            except BaseException:
                self._abort(trials)
                raise
        finally:
            if owned:
                executor.shutdown(wait=True, cancel_futures=True)
        return [self._close(trial) for trial in trials]

    def _loop(self, executor: Executor) -> None:
        while True:
            while self._ready:  # one batch per level: children of hits join the next one
                batch = list(self._ready)
                self._ready.clear()
                hits = self._prepare(batch)
                for job in batch:
                    self._start(job, executor, hits)
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                self._submit(heapq.heappop(self._delayed)[2], executor)
            if self._ready:
                continue
            if not self._inflight:
                if not self._delayed:
                    return
                time.sleep(max(0.0, self._delayed[0][0] - now))
                continue
            timeout = max(0.0, self._delayed[0][0] - now) if self._delayed else None
            done, _ = wait(list(self._inflight), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                self._finish(self._inflight.pop(future), future)

    # -- trials ----------------------------------------------------------------

    def _open(self, trial: Trial) -> None:
        pipeline = trial.pipeline
        trial.children = pipeline.downstream()
        trial.jobs = {n.name: _Job(trial, n) for n in pipeline.nodes}
        if not trial.run_id:
            from conveyor.tracking import fluent

            active = fluent.active_run()
            source = pipeline.source
            tags = {
                r.PIPELINE_TAG: pipeline.name,
                r.STEPS_TAG: json.dumps([n.name for n in pipeline.nodes]),
                r.PARAMS_TAG: canonical_json(trial.params, "params"),
                r.RESULT_TAG: json.dumps([[o.node, o.index] for o in pipeline.outputs]),
            }
            if source is not None:
                tags[r.SOURCE_TAG] = json.dumps([source.module, source.qualname, source.file])
            run = self.client.create_run(
                trial.project, name=pipeline.name, tags=tags,
                parent_id=active.id if active is not None else None,
                params={k: _text(v) for k, v in trial.params.items()},
            )
            trial.run_id = run.id
        for job in trial.jobs.values():
            if not job.node.upstream:
                self._ready.append(job)

    def _close(self, trial: Trial) -> PipelineRun:
        failed = any(j.status is StepStatus.FAILED for j in trial.jobs.values())
        metrics: dict[str, float] = {}
        children = r._children(self.client, trial.project, trial.run_id)
        for child in sorted(children, key=lambda c: c.start_time):
            metrics.update({k: v for k, v in child.metrics.items() if not k.startswith("system/")})
        if metrics:
            self.client.log_metrics(trial.run_id, metrics)
        status = RunStatus.FAILED if failed else RunStatus.FINISHED
        self.client.finish_run(trial.run_id, status)
        steps = {name: job.result() for name, job in trial.jobs.items()}
        return PipelineRun(
            trial.run_id, trial.pipeline.name, status, dict(trial.params), steps,
            tuple((o.node, o.index) for o in trial.pipeline.outputs), metrics,
        )

    def _abort(self, trials: Sequence[Trial]) -> None:
        """The driver is stopping (Ctrl-C, a bug): nothing is left RUNNING."""
        for trial in trials:
            for job in trial.jobs.values():
                if job.run_id and not job.done:
                    self._end(job.run_id, RunStatus.KILLED)
            if trial.run_id:
                self._end(trial.run_id, RunStatus.KILLED)

    def _end(self, run_id: str, status: RunStatus) -> None:
        with contextlib.suppress(InvalidState):  # it ended already (e.g. FINISHED by its worker)
            self.client.finish_run(run_id, status)

    # -- one step --------------------------------------------------------------

    def _prepare(self, jobs: Sequence[_Job]) -> dict[tuple[str, str], Any]:
        """Bind every job, then look the cache keys of all of them up at once (per project)."""
        wanted: dict[str, set[str]] = {}
        for job in jobs:
            try:
                self._bind(job)
            except InvalidArgument as exc:  # recorded by _start, not raised
                job.unbound = f"{type(exc).__name__}: {exc}"
                continue
            if self._uses_cache(job) and job.node.name not in job.trial.reused:
                wanted.setdefault(job.trial.project, set()).add(job.key)
        return {
            (project, key): source
            for project, keys in wanted.items()
            for key, source in self._lookup(project, keys).items()
        }

    def _uses_cache(self, job: _Job) -> bool:
        return job.node.step.options.cache and not self.no_cache

    def _start(self, job: _Job, executor: Executor, hits: dict[tuple[str, str], Any]) -> None:
        trial, node = job.trial, job.node
        if job.unbound:
            error, job.unbound = job.unbound, ""
            run = self.client.create_run(
                trial.project, name=node.name, parent_id=trial.run_id, status=RunStatus.FAILED,
                tags={r.STEP_TAG: node.name, r.HIT_TAG: "false", r.ERROR_TAG: error[:_MAX_ERROR]},
            )
            job.run_id = run.id
            self._fail(job, error)
            return
        reused = trial.reused.get(node.name)
        if reused is not None:
            job.run_id, job.outputs = reused
            job.status = StepStatus.REUSED
            self._succeeded(job)
            return
        if self._uses_cache(job):
            source = hits.get((trial.project, job.key))
            if source is not None:
                self._record_hit(job, source)
                return
            leader = self._leaders.get(job.key)
            if leader is not None and job.follow and leader is not job:
                self._followers.setdefault(job.key, []).append(job)
                return
            self._leaders[job.key] = job
        job.start_time = now_ms()
        run = self.client.create_run(
            trial.project, name=node.name, parent_id=trial.run_id,
            tags={r.STEP_TAG: node.name, r.KEY_TAG: job.key, r.HIT_TAG: "false"},
            params={k: _text(v) for k, v in job.params.items()},
        )
        job.run_id, job.run = run.id, run
        self._submit(job, executor)

    def _bind(self, job: _Job) -> None:
        trial, node = job.trial, job.node
        step = node.step
        params: dict[str, Any] = {}
        for pname, binding in node.inputs:
            if isinstance(binding, OutputRef):
                job.inputs[pname] = trial.jobs[binding.node].outputs[binding.index]
            elif isinstance(binding, ParamRef):
                params[pname] = trial.params[binding.name]
            elif isinstance(binding, Const):
                params[pname] = binding.value
        job.params = params
        files = {
            name: file_digest(params.get(name), f"{node.name}.{name}") for name in step.options.files
        }
        fingerprint = self._fingerprints.get(id(step))
        if fingerprint is None:
            fingerprint = self._fingerprints[id(step)] = code_fingerprint(step.fn)
        job.key = cache_key(
            fingerprint,
            {k: canonical_json(v, f"{node.name}.{k}") for k, v in params.items()},
            {k: v.digest for k, v in job.inputs.items()},
            files,
            step.n_outputs,
        )

    def _lookup(self, project: str, keys: set[str]) -> dict[str, Any]:
        """The FINISHED run that published each key, if its output blobs are all still stored.

        A hit usually comes from an earlier run of the same pipeline, whose other
        steps published the keys the next levels will ask for: the first hit from
        a pipeline run reads the entries of all its steps in one query, so a
        cached chain does not pay one look-up per step.
        """
        found = {k: self._entries[(project, k)] for k in keys if (project, k) in self._entries}
        missing = sorted(k for k in keys if k not in found)
        if missing:  # straight to the store: the client's search also reaps stale runs, a write per call
            fetched = self.client.store.find_runs_by_tag(
                project, CACHE_ENTRY_TAG, missing, status=RunStatus.FINISHED
            )
            found.update(fetched)
            self._entries.update(((project, k), source) for k, source in fetched.items())
        self._read_ahead(project, {source.parent_id for source in found.values()})
        content = self.client.content
        usable = {}
        for key, source in found.items():
            outputs = source.tags.get(OUTPUTS_TAG)
            if outputs is not None and all(content.exists(o.digest) for o in decode_outputs(outputs)):
                usable[key] = source
            else:  # its blobs were removed: a miss, and asked again next time
                self._entries.pop((project, key), None)
        return usable

    def _read_ahead(self, project: str, parents: set[str | None]) -> None:
        for parent in parents:
            if parent is None or parent in self._scanned:
                continue
            self._scanned.add(parent)
            token = None
            while True:
                page = self.client.store.search_runs(
                    [project], f"attributes.parent_id = '{parent}' and attributes.status = 'FINISHED'",
                    None, 1000, token,
                )
                for run in page:
                    key = run.tags.get(CACHE_ENTRY_TAG)
                    if key is not None:
                        self._entries.setdefault((project, key), run)
                token = page.next_page_token
                if not token:
                    break

    def _record_hit(self, job: _Job, source: Any, outputs: tuple[StoredValue, ...] | None = None) -> None:
        trial, node = job.trial, job.node
        job.outputs = outputs if outputs is not None else decode_outputs(source.tags[OUTPUTS_TAG])
        job.hit, job.status = True, StepStatus.CACHED
        job.start_time = job.end_time = now_ms()
        # One transaction: the run is born FINISHED with its tags, params, lineage and the source's metrics.
        run = self.client.create_run(
            trial.project, name=node.name, parent_id=trial.run_id,
            tags={
                r.STEP_TAG: node.name, r.KEY_TAG: job.key, r.HIT_TAG: "true",
                r.SOURCE_RUN_TAG: source.id, OUTPUTS_TAG: encode_outputs(job.outputs),
            },
            params={k: _text(v) for k, v in job.params.items()},
            metrics={k: v for k, v in source.metrics.items() if not k.startswith("system/")},
            status=RunStatus.FINISHED, start_time=job.start_time, end_time=job.end_time,
            inputs=[("artifact", d) for d in dict.fromkeys(v.digest for v in job.inputs.values())],
            outputs=[("artifact", d) for d in dict.fromkeys(v.digest for v in job.outputs)],
        )
        job.run_id = run.id
        self._succeeded(job)

    def _submit(self, job: _Job, executor: Executor) -> None:
        step = job.node.step
        job.attempts += 1
        task = StepTask(
            ref=StepRef.of(step),
            node=job.node.name,
            run_id=job.run_id or "",
            metadata_uri=self.client.settings.metadata_uri,
            artifacts_uri=self.client.settings.artifacts_uri,
            inputs=dict(job.inputs),
            params=dict(job.params),
            cache_key=job.key,
            publish=step.options.cache,
            timeout=step.options.timeout,
            attempt=job.attempts,
            run=job.run,
        )
        try:
            future = executor.submit(execute_step, task, resources=dict(step.options.resources))
        except Exception as exc:  # e.g. the task cannot be sent to the worker
            future = Future()
            future.set_exception(exc)
        self._inflight[future] = job

    def _finish(self, job: _Job, future: Future[StepOutcome]) -> None:
        try:
            outcome = future.result()
        except WorkerLost as exc:
            outcome = StepOutcome(False, error=f"WorkerLost: {exc}")
        except Exception as exc:
            outcome = StepOutcome(False, error=f"{type(exc).__name__}: {exc}")
        for message in outcome.warnings:
            warnings.warn(f"step {job.node.name!r}: {message}", ConveyorWarning, stacklevel=2)
        run_id = job.run_id or ""
        self.client.release_run(run_id)  # the worker ended it (or died): no more heartbeats from here
        if outcome.started:  # time on the worker, not the wait for one
            job.start_time = outcome.started
        if outcome.ok:
            job.outputs, job.status = outcome.outputs, StepStatus.SUCCEEDED
            job.end_time = outcome.ended or now_ms()
            self._succeeded(job)
            if self._leaders.get(job.key) is job:
                del self._leaders[job.key]  # later look-ups find its cache entry
            for follower in self._followers.pop(job.key, []):
                self._follow(follower, job)
            return
        # a worker that died leaves its run RUNNING: it is FAILED, never FINISHED
        tags = {r.ATTEMPTS_TAG: job.attempts, r.ERROR_TAG: outcome.error[:_MAX_ERROR]}
        try:
            self.client.finish_run(run_id, RunStatus.FAILED, tags=tags)
        except InvalidState:  # it ended otherwise already: only say why this attempt failed
            self.client.set_tags(run_id, tags)
        if outcome.traceback:
            self.client.log_text(run_id, outcome.traceback, f"logs/traceback-attempt{job.attempts}.txt")
        step = job.node.step
        if job.attempts <= step.options.retries:
            delay = step.options.retry_delay * 2 ** (job.attempts - 1)
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), job))
            return
        self._fail(job, outcome.error)
        if self._leaders.get(job.key) is job:
            del self._leaders[job.key]
        for follower in self._followers.pop(job.key, []):
            follower.follow = False  # run it on its own
            self._ready.append(follower)

    def _follow(self, job: _Job, leader: _Job) -> None:
        source = self.client.store.get_run(leader.run_id or "", with_artifacts=False)
        self._record_hit(job, source, leader.outputs)

    def _succeeded(self, job: _Job) -> None:
        # Its lineage is recorded already: with the run's FINISHED by its worker, or with a hit's run.
        trial = job.trial
        for child_name in trial.children[job.node.name]:
            child = trial.jobs[child_name]
            if child.status is StepStatus.PENDING and all(trial.jobs[u].status.ok for u in child.node.upstream):
                self._ready.append(child)

    def _fail(self, job: _Job, error: str) -> None:
        job.status, job.error, job.end_time = StepStatus.FAILED, error, now_ms()
        trial = job.trial
        stack = list(trial.children[job.node.name])
        while stack:
            child = trial.jobs[stack.pop()]
            if child.status is StepStatus.PENDING:
                child.status = StepStatus.SKIPPED
                child.error = f"upstream step {job.node.name!r} failed"
                stack.extend(trial.children[child.node.name])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
