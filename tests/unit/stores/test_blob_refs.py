"""The blob reference index and upload receipts, on SQLite and PostgreSQL."""

from __future__ import annotations

from conveyor.core.entities import ArtifactFile
from conveyor.stores.artifacts.cas import hash_bytes
from conveyor.stores.metadata.datasets import NewVersion
from conveyor.stores.metadata.sql.store import SqlMetadataStore

A, B, C, D = (hash_bytes(x) for x in (b"a", b"b", b"c", b"d"))


def test_readers_are_the_projects_of_runs_and_models_and_a_dataset_flag(sql_store: SqlMetadataStore) -> None:
    refs = sql_store.blob_refs
    run = sql_store.create_run(project="runs")
    sql_store.record_artifacts(run.id, [ArtifactFile(path="f", digest=A, size=1)])
    refs.add("model", "p", "v1", [A, B, A])
    refs.add("model", "p", "v1", [B])  # a retry changes nothing
    refs.add("dataset", "ignored", "d1", [B, C])
    assert refs.readers(A) == ({"runs", "p"}, False)
    assert refs.readers(B) == ({"p"}, True)
    assert refs.readers(C) == (set(), True)
    assert refs.readers(hash_bytes(b"nobody")) == (set(), False)


def test_unindexed_lists_the_versions_whose_manifest_has_no_reference(sql_store: SqlMetadataStore) -> None:
    p = sql_store.registry.create_version("p", "m", flavour="sklearn", format="pickle", package_digest=A,
                                          signature=None, info={})
    q = sql_store.registry.create_version("q", "m", flavour="sklearn", format="pickle", package_digest=A,
                                          signature=None, info={})
    d = sql_store.datasets.create_version(NewVersion(name="d", content_hash=B, kind="files", num_files=1, size=1))
    assert sorted(sql_store.blob_refs.unindexed()) == sorted(
        [("dataset", "", d.id, B), ("model", "p", p.id, A), ("model", "q", q.id, A)])
    sql_store.blob_refs.add("model", "p", p.id, [A])
    sql_store.blob_refs.add("dataset", "", d.id, [B])
    assert sql_store.blob_refs.unindexed() == [("model", "q", q.id, A)]


def test_deleting_a_version_deletes_its_references_but_not_another_versions(sql_store: SqlMetadataStore) -> None:
    registry, refs = sql_store.registry, sql_store.blob_refs
    one = registry.create_version("p", "m", flavour="sklearn", format="pickle", package_digest=A, signature=None,
                                  info={})
    two = registry.create_version("p", "m", flavour="sklearn", format="pickle", package_digest=C, signature=None,
                                  info={})
    refs.add("model", "p", one.id, [A, B])
    refs.add("model", "p", two.id, [C, B])  # B is shared by both packages
    registry.delete_version("p", "m", 2)
    assert refs.readers(C) == (set(), False)
    assert refs.readers(B) == ({"p"}, False)  # version 1 still lists it
    registry.delete_version("p", "m", 1)
    assert refs.readers(A) == refs.readers(B) == (set(), False)


def test_held_means_a_receipt_or_a_reference_the_caller_can_read(sql_store: SqlMetadataStore) -> None:
    refs = sql_store.blob_refs
    run = sql_store.create_run(project="runs")
    sql_store.record_artifacts(run.id, [ArtifactFile(path="f", digest=A, size=1)])
    refs.add("model", "p", "v1", [B])
    refs.add("dataset", "", "d1", [C])
    refs.receive("eve", [D, D])
    refs.receive("eve", [D])  # idempotent
    every = [A, B, C, D]
    assert refs.held("eve", set(), member=False, digests=every) == {D}
    assert refs.held("eve", {"runs"}, member=False, digests=every) == {A, D}
    assert refs.held("eve", {"p"}, member=True, digests=every) == {B, C, D}
    assert refs.held("bob", {"q"}, member=False, digests=every) == set()  # receipts are per principal
    many = [hash_bytes(str(i).encode()) for i in range(1200)]  # more than one IN (...) chunk
    refs.receive("bob", many)
    assert refs.held("bob", set(), member=False, digests=[*many, A]) == set(many)
