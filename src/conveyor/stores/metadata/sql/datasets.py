"""Datasets, versions and validation results on SQLite or PostgreSQL.

A version is registered in one write transaction: the dataset row (created on
first use), the next gap-free number from ``sequences``, the version row and its
audit event. The caller stores every blob first, so a version row never points
at bytes that are not there; a crash before the commit leaves no version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from conveyor.core import validation as v
from conveyor.core.context import current_actor
from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.core.ids import check_id, new_id, now_ms
from conveyor.stores.metadata.datasets import (
    CheckRecord,
    DatasetSummary,
    NewVersion,
    VersionRecord,
)
from conveyor.stores.metadata.sql.audit import append_event
from conveyor.stores.metadata.sql.bulk import dialect_insert
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.idempotency import claim, earlier, remember
from conveyor.stores.metadata.sql.schema import dataset_checks, dataset_versions, datasets
from conveyor.stores.metadata.sql.sequences import next_value

KINDS = ("table", "files")
_VERSION_COLUMNS = [c for c in dataset_versions.c if c.name != "profile"]


def _record(row: Any, name: str) -> VersionRecord:
    m = row._mapping
    return VersionRecord(
        id=m["id"], dataset_id=m["dataset_id"], name=name, version=m["version"],
        content_hash=m["content_hash"], kind=m["kind"], num_files=m["num_files"], size=m["size"],
        num_rows=m["num_rows"], schema=m["schema"], profile=m.get("profile"),
        description=m["description"], tags=m["tags"] or {}, creator=m["creator"],
        created_at=m["created_at"],
    )


def _check(row: Any) -> CheckRecord:
    m = row._mapping
    return CheckRecord(**{c.name: m[c.name] for c in dataset_checks.columns if c.name != "seq"})


class SqlDatasetStore:
    """The :class:`~conveyor.stores.metadata.datasets.DatasetStore` over the shared engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ---------------------------------------------------------------- versions

    def _dataset_id(self, conn: Connection, name: str) -> str | None:
        return conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar()

    def _ensure_dataset(self, conn: Connection, name: str) -> str:
        dataset_id = self._dataset_id(conn, name)
        if dataset_id is None:
            # Two writers may create the same dataset at once: the loser's insert is a no-op.
            conn.execute(
                dialect_insert(conn)(datasets)
                .values(id=new_id(), name=name, created_at=now_ms())
                .on_conflict_do_nothing(index_elements=[datasets.c.name])
            )
            dataset_id = self._dataset_id(conn, name)
            assert dataset_id is not None
        return dataset_id

    def _latest(self, conn: Connection, dataset_id: str, *, with_profile: bool) -> Any:
        columns = list(dataset_versions.c) if with_profile else _VERSION_COLUMNS
        return conn.execute(
            select(*columns)
            .where(dataset_versions.c.dataset_id == dataset_id)
            .order_by(dataset_versions.c.version.desc())
            .limit(1)
        ).first()

    def create_version(self, new: NewVersion) -> VersionRecord:
        name = v.check_name(new.name, "dataset")
        if new.kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {KINDS}, got {new.kind!r}", field="kind")
        tags = v.check_tags(new.tags)
        with write_transaction(self._engine) as conn:
            dataset_id = self._ensure_dataset(conn, name)
            latest = self._latest(conn, dataset_id, with_profile=True)
            if latest is not None and latest.content_hash == new.content_hash:
                # Re-adding unchanged content (or re-running an interrupted add whose
                # commit did land) names the existing version instead of a copy.
                return _record(latest, name)
            number = next_value(conn, f"dataset-versions:{dataset_id}")
            row: dict[str, Any] = {
                "id": new_id(), "dataset_id": dataset_id, "version": number,
                "content_hash": new.content_hash, "kind": new.kind, "num_files": new.num_files,
                "size": new.size, "num_rows": new.num_rows, "schema": new.schema,
                "profile": new.profile, "description": new.description, "tags": tags,
                "creator": new.creator or current_actor(), "created_at": now_ms(),
            }
            conn.execute(insert(dataset_versions).values(**row))
            append_event(
                conn, action="dataset_version.create", object_kind="dataset_version",
                object_id=row["id"],
                after={"ref": f"{name}@{number}", "content_hash": new.content_hash},
            )
        return VersionRecord(name=name, **row)

    def get_version(self, name: str, version: int | None = None) -> VersionRecord:
        v.check_name(name, "dataset")
        with read_transaction(self._engine) as conn:
            dataset_id = self._dataset_id(conn, name)
            if dataset_id is None:
                raise NotFound(f"dataset {name!r} does not exist", field="name")
            if version is None:
                row = self._latest(conn, dataset_id, with_profile=True)
            else:
                row = conn.execute(
                    select(dataset_versions).where(
                        dataset_versions.c.dataset_id == dataset_id,
                        dataset_versions.c.version == version,
                    )
                ).first()
        if row is None:
            which = "any version" if version is None else f"version {version}"
            raise NotFound(f"dataset {name!r} has no {which}", field="version")
        return _record(row, name)

    def get_version_by_id(self, version_id: str) -> VersionRecord:
        check_id(version_id, "version_id")
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                select(dataset_versions, datasets.c.name.label("dataset_name"))
                .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
                .where(dataset_versions.c.id == version_id)
            ).first()
        if row is None:
            raise NotFound(f"dataset version {version_id} does not exist", field="version_id")
        return _record(row, row.dataset_name)

    def list_versions(self, name: str) -> list[VersionRecord]:
        v.check_name(name, "dataset")
        with read_transaction(self._engine) as conn:
            dataset_id = self._dataset_id(conn, name)
            if dataset_id is None:
                raise NotFound(f"dataset {name!r} does not exist", field="name")
            rows = conn.execute(
                select(*_VERSION_COLUMNS)
                .where(dataset_versions.c.dataset_id == dataset_id)
                .order_by(dataset_versions.c.version)
            ).all()
        return [_record(r, name) for r in rows]

    def list_datasets(self) -> list[DatasetSummary]:
        query = (
            select(
                datasets.c.id, datasets.c.name, datasets.c.created_at,
                func.max(dataset_versions.c.version).label("latest"),
                func.count(dataset_versions.c.id).label("count"),
            )
            .join(dataset_versions, dataset_versions.c.dataset_id == datasets.c.id)
            .group_by(datasets.c.id, datasets.c.name, datasets.c.created_at)
            .order_by(datasets.c.name)
        )
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            DatasetSummary(
                id=r.id, name=r.name, created_at=r.created_at,
                latest_version=int(r[3]), num_versions=int(r[4]),
            )
            for r in rows
        ]

    def all_content_hashes(self) -> list[str]:
        with read_transaction(self._engine) as conn:
            return list(conn.execute(select(dataset_versions.c.content_hash).distinct()).scalars())

    # ------------------------------------------------------------------ checks

    def record_check(
        self,
        *,
        dataset: str,
        version: int | None,
        target: str,
        suite: str,
        ok: bool,
        num_failures: int,
        report: Mapping[str, Any],
        run_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> CheckRecord:
        """Record a validation; a retry with the same ``idempotency_key`` returns the first record."""
        v.check_name(dataset, "dataset")
        if run_id is not None:
            check_id(run_id, "run_id")
        row: dict[str, Any] = {
            "id": new_id(), "dataset": dataset, "version": version, "target": target[:4000],
            "suite": suite[:250], "ok": bool(ok), "num_failures": int(num_failures),
            "report": dict(report), "run_id": run_id, "actor": current_actor(),
            "created_at": now_ms(),
        }
        with write_transaction(self._engine) as conn:
            if idempotency_key is not None:
                if not claim(conn, idempotency_key):
                    first = earlier(conn, idempotency_key)
                    return _check(conn.execute(select(dataset_checks).where(dataset_checks.c.id == first)).one())
                remember(conn, idempotency_key, row["id"])
            conn.execute(insert(dataset_checks).values(**row))
            append_event(
                conn, action="dataset_check.record", object_kind="dataset", object_id=dataset,
                after={"check": row["id"], "ok": row["ok"], "failures": row["num_failures"]},
            )
        return CheckRecord(**row)

    def list_checks(self, dataset: str, limit: int = 100) -> list[CheckRecord]:
        v.check_name(dataset, "dataset")
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(dataset_checks)
                .where(dataset_checks.c.dataset == dataset)
                .order_by(dataset_checks.c.seq.desc())
                .limit(limit)
            ).all()
        return [_check(r) for r in rows]
