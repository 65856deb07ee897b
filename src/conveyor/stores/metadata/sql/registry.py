"""The registry store on SQLite and PostgreSQL, sharing the metadata store's engine.

Version numbers come from ``sequences.next_value`` inside the write transaction
that inserts the version, so concurrent registrations get 1, 2, 3 ... with no
gap and no duplicate. Every change appends an audit event in that same
transaction. Alias moves are also kept in ``alias_history`` so a rollback can
replay them and find the previous holder.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from conveyor.core import validation as v
from conveyor.core.context import current_actor
from conveyor.core.entities import Page
from conveyor.core.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from conveyor.core.ids import new_id, now_ms
from conveyor.stores.metadata.registry import (
    ARCHIVED,
    READY,
    AliasMove,
    GateEvaluation,
    ModelVersion,
    RegisteredModel,
)
from conveyor.stores.metadata.sql.audit import append_event
from conveyor.stores.metadata.sql.bulk import dialect_insert
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.idempotency import claim, earlier, remember
from conveyor.stores.metadata.sql.projects import ensure_project
from conveyor.stores.metadata.sql.schema import (
    alias_history,
    blob_refs,
    gate_evaluations,
    lineage_edges,
    model_aliases,
    model_versions,
    projects,
    registered_models,
)
from conveyor.stores.metadata.sql.sequences import next_value

RESERVED_ALIASES = frozenset({"latest"})
MAX_PAGE = 1000


def check_alias(alias: object) -> str:
    """Aliases are names; ``latest`` and bare numbers would be ambiguous in a model URI."""
    try:
        name = v.check_name(alias, "alias")
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field="alias") from None
    if name in RESERVED_ALIASES or name.isdigit():
        raise InvalidArgument(
            f"alias {name!r} is reserved: 'latest' and numbers already mean versions", field="alias"
        )
    return name


def check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgument(f"version must be a positive integer, got {version!r}", field="version")
    return version


def _page_size(max_results: int) -> int:
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_PAGE:
        raise InvalidArgument(f"max_results must be between 1 and {MAX_PAGE}", field="max_results")
    return max_results


def _encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise InvalidArgument("page_token is not a token this store handed out", field="page_token") from None


class SqlRegistryStore:
    """:class:`~conveyor.stores.metadata.registry.RegistryStore` over a SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ----------------------------------------------------------------- helpers

    def _project_id(self, conn: Connection, project: str, *, create: bool = False) -> str | None:
        if create:
            return str(ensure_project(conn, project).id)  # audited like a project the tracking API creates
        return conn.execute(select(projects.c.id).where(projects.c.name == project)).scalar()

    def _model_row(self, conn: Connection, project: str, name: str, *, lock: bool = False) -> Any:
        """The model's row; ``lock`` holds it until the transaction ends.

        Writers that change a model's versions or aliases lock its row first, so two
        alias moves on PostgreSQL queue instead of both replacing the same holder
        (SQLite's write lock already serialises them).
        """
        v.check_name(project, "project")
        v.check_name(name, "model")
        query = (
            select(registered_models)
            .join(projects, projects.c.id == registered_models.c.project_id)
            .where(projects.c.name == project, registered_models.c.name == name)
        )
        row = conn.execute(query.with_for_update(of=registered_models) if lock else query).first()
        if row is None:
            raise NotFound(f"model {name!r} does not exist in project {project!r}", field="name")
        return row

    def _model(self, conn: Connection, project: str, row: Any) -> RegisteredModel:
        return self._models(conn, project, [row])[0]

    def _models(self, conn: Connection, project: str, rows: Sequence[Any]) -> list[RegisteredModel]:
        ids = [r.id for r in rows]
        aliases: dict[str, dict[str, int]] = {i: {} for i in ids}
        latest: dict[str, int] = {}
        if ids:
            for a in conn.execute(
                select(model_aliases).where(model_aliases.c.model_id.in_(ids)).order_by(model_aliases.c.alias)
            ):
                aliases[a.model_id][a.alias] = a.version
            latest = dict(
                conn.execute(
                    select(model_versions.c.model_id, func.max(model_versions.c.version))
                    .where(model_versions.c.model_id.in_(ids))
                    .group_by(model_versions.c.model_id)
                ).all()
            )
        return [
            RegisteredModel(
                id=r.id, project=project, name=r.name, description=r.description, tags=dict(r.tags or {}),
                created_at=r.created_at, updated_at=r.updated_at, aliases=aliases[r.id],
                latest_version=latest.get(r.id), gate=r.gate,
            )
            for r in rows
        ]

    def _versions(
        self, conn: Connection, project: str, name: str, rows: Sequence[Any]
    ) -> list[ModelVersion]:
        held: dict[int, list[str]] = {}
        if rows:
            for a in conn.execute(
                select(model_aliases)
                .where(model_aliases.c.model_id == rows[0].model_id)
                .order_by(model_aliases.c.alias)
            ):
                held.setdefault(a.version, []).append(a.alias)
        return [
            ModelVersion(
                id=r.id, project=project, name=name, version=r.version, status=r.status,
                description=r.description, tags=dict(r.tags or {}), run_id=r.run_id, flavour=r.flavour,
                format=r.format, package_digest=r.package_digest, signature=r.signature,
                info=dict(r.info or {}), created_by=r.created_by, created_at=r.created_at,
                aliases=tuple(held.get(r.version, ())),
            )
            for r in rows
        ]

    def _version_row(self, conn: Connection, model: Any, version: int) -> Any:
        row = conn.execute(
            select(model_versions).where(
                model_versions.c.model_id == model.id, model_versions.c.version == version
            )
        ).first()
        if row is None:
            raise NotFound(f"model {model.name!r} has no version {version}", field="version")
        return row

    def _resolve(self, conn: Connection, model: Any, version: int | str) -> int:
        """A version number from a number, ``"latest"`` or an alias name."""
        if isinstance(version, str):
            if version.isdigit():
                return check_version(int(version))
            if version == "latest":
                latest = conn.execute(
                    select(func.max(model_versions.c.version)).where(model_versions.c.model_id == model.id)
                ).scalar()
                if latest is None:
                    raise NotFound(f"model {model.name!r} has no versions yet", field="version")
                return int(latest)
            alias = check_alias(version)
            held = conn.execute(
                select(model_aliases.c.version).where(
                    model_aliases.c.model_id == model.id, model_aliases.c.alias == alias
                )
            ).scalar()
            if held is None:
                raise NotFound(f"model {model.name!r} has no alias {alias!r}", field="alias")
            return int(held)
        return check_version(version)

    def project_of_version(self, version_id: str) -> str | None:
        """The project of model version ``version_id`` (``None`` if there is none): what the server authorises on."""
        with read_transaction(self._engine) as conn:
            return conn.execute(
                select(projects.c.name)
                .join(registered_models, registered_models.c.project_id == projects.c.id)
                .join(model_versions, model_versions.c.model_id == registered_models.c.id)
                .where(model_versions.c.id == version_id)
            ).scalar()

    # ------------------------------------------------------------------ models

    def create_model(
        self, project: str, name: str, *, description: str = "",
        tags: Mapping[str, str] | None = None, exist_ok: bool = False, idempotency_key: str | None = None,
    ) -> RegisteredModel:
        """Create a model; a retry with the same ``idempotency_key`` returns it instead of ``AlreadyExists``."""
        v.check_name(project, "project")
        v.check_name(name, "model")
        tag_values = v.check_tags(tags or {})
        with write_transaction(self._engine) as conn:
            if idempotency_key is not None and not claim(conn, idempotency_key):
                return self._model(conn, project, self._model_row(conn, project, name))
            row = self._ensure_model(conn, project, name, description, tag_values, exist_ok=exist_ok)
            return self._model(conn, project, row)

    def _ensure_model(
        self, conn: Connection, project: str, name: str, description: str = "",
        tags: Mapping[str, str] | None = None, *, exist_ok: bool = True,
    ) -> Any:
        pid = self._project_id(conn, project, create=True)
        now = now_ms()
        inserted = conn.execute(
            dialect_insert(conn)(registered_models)
            .values(id=new_id(), project_id=pid, name=name, description=description, tags=dict(tags or {}),
                    gate=None, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=[registered_models.c.project_id, registered_models.c.name])
            .returning(registered_models.c.id)
        ).first()
        if inserted is not None:
            append_event(conn, action="model.create", object_kind="model", object_id=name, project=project,
                         after={"description": description, "tags": dict(tags or {})})
        elif not exist_ok:
            raise AlreadyExists(f"model {name!r} already exists in project {project!r}", field="name")
        return self._model_row(conn, project, name)

    def get_model(self, project: str, name: str) -> RegisteredModel:
        with read_transaction(self._engine) as conn:
            return self._model(conn, project, self._model_row(conn, project, name))

    def list_models(
        self, project: str, *, name_contains: str | None = None, tag: tuple[str, str] | None = None,
        max_results: int = 100, page_token: str | None = None,
    ) -> Page:
        limit = _page_size(max_results)
        v.check_name(project, "project")
        query = (
            select(registered_models)
            .join(projects, projects.c.id == registered_models.c.project_id)
            .where(projects.c.name == project)
        )
        if name_contains:
            pattern = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(registered_models.c.name.like(f"%{pattern}%", escape="\\"))
        if page_token:
            after = _decode_token(page_token)
            if not isinstance(after, str):
                raise InvalidArgument("page_token is not a token this store handed out", field="page_token")
            query = query.where(registered_models.c.name > after)
        query = query.order_by(registered_models.c.name)
        with read_transaction(self._engine) as conn:
            if tag is None:
                rows = conn.execute(query.limit(limit + 1)).all()
            else:  # tags are JSON: filter in Python, reading on until the page is full
                key, value = tag
                rows = [r for r in conn.execute(query) if (r.tags or {}).get(key) == value][: limit + 1]
            more = len(rows) > limit
            found = self._models(conn, project, rows[:limit])
        return Page(found, _encode_token(found[-1].name) if more else None)

    def update_model(
        self, project: str, name: str, *, description: str | None = None,
        tags: Mapping[str, str] | None = None, gate: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = str(description)
        if gate is not None:
            values["gate"] = json.loads(json.dumps(dict(gate)))
        tag_values = v.check_tags(tags) if tags is not None else None
        with write_transaction(self._engine) as conn:
            row = self._model_row(conn, project, name, lock=True)
            if tag_values is not None:
                values["tags"] = {**(row.tags or {}), **tag_values}
            if values:
                values["updated_at"] = now_ms()
                conn.execute(update(registered_models).where(registered_models.c.id == row.id).values(**values))
                append_event(conn, action="model.update", object_kind="model", object_id=name, project=project,
                             before={k: getattr(row, k) for k in values if k != "updated_at"},
                             after={k: val for k, val in values.items() if k != "updated_at"})
            return self._model(conn, project, self._model_row(conn, project, name))

    # ---------------------------------------------------------------- versions

    def create_version(
        self, project: str, name: str, *, flavour: str, format: str, package_digest: str,
        signature: Mapping[str, Any] | None, info: Mapping[str, Any], run_id: str | None = None,
        description: str = "", tags: Mapping[str, str] | None = None, idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Register the next version; a retry with the same ``idempotency_key`` returns the first one."""
        v.check_name(project, "project")
        v.check_name(name, "model")
        tag_values = v.check_tags(tags or {})
        with write_transaction(self._engine) as conn:
            if idempotency_key is not None and not claim(conn, idempotency_key):
                model = self._model_row(conn, project, name)
                first = int(earlier(conn, idempotency_key) or 0)
                return self._versions(conn, project, name, [self._version_row(conn, model, first)])[0]
            model = self._ensure_model(conn, project, name)
            number = next_value(conn, f"model-versions:{model.id}")
            if idempotency_key is not None:
                remember(conn, idempotency_key, str(number))
            now = now_ms()
            conn.execute(
                insert(model_versions).values(
                    id=new_id(), model_id=model.id, version=number, status=READY, description=description,
                    tags=tag_values, run_id=run_id, flavour=flavour, format=format,
                    package_digest=package_digest, signature=dict(signature) if signature else None,
                    info=json.loads(json.dumps(dict(info), default=str)), created_by=current_actor(),
                    created_at=now,
                )
            )
            conn.execute(update(registered_models).where(registered_models.c.id == model.id).values(updated_at=now))
            append_event(conn, action="model_version.create", object_kind="model_version",
                         object_id=f"{name}/{number}", project=project,
                         after={"version": number, "run_id": run_id, "flavour": flavour, "format": format,
                                "package": package_digest})
            return self._versions(conn, project, name, [self._version_row(conn, model, number)])[0]

    def get_version(self, project: str, name: str, version: int | str) -> ModelVersion:
        with read_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name)
            number = self._resolve(conn, model, version)
            return self._versions(conn, project, name, [self._version_row(conn, model, number)])[0]

    def list_versions(
        self, project: str, name: str, *, include_archived: bool = True,
        max_results: int = 100, page_token: str | None = None,
    ) -> Page:
        limit = _page_size(max_results)
        with read_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name)
            query = select(model_versions).where(model_versions.c.model_id == model.id)
            if not include_archived:
                query = query.where(model_versions.c.status != ARCHIVED)
            if page_token:
                before = _decode_token(page_token)
                if not isinstance(before, int):
                    raise InvalidArgument("page_token is not a token this store handed out", field="page_token")
                query = query.where(model_versions.c.version < before)
            rows = conn.execute(query.order_by(model_versions.c.version.desc()).limit(limit + 1)).all()
            found = self._versions(conn, project, name, rows[:limit])
        return Page(found, _encode_token(found[-1].version) if len(rows) > limit else None)

    def update_version(
        self, project: str, name: str, version: int, *, description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        check_version(version)
        tag_values = v.check_tags(tags) if tags is not None else None
        with write_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name, lock=True)
            row = self._version_row(conn, model, version)
            values: dict[str, Any] = {}
            if description is not None:
                values["description"] = str(description)
            if tag_values is not None:
                values["tags"] = {**(row.tags or {}), **tag_values}
            if values:
                conn.execute(update(model_versions).where(model_versions.c.id == row.id).values(**values))
                append_event(conn, action="model_version.update", object_kind="model_version",
                             object_id=f"{name}/{version}", project=project,
                             before={k: getattr(row, k) for k in values}, after=values)
            return self._versions(conn, project, name, [self._version_row(conn, model, version)])[0]

    def _aliases_of(self, conn: Connection, model_id: str, version: int) -> list[str]:
        return list(
            conn.execute(
                select(model_aliases.c.alias).where(
                    model_aliases.c.model_id == model_id, model_aliases.c.version == version
                ).order_by(model_aliases.c.alias)
            ).scalars()
        )

    def set_status(self, project: str, name: str, version: int, status: str) -> ModelVersion:
        check_version(version)
        if status not in (READY, ARCHIVED):
            raise InvalidArgument(f"status must be {READY!r} or {ARCHIVED!r}, got {status!r}", field="status")
        with write_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name, lock=True)
            row = self._version_row(conn, model, version)
            if status == ARCHIVED:
                held = self._aliases_of(conn, model.id, version)
                if held:
                    raise InvalidState(
                        f"{name} version {version} holds alias(es) {', '.join(held)}; move them to "
                        "another version before archiving it"
                    )
            if row.status != status:
                conn.execute(update(model_versions).where(model_versions.c.id == row.id).values(status=status))
                append_event(conn, action="model_version.archive" if status == ARCHIVED else "model_version.restore",
                             object_kind="model_version", object_id=f"{name}/{version}", project=project,
                             before={"status": row.status}, after={"status": status})
            return self._versions(conn, project, name, [self._version_row(conn, model, version)])[0]

    def delete_version(self, project: str, name: str, version: int) -> None:
        check_version(version)
        with write_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name, lock=True)
            row = self._version_row(conn, model, version)
            held = self._aliases_of(conn, model.id, version)
            if held:
                raise InvalidState(
                    f"{name} version {version} holds alias(es) {', '.join(held)}; it cannot be deleted "
                    "(move or remove the alias first)"
                )
            conn.execute(delete(model_versions).where(model_versions.c.id == row.id))
            # its package's blobs stop being readable through it (other versions keep their own rows)
            conn.execute(delete(blob_refs).where(blob_refs.c.source == row.id))
            conn.execute(delete(lineage_edges).where(
                ((lineage_edges.c.dst_kind == "model_version") & (lineage_edges.c.dst_id == row.id))
                | ((lineage_edges.c.src_kind == "model_version") & (lineage_edges.c.src_id == row.id))))
            append_event(conn, action="model_version.delete", object_kind="model_version",
                         object_id=f"{name}/{version}", project=project,
                         before={"version": version, "package": row.package_digest, "run_id": row.run_id})

    # ----------------------------------------------------------------- aliases

    def _move_alias(
        self, conn: Connection, project: str, model: Any, alias: str, version: int | None, action: str,
        details: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version`` (``None`` removes it); returns the previous holder."""
        previous = conn.execute(
            select(model_aliases.c.version).where(
                model_aliases.c.model_id == model.id, model_aliases.c.alias == alias
            )
        ).scalar()
        if version is not None:
            row = self._version_row(conn, model, version)
            if row.status == ARCHIVED:
                raise InvalidState(
                    f"{model.name} version {version} is archived; an alias cannot point at it "
                    "(restore it first)"
                )
        if version == previous:
            return previous
        now = now_ms()
        if previous is not None:
            conn.execute(delete(model_aliases).where(
                model_aliases.c.model_id == model.id, model_aliases.c.alias == alias))
        if version is not None:
            conn.execute(insert(model_aliases).values(model_id=model.id, alias=alias, version=version, updated_at=now))
        conn.execute(insert(alias_history).values(
            model_id=model.id, alias=alias, action=action, version=version, previous=previous,
            actor=current_actor(), at=now))
        append_event(conn, action=f"alias.{action}", object_kind="model", object_id=model.name, project=project,
                     before={alias: previous}, after={alias: version}, details=details)
        return int(previous) if previous is not None else None

    def set_alias(
        self, project: str, name: str, alias: str, version: int, *, action: str = "set",
        details: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version``; the previous holder (the first attempt's, on a retry)."""
        alias = check_alias(alias)
        check_version(version)
        with write_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name, lock=True)
            if idempotency_key is not None and not claim(conn, idempotency_key):
                first = earlier(conn, idempotency_key)
                return int(first) if first else None
            previous = self._move_alias(conn, project, model, alias, version, action, details)
            if idempotency_key is not None:
                remember(conn, idempotency_key, "" if previous is None else str(previous))
            return previous

    def delete_alias(self, project: str, name: str, alias: str) -> None:
        alias = check_alias(alias)
        with write_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name, lock=True)
            if self._move_alias(conn, project, model, alias, None, "remove") is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")

    def alias_history(self, project: str, name: str, alias: str) -> list[AliasMove]:
        alias = check_alias(alias)
        with read_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name)
            return self._history(conn, model.id, alias)

    def _history(self, conn: Connection, model_id: str, alias: str) -> list[AliasMove]:
        rows = conn.execute(
            select(alias_history)
            .where(alias_history.c.model_id == model_id, alias_history.c.alias == alias)
            .order_by(alias_history.c.id)
        ).all()
        return [AliasMove(r.alias, r.action, r.version, r.previous, r.actor, r.at) for r in rows]

    def rollback_alias(
        self, project: str, name: str, alias: str, *, idempotency_key: str | None = None
    ) -> tuple[int, int]:
        """Move ``alias`` back one step; a retry with the same ``idempotency_key`` does not step twice."""
        alias = check_alias(alias)
        with write_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name, lock=True)
            if idempotency_key is not None and not claim(conn, idempotency_key):
                was, now = str(earlier(conn, idempotency_key)).split(",")
                return int(was), int(now)
            # Replay the history as a stack: each move pushes the holder it replaced,
            # each rollback pops one, so repeated rollbacks walk further back.
            stack: list[int | None] = []
            for move in self._history(conn, model.id, alias):
                if move.action == "rollback":
                    if stack:
                        stack.pop()
                else:
                    stack.append(move.previous)
            current = conn.execute(select(model_aliases.c.version).where(
                model_aliases.c.model_id == model.id, model_aliases.c.alias == alias)).scalar()
            if current is None:
                raise NotFound(f"model {name!r} has no alias {alias!r} to roll back", field="alias")
            target = stack[-1] if stack else None
            if target is None:
                raise InvalidState(f"alias {alias!r} of {name} has no previous holder to roll back to")
            self._move_alias(conn, project, model, alias, target, "rollback")
            if idempotency_key is not None:
                remember(conn, idempotency_key, f"{int(current)},{int(target)}")
            return int(current), int(target)

    # ------------------------------------------------------------------- gates

    def record_gate(
        self, project: str, name: str, version: int, alias: str, *, champion_version: int | None,
        passed: bool, forced: bool, reason: str, report: Mapping[str, Any], move_alias: bool,
        against: str | None = None, idempotency_key: str | None = None,
    ) -> GateEvaluation:
        """Record a gate's verdict (and move the alias); a retry with the same key records it once."""
        alias = check_alias(alias)
        compared = check_alias(against) if against else alias
        check_version(version)
        with write_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name, lock=True)
            if idempotency_key is not None and not claim(conn, idempotency_key):
                first = conn.execute(
                    select(gate_evaluations).where(gate_evaluations.c.id == earlier(conn, idempotency_key))
                ).one()
                return _evaluation(first, name)
            self._version_row(conn, model, version)
            holder = conn.execute(select(model_aliases.c.version).where(
                model_aliases.c.model_id == model.id, model_aliases.c.alias == compared)).scalar()
            if holder == version and compared != alias:
                holder = None  # the candidate holds the alias it was compared with: nothing to beat
            if move_alias and holder != champion_version:
                # The gate judged the candidate against a holder that has since been replaced.
                raise InvalidState(
                    f"{compared!r} of {name} moved to version {holder} while the gate compared against "
                    f"version {champion_version}; promote again to gate against the new holder"
                )
            row = {
                "id": new_id(), "model_id": model.id, "version": version, "alias": alias,
                "champion_version": champion_version, "passed": passed, "forced": forced, "reason": reason,
                "report": json.loads(json.dumps(dict(report), default=str)), "actor": current_actor(),
                "at": now_ms(),
            }
            conn.execute(insert(gate_evaluations).values(**row))
            if idempotency_key is not None:
                remember(conn, idempotency_key, row["id"])
            verdict = "forced" if forced else ("passed" if passed else "failed")
            append_event(conn, action=f"gate.{verdict}", object_kind="model_version",
                         object_id=f"{name}/{version}", project=project,
                         details={"alias": alias, "champion_version": champion_version, "reason": reason,
                                  "evaluation": row["id"]})
            if move_alias:
                self._move_alias(conn, project, model, alias, version, "promote",
                                 {"evaluation": row["id"], "forced": forced, "reason": reason})
        del row["model_id"]
        return GateEvaluation(name=name, **row)

    def list_gate_evaluations(self, project: str, name: str, version: int | None = None) -> list[GateEvaluation]:
        with read_transaction(self._engine) as conn:
            model = self._model_row(conn, project, name)
            query = select(gate_evaluations).where(gate_evaluations.c.model_id == model.id)
            if version is not None:
                query = query.where(gate_evaluations.c.version == check_version(version))
            rows = conn.execute(query.order_by(gate_evaluations.c.at, gate_evaluations.c.id)).all()
        return [_evaluation(r, name) for r in rows]


def _evaluation(r: Any, name: str) -> GateEvaluation:
    return GateEvaluation(id=r.id, name=name, version=r.version, alias=r.alias,
                          champion_version=r.champion_version, passed=bool(r.passed), forced=bool(r.forced),
                          reason=r.reason, report=r.report, actor=r.actor, at=r.at)
