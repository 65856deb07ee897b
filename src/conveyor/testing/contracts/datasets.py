"""The contract every dataset store passes (``store.datasets`` of each metadata store).

Subclass it and provide a ``datasets`` fixture returning the dataset store of an
empty metadata store::

    class TestMyDatasets(DatasetStoreContract):
        @pytest.fixture
        def datasets(self, tmp_path):
            return MyStore(f"my://{tmp_path}").datasets
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.stores.metadata.datasets import NewVersion


def digest(n: int) -> str:
    return "blake3:" + f"{n:064x}"


def new(name: str = "bikes", content: int = 1, **extra: Any) -> NewVersion:
    fields: dict[str, Any] = {"name": name, "content_hash": digest(content), "kind": "files", "num_files": 1, "size": 10}
    fields.update(extra)
    return NewVersion(**fields)


class DatasetStoreContract:
    def test_versions_are_numbered_per_dataset_from_one(self, datasets: Any) -> None:
        a1 = datasets.create_version(new("a", 1))
        a2 = datasets.create_version(new("a", 2))
        b1 = datasets.create_version(new("b", 1))
        assert [(v.name, v.version) for v in (a1, a2, b1)] == [("a", 1), ("a", 2), ("b", 1)]
        assert a1.ref == "a@1" and a1.dataset_id == a2.dataset_id != b1.dataset_id

    def test_the_same_content_as_the_newest_version_is_not_a_new_version(self, datasets: Any) -> None:
        first = datasets.create_version(new(content=1))
        assert datasets.create_version(new(content=1)).id == first.id
        datasets.create_version(new(content=2))
        assert datasets.create_version(new(content=1)).version == 3  # older content: new version

    def test_a_version_reads_back_whole(self, datasets: Any) -> None:
        profile = {"num_rows": 2, "columns": {"a": {"type": "int", "nulls": 0}}}
        made = datasets.create_version(
            new(kind="table", num_rows=2, schema={"a": {"type": "int"}}, profile=profile,
                description="two rows", tags={"src": "test"}, creator="ci")
        )
        for got in (datasets.get_version("bikes", 1), datasets.get_version("bikes"),
                    datasets.get_version_by_id(made.id)):
            assert got == made
        assert got.profile == profile and got.tags == {"src": "test"} and got.creator == "ci"
        listed = datasets.list_versions("bikes")
        assert [v.id for v in listed] == [made.id] and listed[0].profile is None  # lists stay light

    def test_listing_datasets(self, datasets: Any) -> None:
        assert datasets.list_datasets() == []
        datasets.create_version(new("b", 1))
        datasets.create_version(new("a", 1))
        datasets.create_version(new("a", 2))
        assert [(d.name, d.latest_version, d.num_versions) for d in datasets.list_datasets()] == [
            ("a", 2, 2), ("b", 1, 1),
        ]
        assert sorted(datasets.all_content_hashes()) == [digest(1), digest(2)]

    def test_missing_things_are_not_found(self, datasets: Any) -> None:
        with pytest.raises(NotFound):
            datasets.get_version("nope")
        datasets.create_version(new())
        with pytest.raises(NotFound):
            datasets.get_version("bikes", 2)
        with pytest.raises(NotFound):
            datasets.get_version_by_id("0" * 32)
        with pytest.raises(NotFound):
            datasets.list_versions("nope")

    @pytest.mark.parametrize(
        ("change", "field"),
        [({"name": "../x"}, "name"), ({"kind": "blob"}, "kind"), ({"tags": {"a/../b": "x"}}, "key")],
    )
    def test_bad_versions_are_refused_and_change_nothing(
        self, datasets: Any, change: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(InvalidArgument) as info:
            datasets.create_version(new(**change))
        assert info.value.field == field
        assert datasets.list_datasets() == []

    def test_checks_are_recorded_and_listed_newest_first(self, datasets: Any) -> None:
        for ok in (True, False, True):
            datasets.record_check(dataset="bikes", version=1, target="bikes@1", suite="s",
                                  ok=ok, num_failures=0 if ok else 2, report={"ok": ok})
        datasets.record_check(dataset="other", version=None, target="x.csv", suite="s",
                              ok=True, num_failures=0, report={})
        found = datasets.list_checks("bikes")
        assert [c.ok for c in found] == [True, False, True][::-1]
        assert found[1].report == {"ok": False} and found[1].num_failures == 2
        assert len(datasets.list_checks("bikes", limit=2)) == 2
        assert datasets.list_checks("nobody") == []
