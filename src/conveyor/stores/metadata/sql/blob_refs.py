"""Which records reference a blob, and who proved they hold it: who may read and name it through the server.

A run's files are rows of ``artifacts``, so the projects that may read one of
them are a join away. A model package or a dataset version is a single manifest
blob listing its files, and no table names those files; the server therefore
writes one ``blob_refs`` row per blob (the manifest and every file it lists)
when a version is registered: ``(digest, "model", project, version id)`` for a
package, ``(digest, "dataset", "", version id)`` for a dataset version (datasets
belong to the whole server). Deleting a version deletes its rows in the same
transaction. Versions registered on the database directly, or before this
table existed, are indexed when a read first misses (:meth:`SqlBlobRefs.unindexed`).

``blob_receipts`` records who uploaded a blob's bytes through the server. A
caller may name a blob in a record (a run file, a package, a dataset version)
only if they hold it: a receipt, or a reference they can already read
(:meth:`SqlBlobRefs.held`). Knowing a digest is not enough.

Example::

    refs = SqlBlobRefs(engine)
    refs.add("model", "bikes", version_id, [package_digest, *file_digests])
    projects, dataset = refs.readers(digest)
    refs.receive("eddie", [digest])
    assert refs.held("eddie", set(), member=False, digests=[digest]) == {digest}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, and_, exists, or_, select

from conveyor.core.errors import InvalidArgument
from conveyor.core.ids import now_ms
from conveyor.stores.metadata.sql import bulk
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.schema import (
    artifacts,
    blob_receipts,
    blob_refs,
    dataset_versions,
    model_versions,
    projects,
    registered_models,
    runs,
)

MODEL = "model"
DATASET = "dataset"
_CHUNK = 500  # digests per IN (...) list


class SqlBlobRefs:
    """The ``blob_refs`` index over one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, kind: str, project: str, source: str, digests: Iterable[str]) -> None:
        """Record that version ``source`` (of ``project``, for a model) references each blob (idempotent)."""
        if kind not in (MODEL, DATASET):
            raise InvalidArgument(f"blob reference kind must be {MODEL!r} or {DATASET!r}, got {kind!r}", field="kind")
        rows = [{"digest": d, "kind": kind, "project": project if kind == MODEL else "", "source": source}
                for d in dict.fromkeys(digests)]
        if not rows:
            return
        with write_transaction(self._engine) as conn:
            conn.execute(bulk.dialect_insert(conn)(blob_refs).on_conflict_do_nothing(), rows)

    def receive(self, principal: str, digests: Iterable[str]) -> None:
        """Record that ``principal`` uploaded each blob of ``digests`` through the server (idempotent)."""
        now = now_ms()
        rows = [{"digest": d, "principal": principal, "created_at": now} for d in dict.fromkeys(digests)]
        if rows:
            with write_transaction(self._engine) as conn:
                conn.execute(bulk.dialect_insert(conn)(blob_receipts).on_conflict_do_nothing(), rows)

    def held(self, principal: str, readable: set[str], *, member: bool, digests: Iterable[str]) -> set[str]:
        """The blobs of ``digests`` that ``principal`` holds.

        Held: uploaded by them (a receipt), or referenced by a run or model
        version of one of the projects of ``readable``, or by a dataset
        version when ``member`` (a role on some project).
        """
        wanted = list(dict.fromkeys(digests))
        found: set[str] = set()
        names = sorted(readable)
        with read_transaction(self._engine) as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                found.update(conn.execute(select(blob_receipts.c.digest).where(
                    blob_receipts.c.principal == principal, blob_receipts.c.digest.in_(chunk))).scalars())
                refs = [and_(blob_refs.c.kind == MODEL, blob_refs.c.project.in_(names))] if names else []
                if member:
                    refs.append(blob_refs.c.kind == DATASET)
                if refs:
                    found.update(conn.execute(select(blob_refs.c.digest).distinct().where(
                        blob_refs.c.digest.in_(chunk), or_(*refs))).scalars())
                if names:
                    found.update(conn.execute(
                        select(artifacts.c.digest).distinct()
                        .select_from(artifacts.join(runs, runs.c.pk == artifacts.c.run_pk)
                                     .join(projects, runs.c.project_id == projects.c.id))
                        .where(artifacts.c.digest.in_(chunk), projects.c.name.in_(names))
                    ).scalars())
        return found

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

    def unindexed(self) -> list[tuple[str, str, str, str]]:
        """``(kind, project, version id, manifest digest)`` of every model and dataset version not indexed yet."""
        def indexed(source: Any) -> Any:
            return exists().where(blob_refs.c.source == source)

        with read_transaction(self._engine) as conn:
            models = conn.execute(
                select(projects.c.name, model_versions.c.id, model_versions.c.package_digest)
                .select_from(model_versions.join(registered_models, registered_models.c.id == model_versions.c.model_id)
                             .join(projects, projects.c.id == registered_models.c.project_id))
                .where(~indexed(model_versions.c.id))
            ).all()
            datasets = conn.execute(
                select(dataset_versions.c.id, dataset_versions.c.content_hash).where(~indexed(dataset_versions.c.id))
            ).all()
        return [(MODEL, p, i, d) for p, i, d in models] + [(DATASET, "", i, d) for i, d in datasets]
