"""The metadata store interface every backend implements.

Services talk to this Protocol only. Backends are chosen by URI scheme through
``conveyor.core.plugins`` and opened with :func:`open_metadata_store`. Every
method validates its input before it writes, and either applies completely or
not at all.

A backend passes ``conveyor.testing.contracts.metadata.MetadataStoreContract``.
A minimal new backend looks like::

    class MyStore:
        def __init__(self, uri: str) -> None: ...
        def create_run(self, *, project: str, name: str, ...) -> Run: ...
        # ... every method below ...

    # core/plugins.py: BACKENDS["metadata"]["my"] = Backend("pkg.mod:MyStore", "my-extra")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from conveyor.core.entities import ArtifactFile, MetricPoint, Page, Project, Run, RunStatus
from conveyor.stores.metadata.automation import AutomationStore
from conveyor.stores.metadata.datasets import DatasetStore
from conveyor.stores.metadata.monitors import MonitorStore
from conveyor.stores.metadata.registry import RegistryStore

#: A buffered metric point on its way to the store: (run_id, key, value, step, timestamp_ms).
PointRow = tuple[str, str, float, int, int]
#: A lineage edge as :meth:`MetadataStore.add_lineage` takes it: (src, dst, relation, attributes).
LineageEdge = tuple[tuple[str, str], tuple[str, str], str, Mapping[str, Any] | None]


@runtime_checkable
class MetadataStore(Protocol):
    uri: str
    #: Datasets, versions and validation results (``conveyor.data``).
    datasets: DatasetStore
    #: registered models, versions, aliases and promotion records (``registry.py``)
    registry: RegistryStore
    #: stored monitors, their results and incidents (``conveyor.monitoring.monitors``)
    monitors: MonitorStore
    #: automations, their firings and agent leases (``conveyor.automation``)
    automation: AutomationStore

    # projects
    def get_or_create_project(self, name: str) -> Project: ...
    def get_project(self, name: str) -> Project: ...
    def list_projects(self) -> list[Project]: ...

    # runs
    def create_run(
        self,
        *,
        project: str,
        name: str | None = None,
        parent_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        env: Mapping[str, Any] | None = None,
        user: str = "",
        start_time: int | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        status: RunStatus | str = RunStatus.RUNNING,
        end_time: int | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
    ) -> Run:
        """Create a run with its tags, params, metrics (step 0) and lineage in one transaction.

        RUNNING by default; with a terminal ``status`` the run is recorded as
        already ended at ``end_time`` (default now), e.g. a cached pipeline step.
        ``inputs``/``outputs`` are (kind, id) records: edges ``input → run → output``.
        """
    def get_run(self, run_id: str, *, with_artifacts: bool = True) -> Run: ...
    def set_run_status(self, run_id: str, status: RunStatus, end_time: int | None = None) -> Run: ...
    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int | None = None,
        points: Sequence[PointRow] = (),
        *,
        tags: Mapping[str, str] | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Write ``points``, ``tags`` and lineage and move the run to ``status`` in one transaction.

        No read-back. When the status change is refused (``InvalidState``) nothing is written.
        """
    def heartbeat(self, run_ids: Sequence[str], at: int | None = None) -> None: ...
    def reap_stale_runs(self, timeout_ms: int, now: int | None = None) -> list[str]: ...
    def delete_run(self, run_id: str) -> None: ...

    # params, tags, metrics
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def delete_tag(self, run_id: str, key: str) -> None: ...
    def log_metric_points(self, points: Sequence[PointRow]) -> None: ...
    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]: ...

    # artifacts (the bytes live in the artifact store; this records which run has which file)
    def record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None: ...
    def list_artifacts(self, run_id: str, prefix: str | None = None) -> list[ArtifactFile]: ...

    # search
    def search_runs(
        self,
        projects: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page: ...

    def find_runs_by_tag(
        self, project: str, key: str, values: Sequence[str], *, status: RunStatus | str | None = None
    ) -> dict[str, Run]:
        """For each of ``values``, the newest run of ``project`` with tag ``key`` = that value.

        Only runs in ``status`` count when given; values without a run are left out.
        """

    # lineage: a directed edge between any two records
    def add_lineage(
        self,
        src: tuple[str, str],
        dst: tuple[str, str],
        relation: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> None: ...
    def list_lineage(
        self, node: tuple[str, str], direction: str = "both"
    ) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@runtime_checkable
class LineageBatch(Protocol):
    """An optional extra: record many lineage edges in one transaction (the SQL store).

    Use :func:`add_lineage_edges`, which falls back to one ``add_lineage`` per edge
    on stores without it (the REST store).
    """

    def add_lineage_many(self, edges: Sequence[LineageEdge]) -> None: ...


def add_lineage_edges(store: MetadataStore, edges: Sequence[LineageEdge]) -> None:
    """Record ``edges`` in one call where the store can, else one by one."""
    if isinstance(store, LineageBatch):
        store.add_lineage_many(edges)
        return
    for src, dst, relation, attributes in edges:
        store.add_lineage(src, dst, relation, attributes)


def open_metadata_store(uri: str | None = None) -> MetadataStore:
    """Open the store for ``uri`` (default: the configured ``CONVEYOR_URI``)."""
    from conveyor.core.plugins import load_backend
    from conveyor.core.settings import get_settings
    from conveyor.core.uris import scheme_of

    uri = uri or get_settings().metadata_uri
    store_cls = load_backend("metadata", scheme_of(uri))
    store: MetadataStore = store_cls(uri)
    return store
