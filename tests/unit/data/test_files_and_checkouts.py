"""The stat cache, checkouts (get), diffs, and push/pull between local and S3 stores."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.errors import ArtifactCorrupted, InvalidArgument, InvalidState, NotFound
from conveyor.data.files import hash_files
from conveyor.data.statcache import StatCache
from conveyor.stores.artifacts.cas import blob_key, hash_file, open_content_store
from conveyor.stores.artifacts.local import LocalBackend
from conveyor.testing.s3server import s3_bucket_uri, s3_endpoint  # noqa: F401

BIKES = Path(__file__).resolve().parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"


def backdate(path: Path, seconds: int = 60) -> None:
    """Give a file an mtime in the past, as the files of a dataset usually have."""
    old = time.time_ns() - seconds * 1_000_000_000
    os.utime(path, ns=(old, old))


def make_folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        sub = root / f"part-{i % 7}"
        sub.mkdir(exist_ok=True)
        (sub / f"file-{i:04d}.bin").write_bytes(os.urandom(64 + i))
        backdate(sub / f"file-{i:04d}.bin")
    return root


def test_the_stat_cache_rehashes_only_the_files_that_changed(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", 200)
    cache = StatCache(tmp_path / "cache.db")
    first, hashed = hash_files(folder, cache)
    assert hashed == 200 and len(first) == 200
    changed = [folder / "part-0" / "file-0000.bin", folder / "part-3" / "file-0010.bin"]
    for path in changed:
        path.write_bytes(b"new bytes " + path.name.encode())
    second, hashed = hash_files(folder, cache)
    assert hashed == 2
    digests = {f.relpath: f.digest for f in second}
    for path in changed:  # the new digests are the real ones, not cached stale ones
        assert digests[path.relative_to(folder).as_posix()] == hash_file(path)[0]
    unchanged = {f.relpath: f.digest for f in first if f.path not in {str(p) for p in changed}}
    assert all(digests[k] == v for k, v in unchanged.items())
    # Just written: their mtime could still hide a second write, so they are hashed again.
    assert hash_files(folder, cache)[1] == 2
    for path in changed:
        backdate(path, 30)
    assert hash_files(folder, cache)[1] == 2  # a new mtime: hashed once more, then cached
    assert hash_files(folder, cache)[1] == 0
    cache.close()


def test_a_file_rewritten_within_one_mtime_tick_is_never_answered_from_the_cache(tmp_path: Path) -> None:
    """The "racy git" case: same size, same mtime, same inode, other bytes."""
    path = tmp_path / "data" / "a.bin"
    path.parent.mkdir()
    path.write_bytes(b"A" * 1000)
    cache = StatCache(tmp_path / "cache.db")
    first, _ = hash_files(path.parent, cache)
    st = path.stat()
    with open(path, "r+b") as handle:  # in place: the inode stays
        handle.write(b"B" * 1000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the clock did not tick
    assert path.stat().st_ino == st.st_ino and path.stat().st_mtime_ns == st.st_mtime_ns
    second, hashed = hash_files(path.parent, cache)
    assert hashed == 1 and second[0].digest == hash_file(path)[0] != first[0].digest
    cache.close()


def test_a_re_add_of_a_folder_reports_what_it_hashed(conveyor_home: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", 60)
    v1 = cv.data.add(folder, name="imgs")
    assert cv.data.service().last_add.hashed == 60
    assert cv.data.add(folder, name="imgs").id == v1.id  # a no-op re-add: nothing read
    assert cv.data.service().last_add.hashed == 0
    for i in range(3):
        (folder / f"part-{i}" / f"file-{i:04d}.bin").write_bytes(b"changed %d" % i)
    v2 = cv.data.add(folder, name="imgs")
    stats = cv.data.service().last_add
    assert (v2.ref, stats.hashed, stats.uploaded) == ("imgs@2", 3, 3)
    assert sorted(cv.data.diff("imgs@1", "imgs@2").changed) == [
        f"part-{i}/file-{i:04d}.bin" for i in range(3)
    ]


def test_get_refuses_a_non_empty_folder_unless_forced(conveyor_home: Path, tmp_path: Path) -> None:
    cv.data.add(BIKES, name="bikes")
    dest = tmp_path / "work"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(InvalidArgument, match="not empty.*--force") as info:
        cv.data.checkout("bikes@1", dest)
    assert info.value.field == "to"
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]  # nothing was written
    cv.data.checkout("bikes@1", dest, force=True)
    assert (dest / BIKES.name).read_bytes() == BIKES.read_bytes()
    assert (dest / "notes.txt").read_text() == "mine"


def test_a_checkout_from_a_local_store_is_hard_linked_and_read_only(
    conveyor_home: Path, tmp_path: Path
) -> None:
    ds = cv.data.add(BIKES, name="bikes")
    target = cv.data.checkout("bikes", tmp_path / "out") / BIKES.name
    blob = cv.data.service().content.backend.local_path(blob_key(ds.files[0].digest))
    assert blob is not None and os.path.samefile(target, blob)
    assert not target.stat().st_mode & stat.S_IWUSR  # editing it would edit the store


def test_a_tampered_blob_is_detected_and_never_checked_out(conveyor_home: Path, tmp_path: Path) -> None:
    ds = cv.data.log(pd.DataFrame({"a": range(100)}), name="tamper")
    blob = cv.data.service().content.backend.local_path(blob_key(ds.files[0].digest))
    assert blob is not None
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-10])
    with pytest.raises(ArtifactCorrupted):
        cv.data.checkout("tamper@1", tmp_path / "out")
    assert not any((tmp_path / "out").rglob("*.parquet"))
    with pytest.raises(ArtifactCorrupted):
        cv.data.get("tamper@1").to_pandas()


def test_diff_of_tables_shows_schema_rows_and_profile_shifts(conveyor_home: Path) -> None:
    df = pd.read_csv(BIKES)
    cv.data.log(df, name="bikes")
    later = df[df["yr"] == 1].drop(columns=["casual"]).assign(
        temp=lambda d: d["temp"] * 2, weather=lambda d: d["weathersit"].map({1: "clear", 2: "mist", 3: "rain", 4: "storm"})
    )
    cv.data.log(later, name="bikes")
    result = cv.data.diff("bikes@1", "bikes@2")
    assert result.changed == ["data.parquet"] and not result.same_content
    assert result.rows == [17379, len(later)]
    assert result.columns_removed == {"casual": "int"}
    assert result.columns_added == {"weather": "string"}
    temp = next(s for s in result.shifts if s.column == "temp")
    assert temp.changes["max"] == [1.0, 2.0]
    text = result.to_text()
    assert "rows: 17379 -> 8734" in text and "- column casual" in text and "temp:" in text
    assert cv.data.diff("bikes@1", "bikes@1").same_content


@pytest.mark.s3
def test_push_and_pull_through_s3_copy_only_missing_blobs(
    conveyor_home: Path, tmp_path: Path, s3_bucket_uri: str  # noqa: F811
) -> None:
    folder = make_folder(tmp_path / "set", 20)
    cv.data.add(folder, name="set")
    (folder / "part-1" / "file-0001.bin").write_bytes(b"edited")
    cv.data.add(folder, name="set")
    cv.data.add(BIKES, name="bikes")
    first = cv.data.push(s3_bucket_uri)
    assert first.copied == first.blobs == 20 + 1 + 2 + 1 + 1  # files, edit, manifests, csv + manifest
    again = cv.data.push(s3_bucket_uri)
    assert again.copied == 0 and again.blobs == first.blobs  # resumable: nothing left to do
    remote = open_content_store(s3_bucket_uri)
    assert all(remote.verify(d) for d in (f.digest for f in cv.data.get("set@2").files))

    # A second machine: same metadata, an empty local artifact store.
    cv.configure(artifacts=str(tmp_path / "other-artifacts"))
    with pytest.raises(NotFound, match="not in the artifact store.*conveyor data pull set@1"):
        cv.data.get("set@1").path  # noqa: B018
    pulled = cv.data.pull("set@1", s3_bucket_uri)
    assert pulled.copied == pulled.blobs == 21
    assert (cv.data.get("set@1").path / "part-1" / "file-0001.bin").read_bytes() != b"edited"
    assert cv.data.pull("set@2", s3_bucket_uri).copied == 2  # the edited file and its manifest
    with pytest.raises(NotFound, match="conveyor data pull bikes@1"):
        cv.data.checkout("bikes@1", tmp_path / "nowhere")


class EditingBackend(LocalBackend):
    """A local store during whose upload the user edits the file: a fault injector."""

    def put_file(self, key: str, src: Path) -> None:
        super().put_file(key, src)
        with open(src, "ab") as handle:
            handle.write(b" edited mid-upload")

    def put_files(self, items: Sequence[tuple[str, Path]]) -> None:
        super().put_files(items)
        for _, src in items:
            with open(src, "ab") as handle:
                handle.write(b" edited mid-upload")


def test_a_file_edited_while_it_is_uploaded_stops_the_add(tmp_path: Path) -> None:
    from conveyor.data.service import DataService
    from conveyor.stores.artifacts.cas import ContentStore
    from conveyor.stores.metadata.sql.store import SqlMetadataStore

    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'c.db'}")
    backend = EditingBackend(str(tmp_path / "artifacts"))
    service = DataService(store, ContentStore(backend), tmp_path / "home")
    source = tmp_path / "notes.txt"
    source.write_text("first draft")
    try:
        with pytest.raises(InvalidState, match="changed while it was being added; run the add again"):
            service.add(source, name="notes")
        assert store.datasets.list_datasets() == []
        # The bytes stored were read before the edit and match their digest, so they stay;
        # a blob whose bytes did not match would have been removed.
        content = ContentStore(backend)
        keys = list(backend.list("blobs/"))
        assert len(keys) == 1
        assert content.verify("blake3:" + keys[0].replace("blobs/", "").replace("/", ""))
    finally:
        service.close()
        store.close()


def _blob(digest: str) -> Path:
    blob = cv.data.service().content.backend.local_path(blob_key(digest))
    assert blob is not None
    return blob


def test_a_linked_add_stores_no_copy_and_makes_the_files_read_only(
    conveyor_home: Path, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path / "scans", 30)
    before = {p: p.read_bytes() for p in folder.rglob("*.bin")}
    v1 = cv.data.add(folder, name="scans", link=True)
    assert cv.data.service().last_add.uploaded == 30
    for item in v1.files:
        source = folder / item.path
        assert os.path.samefile(source, _blob(item.digest))  # one file, no copy
        assert not source.stat().st_mode & 0o222  # an edit in place would change the store
    # Replacing a file (as editors and most tools do) leaves the stored version intact.
    changed = folder / v1.files[0].path
    replacement = changed.with_suffix(".new")
    replacement.write_bytes(b"a new scan")
    os.replace(replacement, changed)
    v2 = cv.data.add(folder, name="scans", link=True)
    assert v2.ref == "scans@2" and cv.data.service().last_add.uploaded == 1
    content = cv.data.service().content
    assert all(content.verify(item.digest) for item in v1.files)
    restored = cv.data.checkout("scans@1", tmp_path / "restored")
    assert {p.relative_to(restored): p.read_bytes() for p in restored.rglob("*.bin")} == {
        p.relative_to(folder): data for p, data in before.items()
    }


def test_a_linked_add_copies_where_no_link_can_be_made(conveyor_home: Path, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm) to refuse the hard link")
    folder = shm / f"conveyor-test-{os.getpid()}-{tmp_path.name}"
    try:
        make_folder(folder, 5)
        ds = cv.data.add(folder, name="elsewhere", link=True)
        for item in ds.files:
            source = folder / item.path
            assert not os.path.samefile(source, _blob(item.digest))
            assert source.stat().st_mode & stat.S_IWUSR  # a copy: the user's file is untouched
            assert cv.data.service().content.verify(item.digest)
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_a_plain_add_copies_and_leaves_the_files_writable(conveyor_home: Path, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "plain", 5)
    ds = cv.data.add(folder, name="plain")
    for item in ds.files:
        source = folder / item.path
        assert not os.path.samefile(source, _blob(item.digest))
        assert source.stat().st_mode & stat.S_IWUSR
