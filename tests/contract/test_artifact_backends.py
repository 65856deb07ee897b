"""The artifact contracts, run over the local folder and S3 (moto) backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.core.errors import NotFound, UnsafePath
from conveyor.stores.artifacts.base import ByteBackend
from conveyor.stores.artifacts.cas import ContentStore, open_content_store
from conveyor.stores.artifacts.local import LocalBackend
from conveyor.testing.contracts.artifacts import ArtifactBackendContract, ContentStoreContract
from conveyor.testing.s3server import s3_bucket_uri, s3_endpoint  # noqa: F401


@pytest.fixture
def local_backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(str(tmp_path / "store"))


@pytest.fixture
def s3_backend(s3_bucket_uri: str, s3_endpoint: str) -> ByteBackend:  # noqa: F811
    from conveyor.stores.artifacts.s3 import S3Backend

    return S3Backend(s3_bucket_uri, endpoint_url=s3_endpoint)


class TestLocalBackend(ArtifactBackendContract):
    @pytest.fixture
    def backend(self, local_backend: LocalBackend) -> ByteBackend:
        return local_backend

    def test_file_uri_and_real_paths(self, tmp_path: Path) -> None:
        backend = LocalBackend((tmp_path / "via-uri").as_uri())
        backend.put_bytes("blobs/ab/cd", b"data")
        path = backend.local_path("blobs/ab/cd")
        assert path == tmp_path / "via-uri" / "blobs" / "ab" / "cd"
        assert path is not None and path.read_bytes() == b"data"
        assert backend.uri == (tmp_path / "via-uri").as_uri()

    def test_put_files_syncs_every_file_before_its_rename_and_each_folder_after(
        self, local_backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import os

        import conveyor.stores.artifacts.local as local

        sources = []
        for i in range(12):
            src = tmp_path / "src" / f"f{i}.bin"
            src.parent.mkdir(exist_ok=True)
            src.write_bytes(os.urandom(100 + i))
            sources.append(src)
        events: list[tuple[str, str]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:  # records which file each real fsync flushed
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
            events.append(("rename", str(src)))
            real_replace(src, dst)

        if not Path("/proc/self/fd").is_dir():
            pytest.skip("needs /proc to name the file behind a descriptor")
        monkeypatch.setattr(local.os, "fsync", fsync)
        monkeypatch.setattr(local.os, "replace", replace)
        keys = [f"blobs/{i % 3:02d}/k{i}" for i in range(12)]
        local_backend.put_files(list(zip(keys, sources, strict=True)))
        monkeypatch.undo()
        for key, src in zip(keys, sources, strict=True):
            assert local_backend.get_bytes(key) == src.read_bytes()
        renamed = [path for kind, path in events if kind == "rename"]
        assert len(renamed) == 12
        first_rename = events.index(("rename", renamed[0]))
        synced_before = {path for kind, path in events[:first_rename] if kind == "fsync"}
        assert set(renamed) <= synced_before  # bytes durable before any name points to them
        last_rename = events.index(("rename", renamed[-1]))
        synced_after = {path for kind, path in events[last_rename:] if kind == "fsync"}
        folders = {str(local_backend.root / "blobs" / f"{i:02d}") for i in range(3)}
        assert folders <= synced_after  # each folder once, after its renames
        assert len([p for kind, p in events if kind == "fsync" and p in folders]) == 3
        assert not [p for p in local_backend.root.rglob("*") if local.TMP_MARKER in p.name]

    def test_put_files_missing_source_stores_nothing(
        self, local_backend: LocalBackend, tmp_path: Path
    ) -> None:
        src = tmp_path / "here.bin"
        src.write_bytes(b"x")
        with pytest.raises(NotFound):
            local_backend.put_files([("a/1", src), ("a/2", tmp_path / "gone.bin")])
        assert list(local_backend.list("")) == []

    def test_a_symlink_inside_the_root_cannot_lead_a_key_outside(
        self, local_backend: LocalBackend, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret").write_bytes(b"not yours")
        (local_backend.root / "blobs").mkdir()
        (local_backend.root / "blobs" / "ab").symlink_to(outside, target_is_directory=True)
        (local_backend.root / "leak").symlink_to(outside / "secret")
        for key in ("blobs/ab/secret", "leak"):
            with pytest.raises(UnsafePath):
                local_backend.get_bytes(key)
            with pytest.raises(UnsafePath):
                local_backend.put_bytes(key, b"overwritten")
        assert (outside / "secret").read_bytes() == b"not yours"
        local_backend.put_bytes("blobs/cd/ok", b"fine")  # a plain key still works
        assert local_backend.get_bytes("blobs/cd/ok") == b"fine"

    def test_delete_prunes_empty_folders(self, local_backend: LocalBackend) -> None:
        local_backend.put_bytes("a/b/c", b"x")
        local_backend.delete("a/b/c")
        assert list(local_backend.root.iterdir()) == []


class TestLocalContentStore(ContentStoreContract):
    @pytest.fixture
    def backend(self, local_backend: LocalBackend) -> ByteBackend:
        return local_backend

    def test_link_shares_the_stored_file(self, local_backend: LocalBackend, tmp_path: Path) -> None:
        store = ContentStore(local_backend)
        digest = store.put_bytes(b"hard-linked")
        dest = store.get_file(digest, tmp_path / "out.bin", link=True)
        assert dest.read_bytes() == b"hard-linked"
        assert dest.stat().st_nlink == 2


@pytest.mark.s3
class TestS3Backend(ArtifactBackendContract):
    @pytest.fixture
    def backend(self, s3_backend: ByteBackend) -> ByteBackend:
        return s3_backend

    def test_missing_bucket_says_create_it(
        self,
        s3_bucket_uri: str,  # noqa: F811  (sets the credentials)
        s3_endpoint: str,  # noqa: F811
    ) -> None:
        from conveyor.stores.artifacts.s3 import S3Backend

        with pytest.raises(NotFound, match="create it"):
            S3Backend("s3://no-such-bucket-here/prefix", endpoint_url=s3_endpoint)

    def test_objects_live_under_the_prefix(
        self,
        s3_backend: ByteBackend,
        s3_bucket_uri: str,  # noqa: F811
        s3_endpoint: str,  # noqa: F811
    ) -> None:
        from conveyor.stores.artifacts.s3 import S3Backend

        s3_backend.put_bytes("k", b"v")
        bucket_root = S3Backend(s3_bucket_uri.rsplit("/", 1)[0], endpoint_url=s3_endpoint)
        assert list(bucket_root.list("")) == ["prefix/k"]
        assert s3_backend.local_path("k") is None


@pytest.mark.s3
class TestS3ContentStore(ContentStoreContract):
    @pytest.fixture
    def backend(self, s3_backend: ByteBackend) -> ByteBackend:
        return s3_backend

    def test_open_by_uri_uses_endpoint_setting(self, s3_bucket_uri: str) -> None:  # noqa: F811
        store = open_content_store(s3_bucket_uri)
        digest = store.put_bytes(b"via settings")
        assert store.uri == s3_bucket_uri
        assert store.get_bytes(digest) == b"via settings"
