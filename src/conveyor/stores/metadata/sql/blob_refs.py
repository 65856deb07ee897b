"""Which model packages and dataset versions reference a blob: who may read it through the server.

A run's files are rows of ``artifacts``, so the projects that may read one of
them are a join away. A model package or a dataset version is a single manifest
blob listing its files, and no table names those files; the server therefore
writes one ``blob_refs`` row per blob (the manifest and every file it lists)
when a version is registered: ``(digest, "model", project)`` for a package,
``(digest, "dataset", "")`` for a dataset version (datasets belong to the whole
server). Versions registered on the database directly, or before this table
existed, are indexed when a read first misses (:meth:`SqlBlobRefs.unindexed`).

Example::

    refs = SqlBlobRefs(engine)
    refs.add("model", "bikes", [package_digest, *file_digests])
    projects, dataset = refs.readers(digest)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, and_, exists, select

from conveyor.core.errors import InvalidArgument
from conveyor.stores.metadata.sql import bulk
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.schema import (
    artifacts,
    blob_refs,
    dataset_versions,
    model_versions,
    projects,
    registered_models,
    runs,
)

MODEL = "model"
DATASET = "dataset"


class SqlBlobRefs:
    """The ``blob_refs`` index over one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, kind: str, project: str, digests: Iterable[str]) -> None:
        """Record that a ``kind`` record of ``project`` references each blob of ``digests`` (idempotent)."""
        if kind not in (MODEL, DATASET):
            raise InvalidArgument(f"blob reference kind must be {MODEL!r} or {DATASET!r}, got {kind!r}", field="kind")
        rows = [{"digest": d, "kind": kind, "project": project if kind == MODEL else ""} for d in dict.fromkeys(digests)]
        if not rows:
            return
        with write_transaction(self._engine) as conn:
            conn.execute(bulk.dialect_insert(conn)(blob_refs).on_conflict_do_nothing(), rows)

    def readers(self, digest: str) -> tuple[set[str], bool]:
        """The projects whose runs or models reference ``digest``, and whether a dataset version does."""
        with read_transaction(self._engine) as conn:
            found = set(conn.execute(
                select(projects.c.name).distinct()
                .select_from(artifacts.join(runs, runs.c.pk == artifacts.c.run_pk)
                             .join(projects, runs.c.project_id == projects.c.id))
                .where(artifacts.c.digest == digest)
            ).scalars())
            dataset = False
            for kind, project in conn.execute(select(blob_refs.c.kind, blob_refs.c.project)
                                              .where(blob_refs.c.digest == digest)):
                if kind == DATASET:
                    dataset = True
                else:
                    found.add(project)
            return found, dataset

    def unindexed(self) -> list[tuple[str, str, str]]:
        """``(kind, project, manifest digest)`` of every model and dataset version not indexed yet."""
        def indexed(digest: Any, kind: str, project: Any) -> Any:
            return exists().where(and_(blob_refs.c.digest == digest, blob_refs.c.kind == kind,
                                       blob_refs.c.project == project))

        with read_transaction(self._engine) as conn:
            models = conn.execute(
                select(projects.c.name, model_versions.c.package_digest).distinct()
                .select_from(model_versions.join(registered_models, registered_models.c.id == model_versions.c.model_id)
                             .join(projects, projects.c.id == registered_models.c.project_id))
                .where(~indexed(model_versions.c.package_digest, MODEL, projects.c.name))
            ).all()
            datasets = conn.execute(
                select(dataset_versions.c.content_hash).distinct()
                .where(~indexed(dataset_versions.c.content_hash, DATASET, ""))
            ).scalars().all()
        return [(MODEL, p, d) for p, d in models] + [(DATASET, "", d) for d in datasets]
