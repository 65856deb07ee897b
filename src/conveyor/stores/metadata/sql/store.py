"""The metadata store on SQLite or PostgreSQL (SQLAlchemy 2.x Core).

One class serves both databases; the differences (SQLite's write lock, the
PostgreSQL COPY path) live in ``engine.py`` and ``bulk.py``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError

from conveyor.core import validation as v
from conveyor.core.entities import ArtifactFile, MetricPoint, Page, Project, Run, RunStatus
from conveyor.core.errors import (
    BackendUnavailable,
    ImmutableValue,
    InvalidArgument,
    InvalidState,
    NotFound,
)
from conveyor.core.ids import check_id, friendly_name, new_id, now_ms
from conveyor.core.settings import current_user
from conveyor.core.uris import safe_relpath
from conveyor.stores.metadata.base import LineageEdge, PointRow
from conveyor.stores.metadata.sql import bulk, idempotency, search
from conveyor.stores.metadata.sql.audit import append_event
from conveyor.stores.metadata.sql.automation import SqlAutomationStore
from conveyor.stores.metadata.sql.blob_refs import SqlBlobRefs
from conveyor.stores.metadata.sql.datasets import SqlDatasetStore
from conveyor.stores.metadata.sql.engine import make_engine, read_transaction, write_transaction
from conveyor.stores.metadata.sql.idempotency import claim as _claim
from conveyor.stores.metadata.sql.migrate import _redact, ensure_schema
from conveyor.stores.metadata.sql.monitors import SqlMonitorStore
from conveyor.stores.metadata.sql.registry import SqlRegistryStore
from conveyor.stores.metadata.sql.schema import (
    artifacts,
    idempotency_keys,
    latest_metrics,
    lineage_edges,
    metrics,
    params,
    projects,
    runs,
    tags,
)

# Statements built once: constructing them per call costs more than SQLite does.
_SELECT_STATUS = select(runs.c.status).where(runs.c.pk == bindparam("pk"))
_END = update(runs).where(runs.c.pk == bindparam("b_pk")).values(
    status=bindparam("status"), end_time=bindparam("end_time")
)
_RESUME = _END.values(heartbeat_at=bindparam("heartbeat_at"))
_END_RUNNING = _END.where(runs.c.status == RunStatus.RUNNING.value)
_INSERT_RUN = insert(runs).returning(runs.c.pk)
_INSERT_TAGS = insert(tags)
_INSERT_PARAMS = insert(params)
_SELECT_PARAMS = select(params.c.key, params.c.value).where(
    params.c.run_pk == bindparam("pk"), params.c.key.in_(bindparam("keys", expanding=True))
)


def _float(value: float | None) -> float:
    return math.nan if value is None else value


_LINEAGE_KEY = [
    lineage_edges.c.src_kind, lineage_edges.c.src_id, lineage_edges.c.dst_kind,
    lineage_edges.c.dst_id, lineage_edges.c.relation,
]


def _lineage_row(
    src: tuple[str, str], dst: tuple[str, str], relation: str, attributes: Mapping[str, Any] | None
) -> dict[str, Any]:
    for kind, ident in (src, dst):
        if not kind or not ident or len(kind) > 32 or len(ident) > 255:
            raise InvalidArgument(f"lineage node {(kind, ident)!r} is not (kind, id)", field="node")
    if not relation or len(relation) > 64:
        raise InvalidArgument("lineage relation must have 1 to 64 characters", field="relation")
    return {
        "src_kind": src[0], "src_id": src[1], "dst_kind": dst[0], "dst_id": dst[1],
        "relation": relation, "created_at": now_ms(), "attributes": dict(attributes or {}),
    }


class SqlMetadataStore:
    """Metadata on a relational database, chosen by URI (``sqlite:///…``, ``postgresql://…``)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._engine = make_engine(uri)
        try:
            ensure_schema(self._engine, uri)
        except OperationalError as exc:
            raise BackendUnavailable(f"cannot open {_redact(uri)}: {exc.orig}") from None
        self._run_pks: dict[str, int] = {}
        self._known_projects: dict[str, Any] = {}
        self._pk_projects: dict[int, str] = {}
        self._pk_lock = threading.Lock()
        self.datasets = SqlDatasetStore(self._engine)
        self.registry = SqlRegistryStore(self._engine)
        self.monitors = SqlMonitorStore(self._engine)
        self.automation = SqlAutomationStore(self._engine)
        self.blob_refs = SqlBlobRefs(self._engine)
        self._governance: Any = None

    @property
    def governance(self) -> Any:
        """Users, tokens, roles and the audit trail (:class:`SqlGovernanceStore`)."""
        if self._governance is None:
            from conveyor.stores.metadata.sql.governance import SqlGovernanceStore

            self._governance = SqlGovernanceStore(self._engine)
        return self._governance

    @property
    def engine(self) -> Any:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def prune_idempotency_keys(self, older_than_ms: int = idempotency.RETENTION_MS, *, now: int | None = None) -> int:
        """Forget idempotency keys recorded more than ``older_than_ms`` ago (at least an hour); how many went."""
        with write_transaction(self._engine) as conn:
            return idempotency.prune(conn, older_than_ms, now)

    # ---------------------------------------------------------------- projects

    def _project_row(self, conn: Connection, name: str) -> Any:
        return conn.execute(select(projects).where(projects.c.name == name)).first()

    def get_or_create_project(self, name: str) -> Project:
        v.check_name(name, "project")
        with read_transaction(self._engine) as conn:
            row = self._project_row(conn, name)
        if row is None:
            with write_transaction(self._engine) as conn:
                row = self._ensure_project(conn, name)
        return Project(id=row.id, name=row.name, created_at=row.created_at, description=row.description)

    def _ensure_project(self, conn: Connection, name: str) -> Any:
        row = self._project_row(conn, name)
        if row is None:
            # Two processes may create the same project at once: the loser's insert is a no-op.
            created = conn.execute(
                bulk.dialect_insert(conn)(projects)
                .values(id=new_id(), name=name, description="", created_at=now_ms())
                .on_conflict_do_nothing(index_elements=[projects.c.name])
                .execution_options(preserve_rowcount=True)
            ).rowcount
            row = self._project_row(conn, name)
            if created:
                append_event(conn, action="project.create", object_kind="project", object_id=row.id, project=name)
        return row

    def get_project(self, name: str) -> Project:
        with read_transaction(self._engine) as conn:
            row = self._project_row(conn, name)
        if row is None:
            raise NotFound(f"project {name!r} does not exist")
        return Project(id=row.id, name=row.name, created_at=row.created_at, description=row.description)

    def list_projects(self) -> list[Project]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(projects).order_by(projects.c.name)).all()
        return [
            Project(id=r.id, name=r.name, created_at=r.created_at, description=r.description)
            for r in rows
        ]

    # -------------------------------------------------------------------- runs

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
        idempotency_key: str | None = None,
    ) -> Run:
        """Create a RUNNING run; a retry with the same ``idempotency_key`` returns the first one."""
        v.check_name(project, "project")
        run_name = v.check_run_name(name) if name else friendly_name()
        tag_values = v.check_tags(tags or {})
        if parent_id is not None:
            check_id(parent_id, "parent_id")
        user = user or current_user()
        run_id = new_id()
        started = start_time if start_time is not None else now_ms()
        earlier: str | None = None
        with write_transaction(self._engine) as conn:
            if idempotency_key is not None and not _claim(conn, idempotency_key, run_id):
                earlier = conn.execute(
                    select(idempotency_keys.c.result).where(idempotency_keys.c.key == idempotency_key)
                ).scalar()
            else:
                # Projects are never deleted, so one seen committed can be trusted from memory.
                project_row = self._known_projects.get(project) or self._ensure_project(conn, project)
                if parent_id is not None:
                    self._pk(conn, parent_id, field="parent_id")
                pk = conn.execute(
                    _INSERT_RUN,
                    {
                        "id": run_id,
                        "project_id": project_row.id,
                        "name": run_name,
                        "status": RunStatus.RUNNING.value,
                        "start_time": started,
                        "end_time": None,
                        "parent_id": parent_id,
                        "user": user,
                        "heartbeat_at": started,
                        "env": dict(env or {}),
                    },
                ).scalar_one()
                if tag_values:
                    conn.execute(
                        _INSERT_TAGS, [{"run_pk": pk, "key": k, "value": val} for k, val in tag_values.items()]
                    )
                append_event(
                    conn, action="run.create", object_kind="run", object_id=run_id, project=project,
                    after={"name": run_name, "parent_id": parent_id, "user": user, "tags": tag_values},
                )
        if earlier is not None:  # a retry of a create that already happened
            return self.get_run(earlier, with_artifacts=False)
        with self._pk_lock:
            self._run_pks[run_id] = pk
            self._pk_projects[pk] = project
            self._known_projects[project] = project_row
        # Everything is known: build the entity instead of reading it back.
        return Run(
            id=run_id, project=project_row.name, name=run_name, status=RunStatus.RUNNING,
            start_time=started, parent_id=parent_id, user=user,
            heartbeat_at=started, env=dict(env or {}), tags=tag_values,
        )

    def _pk(self, conn: Connection, run_id: str, field: str = "run_id") -> int:
        pk = self._run_pks.get(run_id)
        if pk is not None:
            return pk
        check_id(run_id, field)
        pk = conn.execute(select(runs.c.pk).where(runs.c.id == run_id)).scalar()
        if pk is None:
            raise NotFound(f"run {run_id} does not exist", field=field)
        with self._pk_lock:
            self._run_pks[run_id] = pk
        return pk

    def _project_of(self, conn: Connection, pk: int) -> str:
        """The project of run ``pk`` (what audit events record); a run never moves, so it is remembered."""
        name = self._pk_projects.get(pk)
        if name is None:
            name = str(conn.execute(
                select(projects.c.name).select_from(search.RUNS_WITH_PROJECT).where(runs.c.pk == pk)
            ).scalar_one())
            with self._pk_lock:
                self._pk_projects[pk] = name
        return name

    def run_projects(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The project of each existing run in ``run_ids`` (unknown ids are left out)."""
        ids = [check_id(r) for r in set(run_ids)]
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(runs.c.id, projects.c.name).select_from(search.RUNS_WITH_PROJECT).where(runs.c.id.in_(ids))
            ).all()
        return {r[0]: r[1] for r in rows}

    def get_run(self, run_id: str, *, with_artifacts: bool = True) -> Run:
        check_id(run_id)
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                select(*search.RUN_COLUMNS).select_from(search.RUNS_WITH_PROJECT).where(runs.c.id == run_id)
            ).first()
            if row is None:
                raise NotFound(f"run {run_id} does not exist", field="run_id")
            return self._hydrate(conn, [row], with_artifacts=with_artifacts)[0]

    def _hydrate(self, conn: Connection, rows: Sequence[Any], *, with_artifacts: bool) -> list[Run]:
        """Runs with their params, latest metrics, tags (and artifacts), in three or four queries."""
        pks = [r.pk for r in rows]
        p: dict[int, dict[str, str]] = {pk: {} for pk in pks}
        t: dict[int, dict[str, str]] = {pk: {} for pk in pks}
        m: dict[int, dict[str, float]] = {pk: {} for pk in pks}
        a: dict[int, list[ArtifactFile]] = {pk: [] for pk in pks}
        for r in conn.execute(select(params).where(params.c.run_pk.in_(pks))):
            p[r.run_pk][r.key] = r.value
        for r in conn.execute(select(tags).where(tags.c.run_pk.in_(pks))):
            t[r.run_pk][r.key] = r.value
        for r in conn.execute(
            select(latest_metrics.c.run_pk, latest_metrics.c.key, latest_metrics.c.value).where(
                latest_metrics.c.run_pk.in_(pks)
            )
        ):
            m[r.run_pk][r.key] = _float(r.value)
        if with_artifacts:
            for r in conn.execute(
                select(artifacts).where(artifacts.c.run_pk.in_(pks)).order_by(artifacts.c.path)
            ):
                a[r.run_pk].append(ArtifactFile(path=r.path, digest=r.digest, size=r.size))
        return [
            Run(
                id=r.id,
                project=r.project,
                name=r.name,
                status=RunStatus(r.status),
                start_time=r.start_time,
                end_time=r.end_time,
                parent_id=r.parent_id,
                user=r.user,
                heartbeat_at=r.heartbeat_at,
                env=r.env or {},
                params=p[r.pk],
                metrics=dict(sorted(m[r.pk].items())),
                tags=t[r.pk],
                artifacts=tuple(a[r.pk]),
            )
            for r in rows
        ]

    def _transition(self, conn: Connection, run_id: str, status: RunStatus, end_time: int | None) -> None:
        """Move a run to ``status`` if the lifecycle allows it (inside the caller's write)."""
        pk = self._pk(conn, run_id)
        if status.is_terminal and conn.execute(
            _END_RUNNING, {"b_pk": pk, "status": status.value, "end_time": end_time or now_ms()}
        ).rowcount:
            current = RunStatus.RUNNING  # the usual end of a run: one statement, no read first
        else:
            current = RunStatus(conn.execute(_SELECT_STATUS, {"pk": pk}).scalar_one())
            self._move(conn, pk, run_id, current, status, end_time)
            if current is status and status is not RunStatus.RUNNING:
                return  # already there: nothing changed, nothing to audit
        append_event(
            conn, action="run.status", object_kind="run", object_id=run_id,
            project=self._project_of(conn, pk), before={"status": current.value}, after={"status": status.value},
        )

    @staticmethod
    def _move(conn: Connection, pk: int, run_id: str, current: RunStatus, status: RunStatus,
              end_time: int | None) -> None:
        changes_ending = current.is_terminal and status.is_terminal and current is not status
        if changes_ending and current is not RunStatus.KILLED:
            raise InvalidState(
                f"run {run_id} already ended as {current.value}; it cannot become {status.value}"
            )
        if status is RunStatus.RUNNING:
            conn.execute(_RESUME, {"b_pk": pk, "status": status.value, "end_time": None, "heartbeat_at": now_ms()})
        elif current is not status:
            conn.execute(_END, {"b_pk": pk, "status": status.value, "end_time": end_time or now_ms()})

    def set_run_status(self, run_id: str, status: RunStatus, end_time: int | None = None) -> Run:
        status = RunStatus.parse(status)
        with write_transaction(self._engine) as conn:
            self._transition(conn, run_id, status, end_time)
        return self.get_run(run_id, with_artifacts=False)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int | None = None,
        points: Sequence[PointRow] = (),
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """Write the last metric points and end the run, in one transaction.

        The tracking client ends every run this way: one commit instead of two,
        and no read-back nobody looks at. Sent again with the same
        ``idempotency_key``, the points are not written twice.
        """
        status = RunStatus.parse(status)
        with write_transaction(self._engine) as conn:
            if points and (idempotency_key is None or _claim(conn, idempotency_key)):
                self._insert_points(conn, points)
            self._transition(conn, run_id, status, end_time)

    def heartbeat(self, run_ids: Sequence[str], at: int | None = None) -> None:
        if not run_ids:
            return
        for run_id in run_ids:
            check_id(run_id)
        with write_transaction(self._engine) as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(list(run_ids)), runs.c.status == RunStatus.RUNNING.value)
                .values(heartbeat_at=at or now_ms())
            )

    def reap_stale_runs(self, timeout_ms: int, now: int | None = None) -> list[str]:
        """Mark RUNNING runs whose heartbeat is older than ``timeout_ms`` as KILLED."""
        deadline = (now or now_ms()) - int(timeout_ms)
        last_sign = func.coalesce(runs.c.heartbeat_at, runs.c.start_time)
        stale = (runs.c.status == RunStatus.RUNNING.value) & (last_sign < deadline)
        with read_transaction(self._engine) as conn:
            if conn.execute(select(runs.c.id).where(stale).limit(1)).first() is None:
                return []
        with write_transaction(self._engine) as conn:
            ids = list(conn.execute(select(runs.c.id).where(stale)).scalars())
            conn.execute(
                update(runs).where(stale).values(status=RunStatus.KILLED.value, end_time=last_sign)
            )
            for run_id in ids:
                append_event(
                    conn, action="run.reap", object_kind="run", object_id=run_id,
                    before={"status": "RUNNING"}, after={"status": "KILLED"},
                )
        return ids

    def delete_run(self, run_id: str) -> None:
        with write_transaction(self._engine) as conn:
            pk = self._pk(conn, run_id)
            before = conn.execute(select(runs.c.name, runs.c.status).where(runs.c.pk == pk)).first()
            append_event(
                conn, action="run.delete", object_kind="run", object_id=run_id,
                project=self._project_of(conn, pk),
                before={"name": before.name, "status": before.status} if before else None,
            )
            for table in (metrics, latest_metrics, params, tags, artifacts):
                conn.execute(delete(table).where(table.c.run_pk == pk))
            conn.execute(
                delete(lineage_edges).where(
                    ((lineage_edges.c.src_kind == "run") & (lineage_edges.c.src_id == run_id))
                    | ((lineage_edges.c.dst_kind == "run") & (lineage_edges.c.dst_id == run_id))
                )
            )
            conn.execute(delete(runs).where(runs.c.pk == pk))
        with self._pk_lock:
            self._run_pks.pop(run_id, None)
            self._pk_projects.pop(pk, None)  # SQLite may hand this pk to a later run

    # ------------------------------------------------------ params, tags, metrics

    def log_params(self, run_id: str, params_: Mapping[str, Any]) -> None:
        values = v.check_params(params_)
        if not values:
            return
        with write_transaction(self._engine) as conn:
            pk = self._pk(conn, run_id)
            existing = dict(conn.execute(_SELECT_PARAMS, {"pk": pk, "keys": list(values)}).all())
            for key, value in values.items():
                if key in existing and existing[key] != value:
                    raise ImmutableValue(
                        f"param {key!r} of run {run_id} is already {existing[key]!r}; params are "
                        f"immutable, so {value!r} was refused (log it under another key)",
                        field=key,
                    )
            new = [{"run_pk": pk, "key": k, "value": val} for k, val in values.items() if k not in existing]
            if new:
                conn.execute(_INSERT_PARAMS, new)
                append_event(
                    conn, action="run.params", object_kind="run", object_id=run_id,
                    project=self._project_of(conn, pk), after={r["key"]: r["value"] for r in new},
                )

    def set_tags(self, run_id: str, tags_: Mapping[str, Any]) -> None:
        values = v.check_tags(tags_)
        if not values:
            return
        with write_transaction(self._engine) as conn:
            pk = self._pk(conn, run_id)
            before = dict(
                conn.execute(
                    select(tags.c.key, tags.c.value).where(tags.c.run_pk == pk, tags.c.key.in_(list(values)))
                ).all()
            )
            conn.execute(delete(tags).where(tags.c.run_pk == pk, tags.c.key.in_(list(values))))
            conn.execute(insert(tags), [{"run_pk": pk, "key": k, "value": val} for k, val in values.items()])
            if before != values:
                append_event(
                    conn, action="run.tags", object_kind="run", object_id=run_id,
                    project=self._project_of(conn, pk), before=before, after=values,
                )

    def delete_tag(self, run_id: str, key: str) -> None:
        with write_transaction(self._engine) as conn:
            pk = self._pk(conn, run_id)
            old = conn.execute(select(tags.c.value).where(tags.c.run_pk == pk, tags.c.key == key)).scalar()
            deleted = conn.execute(delete(tags).where(tags.c.run_pk == pk, tags.c.key == key)).rowcount
            if deleted:
                append_event(
                    conn, action="run.tag_delete", object_kind="run", object_id=run_id,
                    project=self._project_of(conn, pk), before={key: old},
                )
        if not deleted:
            raise NotFound(f"run {run_id} has no tag {key!r}", field="key")

    def log_metric_points(self, points: Sequence[PointRow], *, idempotency_key: str | None = None) -> None:
        """Write a batch of (run_id, key, value, step, timestamp) in one transaction.

        Metric points are not audit events (the hot path stays one bulk insert). A
        batch sent again with the same ``idempotency_key`` is not written twice.
        """
        if not points:
            return
        with write_transaction(self._engine) as conn:
            if idempotency_key is not None and not _claim(conn, idempotency_key):
                return  # a retry of a batch that was written: not twice
            self._insert_points(conn, points)

    def _insert_points(self, conn: Connection, points: Sequence[PointRow]) -> None:
        pks = {run_id: self._pk(conn, run_id) for run_id in {p[0] for p in points}}
        rows: list[bulk.MetricRow] = [
            (pks[run_id], key, step, timestamp, None if value != value else value)
            for run_id, key, value, step, timestamp in points
        ]
        bulk.insert_points(conn, rows)

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        with read_transaction(self._engine) as conn:
            pk = self._pk(conn, run_id)
            rows = conn.execute(
                select(metrics.c.key, metrics.c.value, metrics.c.step, metrics.c.timestamp)
                .where(metrics.c.run_pk == pk, metrics.c.key == key)
                .order_by(metrics.c.step, metrics.c.timestamp)
            ).all()
        return [MetricPoint(r.key, _float(r.value), r.step, r.timestamp) for r in rows]

    # --------------------------------------------------------------- artifacts

    def record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        checked = {safe_relpath(f.path): f for f in files}
        if not checked:
            return
        with write_transaction(self._engine) as conn:
            pk = self._pk(conn, run_id)
            conn.execute(
                delete(artifacts).where(artifacts.c.run_pk == pk, artifacts.c.path.in_(list(checked)))
            )
            conn.execute(
                insert(artifacts),
                [{"run_pk": pk, "path": p, "digest": f.digest, "size": f.size} for p, f in checked.items()],
            )
            paths = sorted(checked)
            append_event(
                conn, action="run.artifacts", object_kind="run", object_id=run_id,
                project=self._project_of(conn, pk),
                after={"files": len(paths), "paths": paths[:100]},
            )

    def list_artifacts(self, run_id: str, prefix: str | None = None) -> list[ArtifactFile]:
        query = select(artifacts)
        if prefix:
            prefix = safe_relpath(prefix)
        with read_transaction(self._engine) as conn:
            pk = self._pk(conn, run_id)
            query = query.where(artifacts.c.run_pk == pk).order_by(artifacts.c.path)
            rows = conn.execute(query).all()
        files = [ArtifactFile(path=r.path, digest=r.digest, size=r.size) for r in rows]
        if prefix:
            files = [f for f in files if f.path == prefix or f.path.startswith(prefix + "/")]
        return files

    # ------------------------------------------------------------------ search

    def search_runs(
        self,
        projects: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page:
        plan = search.plan(projects, filter, order_by, max_results, page_token)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(plan.query).all()
            more = len(rows) > plan.limit
            runs_ = self._hydrate(conn, rows[: plan.limit], with_artifacts=False)
        return Page(runs_, plan.next_token() if more else None)

    # ----------------------------------------------------------------- lineage

    def add_lineage(
        self,
        src: tuple[str, str],
        dst: tuple[str, str],
        relation: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.add_lineage_many([(src, dst, relation, attributes)])

    def add_lineage_many(self, edges: Sequence[LineageEdge]) -> None:
        """Record many ``(src, dst, relation, attributes)`` edges in one transaction.

        Each new edge gets its ``lineage.add`` audit event, as with :meth:`add_lineage`;
        an edge that exists already is skipped (no error, no event). All are checked
        before anything is written.
        """
        rows = [_lineage_row(*edge) for edge in edges]
        if not rows:
            return
        with write_transaction(self._engine) as conn:
            statement = bulk.dialect_insert(conn)(lineage_edges).on_conflict_do_nothing(
                index_elements=_LINEAGE_KEY
            ).execution_options(preserve_rowcount=True)
            for row in rows:
                if conn.execute(statement, row).rowcount:
                    append_event(
                        conn, action="lineage.add", object_kind=row["src_kind"],
                        object_id=row["src_id"],
                        after={"dst": [row["dst_kind"], row["dst_id"]], "relation": row["relation"]},
                    )

    def list_lineage(self, node: tuple[str, str], direction: str = "both") -> list[dict[str, Any]]:
        if direction not in ("in", "out", "both"):
            raise InvalidArgument("direction must be 'in', 'out' or 'both'", field="direction")
        kind, ident = node
        outgoing = (lineage_edges.c.src_kind == kind) & (lineage_edges.c.src_id == ident)
        incoming = (lineage_edges.c.dst_kind == kind) & (lineage_edges.c.dst_id == ident)
        where = {"out": outgoing, "in": incoming, "both": outgoing | incoming}[direction]
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(lineage_edges).where(where).order_by(lineage_edges.c.id)).all()
        return [
            {
                "src": (r.src_kind, r.src_id), "dst": (r.dst_kind, r.dst_id), "relation": r.relation,
                "created_at": r.created_at, "attributes": r.attributes,
            }
            for r in rows
        ]


