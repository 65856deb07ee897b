"""The fluent tracking API: ``cv.start_run()``, ``cv.log_metric()``…

Names follow MLflow's fluent API so that a user switching feels at home. The
stack of active runs lives in a ``ContextVar`` (nested runs push onto it); the
default :class:`TrackingClient` is built on first use from the settings and
can be replaced with :func:`configure`.

At interpreter exit, buffered metrics are flushed and runs still open are
ended: FAILED if the program died of an uncaught exception, else FINISHED.
A process killed outright stops its heartbeat and its runs become KILLED.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any

from conveyor.core import validation as v
from conveyor.core.entities import ArtifactFile, MetricPoint, Project, Run, RunStatus
from conveyor.core.errors import InvalidArgument, InvalidState
from conveyor.core.settings import get_settings, set_settings
from conveyor.tracking.client import TrackingClient

_active: ContextVar[tuple[ActiveRun, ...]] = ContextVar("conveyor_active_runs", default=())
_project: ContextVar[str | None] = ContextVar("conveyor_project", default=None)
_client: TrackingClient | None = None
_client_lock = threading.Lock()
_open_runs: dict[str, ActiveRun] = {}  # every run started here and not ended, for atexit


class ActiveRun:
    """The run returned by :func:`start_run`; a context manager that ends it."""

    def __init__(self, run: Run) -> None:
        self.info = run
        self.id = run.id
        self.name = run.name
        self.project = run.project
        self.parent_id = run.parent_id

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name!r} id={self.id} project={self.project!r}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            status = RunStatus.FINISHED
        elif issubclass(kind, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        if self.id not in _open_runs:  # ended inside the block (cv.end_run, finish_run)
            _forget(self.id, _active.get())
            return
        # The block's result is not wanted: end without reading the run back.
        _forget(self.id, _active.get())
        client().finish_run(self.id, status)


def client() -> TrackingClient:
    """The process's tracking client, built on first use."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = TrackingClient()
    return _client


def configure(
    uri: str | None = None,
    artifacts: str | None = None,
    project: str | None = None,
    **settings: Any,
) -> None:
    """Point the fluent API at other stores (closes the current client first).

    ``settings`` overrides other :class:`~conveyor.core.settings.Settings` fields,
    e.g. ``flush_interval=0.5``.
    """
    global _client
    changes: dict[str, Any] = dict(settings)
    if uri:
        changes["metadata_uri"] = uri
    if artifacts:
        changes["artifacts_uri"] = artifacts
    if project:
        changes["project"] = v.check_name(project, "project")
    new_settings = get_settings().with_overrides(**changes) if changes else None
    with _client_lock:
        old, _client = _client, None
    if old is not None:
        old.close()
    set_settings(new_settings)
    _project.set(None)


def set_project(name: str) -> Project:
    """Use project ``name`` for new runs; it is created on first use."""
    project = client().get_or_create_project(v.check_name(name, "project"))
    _project.set(project.name)
    return project


def get_project() -> str:
    return _project.get() or client().settings.project


def active_run() -> ActiveRun | None:
    stack = _active.get()
    return stack[-1] if stack else None


def start_run(
    name: str | None = None,
    *,
    run_id: str | None = None,
    project: str | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active run.

    Use it as a context manager: leaving the block ends the run FINISHED, or
    FAILED when an exception escapes (KILLED for KeyboardInterrupt).
    """
    stack = _active.get()
    if stack and not nested and parent_run_id is None:
        raise InvalidState(
            f"run {stack[-1].id} is already active; end it with cv.end_run() or pass nested=True"
        )
    c = client()
    if run_id is not None:
        run = c.resume_run(run_id, system_metrics=log_system_metrics)
    else:
        parent = parent_run_id or (stack[-1].id if stack and nested else None)
        if project is None and parent is not None:  # a child lives in its parent's project
            project = stack[-1].project if parent == (stack[-1].id if stack else None) else c.get_run(parent).project
        run = c.create_run(
            project or get_project(),
            name=name,
            parent_id=parent,
            tags=tags,
            system_metrics=log_system_metrics,
        )
    active = ActiveRun(run)
    _active.set((*stack, active))
    _open_runs[run.id] = active
    return active


def attach_run(run: Run, *, log_system_metrics: bool | None = None) -> ActiveRun:
    """Make ``run``, RUNNING and created elsewhere, the active run without writing anything.

    The pipeline runner creates each step's run before it sends the step to a
    worker; the worker attaches that run (so ``cv.log_metric`` in the step logs
    to it) instead of resuming it, which would write RUNNING over RUNNING. Use
    it as :func:`start_run`: leaving the block ends the run.
    """
    client().attach_run(run, system_metrics=log_system_metrics)
    active = ActiveRun(run)
    _active.set((*_active.get(), active))
    _open_runs[run.id] = active
    return active


def finish_run(
    status: RunStatus | str = RunStatus.FINISHED,
    *,
    run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    inputs: Sequence[tuple[str, str]] = (),
    outputs: Sequence[tuple[str, str]] = (),
) -> None:
    """End the active run (or ``run_id``) without reading it back.

    Its buffered metrics, ``tags``, lineage (``inputs → run → outputs``, (kind,
    id) records) and status are written in one transaction, so they exist
    exactly when the run has ended (a pipeline step publishes its outputs and
    cache entry this way). If the store refuses, the run stays active.
    """
    run_id = _run_id(run_id)
    client().finish_run(run_id, RunStatus.parse(status), tags=tags, inputs=inputs, outputs=outputs)
    _forget(run_id, _active.get())


def end_run(status: RunStatus | str = RunStatus.FINISHED, *, run_id: str | None = None) -> Run | None:
    """End the active run (or ``run_id``) with ``status``; returns the stored run."""
    stack = _active.get()
    if run_id is None:
        if not stack:
            return None
        run_id = stack[-1].id
    _forget(run_id, stack)
    return client().end_run(run_id, RunStatus.parse(status))


def _forget(run_id: str, stack: tuple[ActiveRun, ...]) -> None:
    _active.set(tuple(r for r in stack if r.id != run_id))
    _open_runs.pop(run_id, None)


def _run_id(run_id: str | None) -> str:
    if run_id is not None:
        return run_id
    run = active_run()
    if run is None:
        raise InvalidState("no active run: call cv.start_run() first or pass run_id=")
    return run.id


def log_param(key: str, value: Any, *, run_id: str | None = None) -> None:
    client().log_param(_run_id(run_id), key, value)


def log_params(params: Mapping[str, Any], *, run_id: str | None = None) -> None:
    client().log_params(_run_id(run_id), params)


def log_metric(
    key: str, value: Any, step: int = 0, *, timestamp: int | None = None, run_id: str | None = None
) -> None:
    """Buffer one metric point for the active run (microseconds; written in bulk)."""
    if run_id is None:
        stack = _active.get()
        if not stack:
            raise InvalidState("no active run: call cv.start_run() first or pass run_id=")
        run_id = stack[-1].id
    (_client or client()).log_metric(run_id, key, value, step, timestamp)


def log_metrics(
    metrics: Mapping[str, Any], step: int = 0, *, timestamp: int | None = None, run_id: str | None = None
) -> None:
    client().log_metrics(_run_id(run_id), metrics, step, timestamp)


def log_batch(points: Sequence[MetricPoint], *, run_id: str | None = None) -> None:
    client().log_batch(_run_id(run_id), points)


def set_tag(key: str, value: Any, *, run_id: str | None = None) -> None:
    client().set_tag(_run_id(run_id), key, value)


def set_tags(tags: Mapping[str, Any], *, run_id: str | None = None) -> None:
    client().set_tags(_run_id(run_id), tags)


def delete_tag(key: str, *, run_id: str | None = None) -> None:
    client().delete_tag(_run_id(run_id), key)


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None, *, run_id: str | None = None
) -> list[ArtifactFile]:
    return client().log_artifact(_run_id(run_id), local_path, artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None, *, run_id: str | None = None
) -> list[ArtifactFile]:
    return client().log_artifacts(_run_id(run_id), local_dir, artifact_path)


def log_text(text: str, artifact_file: str, *, run_id: str | None = None) -> ArtifactFile:
    return client().log_text(_run_id(run_id), text, artifact_file)


def log_dict(data: Mapping[str, Any], artifact_file: str, *, run_id: str | None = None) -> ArtifactFile:
    import json

    return client().log_text(_run_id(run_id), json.dumps(data, indent=2, default=str), artifact_file)


def flush() -> None:
    """Write buffered metrics now; when it returns they are stored."""
    if _client is not None:
        _client.flush()


def get_run(run_id: str) -> Run:
    return client().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[MetricPoint]:
    return client().get_metric_history(run_id, key)


def list_projects() -> list[Project]:
    return client().list_projects()


def download_artifacts(run_id: str, path: str | None = None, dst_path: str | os.PathLike[str] = ".") -> Path:
    return client().download_artifacts(run_id, path, dst_path)


def search_runs(
    project: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int = 100,
    page_token: str | None = None,
    output_format: str = "list",
) -> Any:
    """Runs of ``project`` (default: the current one; ``"*"`` for all) matching ``filter``.

    Returns a :class:`~conveyor.core.entities.Page` of runs (``.next_page_token``
    gives the next page), or a pandas DataFrame with ``output_format="pandas"``.
    """
    if output_format not in ("list", "pandas"):
        raise InvalidArgument("output_format must be 'list' or 'pandas'", field="output_format")
    if project == "*":
        projects = None
    elif project is None:
        projects = [get_project()]
    else:
        projects = [project] if isinstance(project, str) else list(project)
    page = client().search_runs(projects, filter, order_by, max_results, page_token)
    if output_format == "pandas":
        from conveyor.tracking.frames import runs_to_frame

        return runs_to_frame(page)
    return page


def _reset_after_fork() -> None:
    global _client, _client_lock
    _client, _client_lock = None, threading.Lock()
    _open_runs.clear()
    _active.set(())


def _at_exit() -> None:
    if _client is None:
        return
    failed = getattr(sys, "last_value", None) is not None
    status = RunStatus.FAILED if failed else RunStatus.FINISHED
    for run_id in reversed(list(_open_runs)):
        try:
            _client.finish_run(run_id, status)
        except Exception as exc:  # the process is ending; say so, do not mask the exit
            print(f"conveyor: could not end run {run_id}: {exc}", file=sys.stderr)
    _open_runs.clear()
    try:
        _client.close()
    except Exception as exc:
        print(f"conveyor: could not flush metrics at exit: {exc}", file=sys.stderr)


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_reset_after_fork)
