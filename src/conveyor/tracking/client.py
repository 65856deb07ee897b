"""The tracking service: runs, params, metrics, tags and artifacts over the two stores.

:class:`TrackingClient` is the explicit API (every call names its run); the
fluent functions in ``conveyor.tracking.fluent`` keep an active run on top of it.
The client owns the per-process background work: the metric buffer, the
heartbeat of open runs and the optional system-metric sampler.

Example::

    client = TrackingClient()                      # CONVEYOR_URI / CONVEYOR_ARTIFACTS
    run = client.create_run("bikes", name="baseline")
    client.log_metric(run.id, "rmse", 41.2, step=0)
    client.end_run(run.id)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conveyor.core import validation as v
from conveyor.core.entities import ArtifactFile, MetricPoint, Page, Project, Run, RunStatus
from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.core.ids import check_id, now_ms
from conveyor.core.settings import Settings, get_settings
from conveyor.core.uris import safe_relpath
from conveyor.stores.metadata.base import MetadataStore, open_metadata_store
from conveyor.tracking import environment
from conveyor.tracking.background import RunSet, SystemSampler, Ticker
from conveyor.tracking.buffer import MetricBuffer

_MAX_CACHED_KEYS = 10_000


class TrackingClient:
    def __init__(
        self,
        metadata_uri: str | None = None,
        artifacts_uri: str | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store: MetadataStore = open_metadata_store(metadata_uri or self.settings.metadata_uri)
        self._artifacts_uri = artifacts_uri or self.settings.artifacts_uri
        self._content: Any = None
        self._buffer = MetricBuffer(
            self.store.log_metric_points,
            interval=self.settings.flush_interval,
            max_points=self.settings.flush_size,
        )
        self._known_keys: set[str] = set()
        self._known_runs: set[str] = set()
        self._alive = RunSet()
        self._sampled = RunSet()
        self._lock = threading.Lock()
        self._heartbeat: Ticker | None = None
        self._sampler: Ticker | None = None

    # ------------------------------------------------------------------ stores

    @property
    def content(self) -> Any:
        """The content-addressed artifact store, opened on first use."""
        if self._content is None:
            from conveyor.stores.artifacts.cas import open_content_store

            self._content = open_content_store(self._artifacts_uri)
        return self._content

    def flush(self) -> None:
        """Write buffered metrics now; when this returns they are stored."""
        self._buffer.flush()

    def close(self) -> None:
        for ticker in (self._heartbeat, self._sampler):
            if ticker is not None:
                ticker.stop()
        self._buffer.close()
        self.store.close()

    # ---------------------------------------------------------------- projects

    def get_or_create_project(self, name: str) -> Project:
        return self.store.get_or_create_project(name)

    def list_projects(self) -> list[Project]:
        return self.store.list_projects()

    # -------------------------------------------------------------------- runs

    def create_run(
        self,
        project: str,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        system_metrics: bool | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        status: RunStatus | str = RunStatus.RUNNING,
        start_time: int | None = None,
        end_time: int | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
    ) -> Run:
        """Create a run with its tags, params, metrics and lineage in one write.

        With a terminal ``status`` the run is recorded as already ended (at
        ``end_time``, default now) and gets no heartbeat. ``inputs``/``outputs``
        are (kind, id) records it read and wrote (lineage edges).
        """
        env = environment.capture()
        run = self.store.create_run(
            project=project,
            name=name,
            parent_id=parent_id,
            tags=v.check_tags(tags or {}),
            env=env,
            user=env["user"],
            params=params,
            metrics=metrics,
            status=status,
            start_time=start_time,
            end_time=end_time,
            inputs=inputs,
            outputs=outputs,
        )
        if run.status is RunStatus.RUNNING:
            self._keep_alive(run.id, system_metrics)
        else:
            self._known_runs.add(run.id)
        return run

    def resume_run(self, run_id: str, *, system_metrics: bool | None = None) -> Run:
        run = self.store.set_run_status(run_id, RunStatus.RUNNING)
        self._keep_alive(run.id, system_metrics)
        return run

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> Run:
        """End the run (its buffered points and its status written together); returns it."""
        self.finish_run(run_id, status)
        return self.store.get_run(run_id, with_artifacts=False)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus | str = RunStatus.FINISHED,
        *,
        tags: Mapping[str, Any] | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
    ) -> None:
        """End the run without reading it back (what ``with cv.start_run()`` does).

        Its buffered points, ``tags``, lineage (``inputs → run → outputs``) and
        status are written in one transaction.
        """
        status = RunStatus.parse(status)
        self._alive.discard(run_id)
        self._sampled.discard(run_id)
        values = v.check_tags(tags) if tags else None
        self._buffer.flush(
            lambda points: self.store.finish_run(
                run_id, status, points=points, tags=values, inputs=inputs, outputs=outputs
            )
        )

    def attach_run(self, run: Run, *, system_metrics: bool | None = None) -> None:
        """Keep ``run``, RUNNING and created elsewhere, alive from this process (no write)."""
        self._keep_alive(run.id, system_metrics)

    def release_run(self, run_id: str) -> None:
        """Stop keeping ``run_id`` alive here: another process ended it (a pipeline worker)."""
        self._alive.discard(run_id)
        self._sampled.discard(run_id)

    def get_run(self, run_id: str) -> Run:
        self._before_read()
        return self.store.get_run(run_id)

    def search_runs(
        self,
        projects: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page:
        self._before_read()
        return self.store.search_runs(projects, filter, order_by, max_results, page_token)

    def _before_read(self) -> None:
        """Reads see this process's own writes, and no dead run stays RUNNING."""
        if self._buffer.pending():
            self.flush()
        self.store.reap_stale_runs(int(self.settings.heartbeat_timeout * 1000))

    def _keep_alive(self, run_id: str, system_metrics: bool | None) -> None:
        self._known_runs.add(run_id)
        self._alive.add(run_id)
        with self._lock:
            if self._heartbeat is None:
                self._heartbeat = Ticker(
                    "conveyor-heartbeat", self.settings.heartbeat_interval, self._beat
                )
        if system_metrics if system_metrics is not None else self.settings.system_metrics:
            self._sampled.add(run_id)
            with self._lock:
                if self._sampler is None:
                    sampler = SystemSampler()
                    self._sampler = Ticker(
                        "conveyor-system-metrics",
                        self.settings.system_metrics_interval,
                        lambda: self._sample(sampler),
                    )

    def _beat(self) -> None:
        ids = self._alive.snapshot()
        if ids:
            self.store.heartbeat(ids)

    def _sample(self, sampler: SystemSampler) -> None:
        ids = self._sampled.snapshot()
        if not ids:
            return
        values, ts = sampler.sample(), now_ms()
        self._buffer.extend(
            [(run_id, k, val, sampler.step, ts) for run_id in ids for k, val in values.items()]
        )

    # ------------------------------------------------------ params, tags, metrics

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.store.log_params(run_id, {key: value})

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self.store.log_params(run_id, params)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.store.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.store.set_tags(run_id, tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_tag(run_id, key)

    def log_metric(
        self, run_id: str, key: str, value: Any, step: int = 0, timestamp: int | None = None
    ) -> None:
        """Buffer one point; it reaches the store within ``flush_interval`` or at ``flush()``."""
        if run_id not in self._known_runs:
            self._check_run(run_id)
        if key not in self._known_keys:
            self._check_key(key)
        if type(value) is not float:
            value = v.metric_value(key, value)
        if type(step) is not int:
            step = v.metric_step(key, step)
        self._buffer.add((run_id, key, value, step, timestamp or now_ms()))

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, Any], step: int = 0, timestamp: int | None = None
    ) -> None:
        if not isinstance(metrics, Mapping):
            raise InvalidArgument("metrics must be a mapping of names to numbers", field="metrics")
        if run_id not in self._known_runs:
            self._check_run(run_id)
        ts = timestamp or now_ms()
        step = v.metric_step("metrics", step)
        points = []
        for key, value in metrics.items():
            if key not in self._known_keys:
                self._check_key(key)
            points.append((run_id, key, v.metric_value(key, value), step, ts))
        self._buffer.extend(points)

    def log_batch(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Store many points at once, bypassing the buffer (acknowledged on return)."""
        if run_id not in self._known_runs:
            self._check_run(run_id)
        rows = []
        for p in points:
            if p.key not in self._known_keys:
                self._check_key(p.key)
            rows.append((run_id, p.key, v.metric_value(p.key, p.value), v.metric_step(p.key, p.step), p.timestamp))
        self.flush()
        self.store.log_metric_points(rows)

    def _check_run(self, run_id: str) -> None:
        """Points for an unknown run fail here, not later in the background flush."""
        self.store.get_run(run_id, with_artifacts=False)
        self._known_runs.add(run_id)

    def _check_key(self, key: str) -> None:
        v.check_key(key)
        if len(self._known_keys) < _MAX_CACHED_KEYS:
            self._known_keys.add(key)

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        self._before_read()
        return self.store.get_metric_history(run_id, key)

    # --------------------------------------------------------------- artifacts

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactFile]:
        """Store a file, or a folder with everything under it, in the run.

        A file lands at ``artifact_path/<file name>``, a folder at
        ``artifact_path/<folder name>/...`` (like ``cp -r``).
        """
        check_id(run_id)
        source = Path(local_path)
        prefix = safe_relpath(artifact_path, "artifact_path") if artifact_path else ""
        target = f"{prefix}/{source.name}" if prefix else source.name
        return self._store_path(run_id, source, target)

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> list[ArtifactFile]:
        """Store the contents of a folder under ``artifact_path`` (the run's root by default)."""
        check_id(run_id)
        source = Path(local_dir)
        if not source.is_dir():
            raise InvalidArgument(f"{source} is not a folder", field="local_dir")
        prefix = safe_relpath(artifact_path, "artifact_path") if artifact_path else ""
        return self._store_path(run_id, source, prefix)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> ArtifactFile:
        path = safe_relpath(artifact_file, "artifact_file")
        digest = self.content.put_bytes(text.encode())
        record = ArtifactFile(path=path, digest=digest, size=len(text.encode()))
        self.store.record_artifacts(run_id, [record])
        return record

    def _store_path(self, run_id: str, source: Path, target: str) -> list[ArtifactFile]:
        if not source.exists():
            raise InvalidArgument(f"{source} does not exist", field="local_path")
        self.store.get_run(run_id, with_artifacts=False)  # unknown run: fail before uploading
        if source.is_dir():
            files = self.content.put_tree(source, prefix=target)
        else:
            stored = self.content.put_file(source)
            files = [ArtifactFile(path=safe_relpath(target), digest=stored.digest, size=stored.size)]
        self.store.record_artifacts(run_id, files)
        return list(files)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactFile]:
        return self.store.list_artifacts(run_id, path)

    def download_artifacts(self, run_id: str, path: str | None, dest: str | os.PathLike[str]) -> Path:
        """Fetch a file or folder of the run into ``dest`` (kept at its path in the run).

        Every file is verified against its content hash before it is written.
        """
        files = self.store.list_artifacts(run_id, path)
        if not files:
            where = f"at {path!r}" if path else "at all"
            raise NotFound(f"run {run_id} has no artifacts {where}", field="path")
        root = Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        self.content.get_tree(files, root)
        return root / safe_relpath(path) if path else root

