"""Dataset versions: add and log, get back, immutability, dedup, lineage, bad input."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

import conveyor as cv
from conveyor.core.errors import InvalidArgument, InvalidState, NotFound, UnsafePath
from conveyor.data.refs import Ref, parse_ref
from conveyor.testing.datasets import blob_count

BIKES = Path(__file__).resolve().parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"

pytestmark = pytest.mark.usefixtures("data_home")


def test_a_csv_becomes_version_one_and_reads_back_identically() -> None:
    ds = cv.data.add(BIKES, name="bikes-raw", description="UCI hourly", tags={"source": "uci"})
    assert (ds.ref, ds.version, ds.kind, ds.num_rows) == ("bikes-raw@1", 1, "table", 17379)
    assert ds.content_hash.startswith("blake3:") and len(ds.id) == 32
    assert ds.schema is not None and ds.schema["cnt"]["type"] == "int"
    assert ds.schema["dteday"] == {**ds.schema["dteday"], "type": "date", "min": "2011-01-01"}
    assert ds.profile is not None and ds.profile["columns"]["season"]["distinct"] == 4
    assert (ds.description, ds.tags) == ("UCI hourly", {"source": "uci"})
    for ref in ("bikes-raw@1", "bikes-raw", "bikes-raw@latest"):
        assert cv.data.get(ref).id == ds.id
    expected = pd.read_csv(BIKES, parse_dates=["dteday"])
    got = cv.data.get("bikes-raw@1").to_pandas()
    got["dteday"] = pd.to_datetime(got["dteday"])
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert cv.data.get("bikes-raw").to_polars().height == 17379
    assert ds.to_arrow().num_rows == 17379
    assert ds.path.name == BIKES.name and ds.path.read_bytes() == BIKES.read_bytes()
    [f] = ds.files
    assert (f.path, f.size) == (BIKES.name, BIKES.stat().st_size)


def test_logged_frames_are_numbered_and_identical_content_is_stored_once(data_home: Path) -> None:
    small = pd.DataFrame({"station": ["a", "b", "c"], "rides": [3, 5, 8]})
    first = cv.data.log(small, name="rides")
    again = cv.data.log(small.copy(), name="rides")
    assert again.ref == "rides@1" and again.id == first.id  # nothing new: no new number
    second = cv.data.log(small.assign(rides=[4, 5, 8]), name="rides")
    assert second.ref == "rides@2" and second.content_hash != first.content_hash
    back = cv.data.log(small, name="rides")  # back to the first content: a new version of it
    assert back.ref == "rides@3" and back.content_hash == first.content_hash
    other = cv.data.log(small, name="rides-copy")
    assert other.content_hash == first.content_hash  # same bytes under another dataset
    # two data blobs + two manifests, however often they were logged
    assert blob_count(data_home) == 4
    assert [v.version for v in cv.data.list_versions("rides")] == [1, 2, 3]
    pd.testing.assert_frame_equal(cv.data.get("rides@2").to_pandas(), small.assign(rides=[4, 5, 8]))
    listing = {d.name: (d.latest_version, d.num_versions) for d in cv.data.list_datasets()}
    assert listing == {"rides": (3, 3), "rides-copy": (1, 1)}
    from_polars = cv.data.log(pl.from_pandas(small), name="rides-polars")
    assert from_polars.to_polars().equals(pl.from_pandas(small))


def test_a_folder_is_versioned_file_by_file_and_unchanged_files_are_not_stored_twice(
    tmp_path: Path, data_home: Path
) -> None:
    folder = tmp_path / "images"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "a.bin").write_bytes(os.urandom(5000))
    (folder / "cats" / "b.bin").write_bytes(os.urandom(3000))
    (folder / "readme.txt").write_text("x-ray scans\n")
    v1 = cv.data.add(folder, name="xray")
    assert v1.kind == "files" and v1.num_rows is None and v1.schema is None
    assert [f.path for f in v1.files] == ["cats/a.bin", "cats/b.bin", "readme.txt"]
    assert v1.size == 5000 + 3000 + len("x-ray scans\n")
    (folder / "readme.txt").write_text("x-ray scans, v2\n")
    v2 = cv.data.add(folder, name="xray")
    assert v2.ref == "xray@2"
    assert blob_count(data_home) == 3 + 1 + 2  # 3 files + the changed one + 2 manifests
    assert (v1.path / "readme.txt").read_text() == "x-ray scans\n"  # v1 is unchanged
    assert (v2.path / "readme.txt").read_text() == "x-ray scans, v2\n"
    with pytest.raises(InvalidState, match="not a table"):
        v2.to_pandas()


def test_versions_are_immutable_records_with_an_audit_event() -> None:
    from sqlalchemy import select

    from conveyor.stores.metadata.sql.schema import audit_events

    ds = cv.data.log(pd.DataFrame({"a": [1]}), name="tiny")
    store = cv.data.service().store
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.after).where(
                audit_events.c.object_id == ds.id
            )
        ).all()
    assert [(r.action, r.after["ref"]) for r in rows] == [("dataset_version.create", "tiny@1")]
    with pytest.raises(AttributeError):
        ds.version = 7  # type: ignore[misc]


def test_concurrent_logs_to_one_dataset_get_gap_free_numbers() -> None:
    frames = [pd.DataFrame({"i": [i, i + 1]}) for i in range(8)]
    cv.data.service()  # build the shared service before the threads race for it
    barrier = threading.Barrier(len(frames))
    refs: list[str] = []
    lock = threading.Lock()

    def worker(frame: pd.DataFrame) -> None:
        barrier.wait()
        ref = cv.data.log(frame, name="racy").ref
        with lock:
            refs.append(ref)

    threads = [threading.Thread(target=worker, args=(f,)) for f in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(refs, key=lambda r: int(r.split("@")[1])) == [f"racy@{i}" for i in range(1, 9)]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("bikes", Ref("bikes", None)), ("bikes@latest", Ref("bikes", None)), ("bikes@12", Ref("bikes", 12))],
)
def test_references_parse(ref: str, expected: Ref) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "bikes@", "bikes@0", "bikes@-1", "bikes@two", "../etc@1", "a/b@1", "@1"])
def test_a_malformed_reference_names_the_field(ref: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        cv.data.get(ref)
    assert info.value.field == "ref"


def test_unknown_datasets_and_versions_are_not_found() -> None:
    with pytest.raises(NotFound, match="'nope' does not exist"):
        cv.data.get("nope@1")
    cv.data.log(pd.DataFrame({"a": [1]}), name="one")
    with pytest.raises(NotFound, match="no version 2"):
        cv.data.get("one@2")


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "back\\slash", "", "x" * 251, ".hidden"])
def test_a_name_with_path_characters_is_refused_and_nothing_is_stored(
    name: str, data_home: Path
) -> None:
    with pytest.raises(InvalidArgument) as info:
        cv.data.add(BIKES, name=name)
    assert info.value.field == "name"
    with pytest.raises(InvalidArgument):
        cv.data.log(pd.DataFrame({"a": [1]}), name=name)
    assert cv.data.list_datasets() == [] and blob_count(data_home) == 0


def test_bad_tags_are_refused_before_anything_is_stored(data_home: Path) -> None:
    with pytest.raises(InvalidArgument) as info:
        cv.data.add(BIKES, name="bikes", tags={"../bad": "x"})
    assert info.value.field == "key"
    assert cv.data.list_datasets() == [] and blob_count(data_home) == 0


def test_a_csv_with_ragged_rows_is_refused_naming_the_file(tmp_path: Path, data_home: Path) -> None:
    bad = tmp_path / "ragged.csv"
    bad.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(InvalidArgument, match=r"ragged\.csv is not a readable CSV.*Expected 3 columns, got 2"):
        cv.data.add(bad, name="ragged")
    assert cv.data.list_datasets() == [] and blob_count(data_home) == 0


def test_a_truncated_parquet_file_is_refused(tmp_path: Path, data_home: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pl.DataFrame({"a": list(range(1000))}).to_arrow(), good)
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InvalidArgument, match=r"cut\.parquet is not a readable PARQUET table"):
        cv.data.add(bad, name="cut")
    assert cv.data.list_datasets() == [] and blob_count(data_home) == 0


def test_a_column_of_mixed_types_is_refused_naming_the_column(data_home: Path) -> None:
    frame = pd.DataFrame({"ok": [1, 2, 3], "mixed": [1, "two", 3.0]})
    with pytest.raises(InvalidArgument, match="column 'mixed' has values of mixed types") as info:
        cv.data.log(frame, name="mixed")
    assert info.value.field == "columns.mixed"
    assert cv.data.list_datasets() == [] and blob_count(data_home) == 0


def test_duplicate_column_names_are_refused(data_home: Path) -> None:
    with pytest.raises(InvalidArgument, match="'a' appears more than once") as info:
        cv.data.log(pd.DataFrame([[1, 2]], columns=["a", "a"]), name="dup")
    assert info.value.field == "columns"


def test_a_csv_column_that_turns_to_text_is_kept_as_text_and_caught_by_validation(
    tmp_path: Path,
) -> None:
    clean = tmp_path / "clean.csv"
    clean.write_text("id,amount\n" + "".join(f"{i},{i % 97}\n" for i in range(5000)))
    reference = cv.data.add(clean, name="payments")
    assert reference.schema is not None and reference.schema["amount"]["type"] == "int"
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(clean.read_text() + "5000,twelve\n")
    batch = cv.data.add(mixed, name="payments-batch")
    assert batch.schema is not None and batch.schema["amount"]["type"] == "string"
    report = cv.data.validate(batch, cv.data.Suite.from_profile(reference, tolerance="relaxed"))
    assert ("amount", "type") in {(f.column, f.check) for f in report.failures}


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path, data_home: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not version me")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "leak.txt").symlink_to(secret)
    with pytest.raises(UnsafePath, match="outside the folder"):
        cv.data.add(folder, name="leaky")
    assert cv.data.list_datasets() == [] and blob_count(data_home) == 0
    (folder / "leak.txt").unlink()
    (folder / "alias.txt").symlink_to(folder / "a.txt")  # inside: followed
    ds = cv.data.add(folder, name="leaky")
    assert [f.path for f in ds.files] == ["a.txt", "alias.txt"]


def test_an_empty_folder_or_missing_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="holds no files"):
        cv.data.add(tmp_path / "empty", name="empty")
    with pytest.raises(NotFound):
        cv.data.add(tmp_path / "missing.csv", name="missing")


def test_log_input_links_the_version_to_the_active_run() -> None:
    ds = cv.data.log(pd.DataFrame({"a": [1, 2]}), name="train-set")
    with pytest.raises(InvalidState, match="no active run"):
        cv.log_input(ds, role="train")
    with cv.start_run() as run:
        cv.log_input(ds, role="train")
        cv.data.log_input("train-set@1", role="eval")
        produced = cv.data.log(pd.DataFrame({"p": [0.5]}), name="predictions")
    edges = cv.client().store.list_lineage(("run", run.id))
    got = {(e["src"], e["dst"], e["relation"]) for e in edges}
    assert got == {
        (("dataset_version", ds.id), ("run", run.id), "input:train"),
        (("dataset_version", ds.id), ("run", run.id), "input:eval"),
        (("run", run.id), ("dataset_version", produced.id), "output"),
    }
    with pytest.raises(InvalidArgument) as info:
        cv.log_input(ds, role="bad/../role")
    assert info.value.field == "key"
