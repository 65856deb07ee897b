"""The blob reference index of model packages and dataset versions, on SQLite and PostgreSQL."""

from __future__ import annotations

from conveyor.core.entities import ArtifactFile
from conveyor.stores.artifacts.cas import hash_bytes
from conveyor.stores.metadata.datasets import NewVersion
from conveyor.stores.metadata.sql.store import SqlMetadataStore

A, B, C = (hash_bytes(x) for x in (b"a", b"b", b"c"))



def test_readers_are_the_projects_of_runs_and_models_and_a_dataset_flag(sql_store: SqlMetadataStore) -> None:
    refs = sql_store.blob_refs
    run = sql_store.create_run(project="runs")
    sql_store.record_artifacts(run.id, [ArtifactFile(path="f", digest=A, size=1)])
    refs.add("model", "p", [A, B, A])
    refs.add("model", "p", [B])  # a retry changes nothing
    refs.add("dataset", "ignored", [B, C])
    assert refs.readers(A) == ({"runs", "p"}, False)
    assert refs.readers(B) == ({"p"}, True)
    assert refs.readers(C) == (set(), True)
    assert refs.readers(hash_bytes(b"nobody")) == (set(), False)


def test_unindexed_lists_the_versions_whose_manifest_has_no_reference(sql_store: SqlMetadataStore) -> None:
    sql_store.registry.create_version("p", "m", flavour="sklearn", format="pickle", package_digest=A,
                                  signature=None, info={})
    sql_store.registry.create_version("q", "m", flavour="sklearn", format="pickle", package_digest=A,
                                  signature=None, info={})
    sql_store.datasets.create_version(NewVersion(name="d", content_hash=B, kind="files", num_files=1, size=1))
    assert sorted(sql_store.blob_refs.unindexed()) == [("dataset", "", B), ("model", "p", A), ("model", "q", A)]
    sql_store.blob_refs.add("model", "p", [A])
    sql_store.blob_refs.add("dataset", "", [B])
    assert sql_store.blob_refs.unindexed() == [("model", "q", A)]
