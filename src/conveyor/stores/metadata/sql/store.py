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
from conveyor.stores.metadata.sql.projects import ensure_project, project_row
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
_SELECT_TAGS = select(tags.c.key, tags.c.value).where(
    tags.c.run_pk == bindparam("pk"), tags.c.key.in_(bindparam("keys", expanding=True))
)
_DELETE_TAGS = delete(tags).where(
    tags.c.run_pk == bindparam("pk"), tags.c.key.in_(bindparam("keys", expanding=True))
)
_SELECT_PARAMS = select(params.c.key, params.c.value).where(
    params.c.run_pk == bindparam("pk"), params.c.key.in_(bindparam("keys", expanding=True))
)



def _newest_by_tag(*conditions: Any) -> Any:
    """Runs of a project, the newest per value of one tag among the wanted values."""
    newest = (
        select(func.max(runs.c.pk))
        .select_from(search.RUNS_WITH_PROJECT.join(tags, tags.c.run_pk == runs.c.pk))
        .where(
            projects.c.name == bindparam("project"),
            tags.c.key == bindparam("key"),
            tags.c.value.in_(bindparam("values", expanding=True)),
            *conditions,
        )
        .group_by(tags.c.value)
    )
    return select(*search.RUN_COLUMNS).select_from(search.RUNS_WITH_PROJECT).where(runs.c.pk.in_(newest))


_NEWEST_BY_TAG = _newest_by_tag()
_IN_CHUNK = 500
_NEWEST_BY_TAG_IN_STATUS = _newest_by_tag(runs.c.status == bindparam("status"))


def _float(value: float | None) -> float:
    return math.nan if value is None else value


_LINEAGE_KEY = [
    lineage_edges.c.src_kind, lineage_edges.c.src_id, lineage_edges.c.dst_kind,
    lineage_edges.c.dst_id, lineage_edges.c.relation,
]
_LINEAGE_INSERT: dict[str, Any] = {}  # per dialect: INSERT … ON CONFLICT DO NOTHING, built once


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


def _run_lineage(
    run_id: str, inputs: Sequence[tuple[str, str]], outputs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Rows of the edges ``input → run`` and ``run → output``, checked."""
    run = ("run", run_id)
    return [_lineage_row(_node(n), run, "input", None) for n in inputs] + [
        _lineage_row(run, _node(n), "output", None) for n in outputs
    ]


def _node(value: Any) -> tuple[str, str]:
    if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(x, str) for x in value):
        return (value[0], value[1])
    raise InvalidArgument(f"lineage node {value!r} is not (kind, id)", field="node")


def _insert_lineage(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert edge rows, skipping those that exist; each new one gets its ``lineage.add`` event."""
    if not rows:
        return
    statement = _LINEAGE_INSERT.get(conn.dialect.name)
    if statement is None:
        statement = _LINEAGE_INSERT[conn.dialect.name] = bulk.insert_or_skip(conn, lineage_edges, _LINEAGE_KEY)
    for row in rows:
        if conn.execute(statement, row).rowcount:
            append_event(
                conn, action="lineage.add", object_kind=row["src_kind"], object_id=row["src_id"],
                after={"dst": [row["dst_kind"], row["dst_id"]], "relation": row["relation"]},
            )


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

    def get_or_create_project(self, name: str) -> Project:
        v.check_name(name, "project")
        with read_transaction(self._engine) as conn:
            row = project_row(conn, name)
        if row is None:
            with write_transaction(self._engine) as conn:
                row = ensure_project(conn, name)
        return Project(id=row.id, name=row.name, created_at=row.created_at, description=row.description)

    def get_project(self, name: str) -> Project:
        with read_transaction(self._engine) as conn:
            row = project_row(conn, name)
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
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        status: RunStatus | str = RunStatus.RUNNING,
        end_time: int | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
    ) -> Run:
        """Create a run, with its params, final metrics and lineage, in one transaction.

        The run is RUNNING unless ``status`` says it has already ended (e.g. a
        pipeline step served from the cache): then it is recorded ended at
        ``end_time`` (default now) and never passes through RUNNING. ``metrics``
        are logged at step 0. ``inputs`` and ``outputs`` are records (kind, id)
        the run read and wrote: lineage edges ``input → run → output``. A retry
        with the same ``idempotency_key`` returns the first run.
        """
        v.check_name(project, "project")
        run_name = v.check_run_name(name) if name else friendly_name()
        tag_values = v.check_tags(tags or {})
        param_values = v.check_params(params or {})
        metric_values = {v.check_key(k): v.metric_value(k, val) for k, val in (metrics or {}).items()}
        if parent_id is not None:
            check_id(parent_id, "parent_id")
        state = RunStatus.parse(status)
        user = user or current_user()
        run_id = new_id()
        started = start_time if start_time is not None else now_ms()
        if state is RunStatus.RUNNING:
            if end_time is not None:
                raise InvalidArgument("a RUNNING run has no end_time", field="end_time")
        else:
            end_time = end_time if end_time is not None else max(now_ms(), started)
            if end_time < started:
                raise InvalidArgument("end_time is before start_time", field="end_time")
        lineage = _run_lineage(run_id, inputs, outputs)
        earlier: str | None = None
        with write_transaction(self._engine) as conn:
            if idempotency_key is not None and not _claim(conn, idempotency_key, run_id):
                earlier = conn.execute(
                    select(idempotency_keys.c.result).where(idempotency_keys.c.key == idempotency_key)
                ).scalar()
            else:
                # Projects are never deleted, so one seen committed can be trusted from memory.
                project_row = self._known_projects.get(project) or ensure_project(conn, project)
                if parent_id is not None:
                    self._pk(conn, parent_id, field="parent_id")
                pk = conn.execute(
                    _INSERT_RUN,
                    {
                        "id": run_id,
                        "project_id": project_row.id,
                        "name": run_name,
                        "status": state.value,
                        "start_time": started,
                        "end_time": end_time,
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
                after: dict[str, Any] = {"name": run_name, "parent_id": parent_id, "user": user, "tags": tag_values}
                if state is not RunStatus.RUNNING:
                    after.update(status=state.value, end_time=end_time)
                append_event(
                    conn, action="run.create", object_kind="run", object_id=run_id, project=project,
                    after=after,
                )
                if param_values:
                    conn.execute(
                        _INSERT_PARAMS, [{"run_pk": pk, "key": k, "value": val} for k, val in param_values.items()]
                    )
                    append_event(
                        conn, action="run.params", object_kind="run", object_id=run_id, project=project,
                        after=param_values,
                    )
                if metric_values:
                    at = end_time if end_time is not None else started
                    bulk.insert_points(
                        conn, [(pk, k, 0, at, None if val != val else val) for k, val in metric_values.items()]
                    )
                _insert_lineage(conn, lineage)
        if earlier is not None:  # a retry of a create that already happened
            return self.get_run(earlier, with_artifacts=False)
        with self._pk_lock:
            self._run_pks[run_id] = pk
            self._pk_projects[pk] = project
            self._known_projects[project] = project_row
        # Everything is known: build the entity instead of reading it back.
        return Run(
            id=run_id, project=project_row.name, name=run_name, status=state,
            start_time=started, end_time=end_time, parent_id=parent_id, user=user,
            heartbeat_at=started, env=dict(env or {}), params=param_values,
            metrics=dict(sorted(metric_values.items())), tags=tag_values,
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
        tags: Mapping[str, Any] | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
        idempotency_key: str | None = None,
    ) -> None:
        """Write the last metric points, tags and lineage and end the run, in one transaction.

        The tracking client ends every run this way: one commit instead of two,
        and no read-back nobody looks at. A pipeline step publishes its outputs,
        cache entry and lineage (``inputs → run → outputs``) here, so they exist
        exactly when the run is FINISHED. A refused status change writes none of
        it. Sent again with the same ``idempotency_key``, the points are not
        written twice.
        """
        status = RunStatus.parse(status)
        tag_values = v.check_tags(tags or {})
        lineage = _run_lineage(check_id(run_id), inputs, outputs)
        with write_transaction(self._engine) as conn:
            if points and (idempotency_key is None or _claim(conn, idempotency_key)):
                self._insert_points(conn, points)
            if tag_values:
                self._write_tags(conn, self._pk(conn, run_id), run_id, tag_values)
            self._transition(conn, run_id, status, end_time)
            _insert_lineage(conn, lineage)

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
            self._write_tags(conn, self._pk(conn, run_id), run_id, values)

    def _write_tags(self, conn: Connection, pk: int, run_id: str, values: Mapping[str, str]) -> None:
        before = dict(conn.execute(_SELECT_TAGS, {"pk": pk, "keys": list(values)}).all())
        if before:
            conn.execute(_DELETE_TAGS, {"pk": pk, "keys": list(before)})
        conn.execute(_INSERT_TAGS, [{"run_pk": pk, "key": k, "value": val} for k, val in values.items()])
        if before != values:
            append_event(
                conn, action="run.tags", object_kind="run", object_id=run_id,
                project=self._project_of(conn, pk), before=before, after=dict(values),
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

    def find_runs_by_tag(
        self, project: str, key: str, values: Sequence[str], *, status: RunStatus | str | None = None
    ) -> dict[str, Run]:
        """For each of ``values``, the newest run of ``project`` whose tag ``key`` has it.

        Only runs in ``status`` count when it is given; values no run has are left
        out. One indexed query for all values (the pipeline cache looks up a whole
        level of steps at once), not a filter to parse.
        """
        v.check_name(project, "project")
        v.check_key(key, "tag")
        wanted = sorted({v.tag_value(key, value) for value in values})
        if not wanted:
            return {}
        binds: dict[str, Any] = {"project": project, "key": key}
        if status is None:
            query = _NEWEST_BY_TAG
        else:
            query, binds["status"] = _NEWEST_BY_TAG_IN_STATUS, RunStatus.parse(status).value
        found: dict[str, Run] = {}
        with read_transaction(self._engine) as conn:
            for start in range(0, len(wanted), _IN_CHUNK):  # within every database's bound-parameter limit
                rows = conn.execute(query, {**binds, "values": wanted[start : start + _IN_CHUNK]}).all()
                found.update((run.tags[key], run) for run in self._hydrate(conn, rows, with_artifacts=False))
        return found

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
            _insert_lineage(conn, rows)

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


