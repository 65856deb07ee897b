"""Contract suites every artifact backend must pass.

Subclass and provide a ``backend`` fixture; the same tests then run over it::

    class TestMyBackend(ArtifactBackendContract):
        @pytest.fixture
        def backend(self, tmp_path: Path) -> ByteBackend:
            return MyBackend(str(tmp_path))

    class TestMyContentStore(ContentStoreContract):
        @pytest.fixture
        def backend(self, tmp_path: Path) -> ByteBackend:
            return MyBackend(str(tmp_path))

:class:`ArtifactBackendContract` checks the bytes-in / bytes-out rules of
:class:`~conveyor.stores.artifacts.base.ByteBackend`;
:class:`ContentStoreContract` checks dedup, manifests and verify-on-read of a
:class:`~conveyor.stores.artifacts.cas.ContentStore` over that backend.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import blake3
import pytest

from conveyor.core.entities import ArtifactFile
from conveyor.core.errors import ArtifactCorrupted, InvalidArgument, NotFound, UnsafePath
from conveyor.stores.artifacts.base import BatchWriter, ByteBackend
from conveyor.stores.artifacts.cas import Blob, ContentStore, blob_key, hash_bytes, hash_file

BIG = 20 * 1024 * 1024
UNSAFE_KEYS = ["../escape", "/etc/passwd", "a/../../escape", ""]
BAD_DIGESTS = ["", "blake3:xyz", "blake3:" + "A" * 64, "sha256:" + "a" * 64, "../../etc/passwd"]


def _write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = min(remaining, 1 << 20)
            out.write(os.urandom(chunk))
            remaining -= chunk
    return path


def _symlink(link: Path, target: Path) -> None:
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
    except (OSError, NotImplementedError):
        pytest.skip("this platform cannot create symlinks")


class ArtifactBackendContract:
    """Behaviour every :class:`ByteBackend` must have. Subclasses provide ``backend``."""

    @pytest.fixture
    def backend(self) -> ByteBackend:
        raise NotImplementedError("subclasses provide a `backend` fixture")

    def test_bytes_round_trip(self, backend: ByteBackend) -> None:
        assert isinstance(backend, ByteBackend)
        assert isinstance(backend.uri, str) and backend.uri
        backend.put_bytes("things/a.bin", b"hello\x00world")
        backend.put_bytes("things/empty", b"")
        assert backend.get_bytes("things/a.bin") == b"hello\x00world"
        assert backend.get_bytes("things/empty") == b""
        assert backend.size("things/empty") == 0

    def test_file_round_trip(self, backend: ByteBackend, tmp_path: Path) -> None:
        src = tmp_path / "src.txt"
        src.write_bytes(b"some content\n" * 100)
        backend.put_file("dir/sub/file.txt", src)
        dest = tmp_path / "out" / "deeper" / "file.txt"
        backend.get_file("dir/sub/file.txt", dest)
        assert dest.read_bytes() == src.read_bytes()
        assert backend.get_bytes("dir/sub/file.txt") == src.read_bytes()
        path = backend.local_path("dir/sub/file.txt")  # None unless the backend is local
        assert path is None or path.read_bytes() == src.read_bytes()

    def test_big_file_streams_intact(self, backend: ByteBackend, tmp_path: Path) -> None:
        src = _write_random(tmp_path / "big.bin", BIG)
        backend.put_file("big/file.bin", src)
        assert backend.size("big/file.bin") == BIG
        dest = tmp_path / "big-copy.bin"
        backend.get_file("big/file.bin", dest)
        assert dest.stat().st_size == BIG
        assert hash_file(dest) == hash_file(src)

    def test_overwrite_same_key(self, backend: ByteBackend, tmp_path: Path) -> None:
        backend.put_bytes("k", b"first version, longer than the second")
        backend.put_bytes("k", b"second")
        assert backend.get_bytes("k") == b"second"
        src = tmp_path / "third"
        src.write_bytes(b"third")
        backend.put_file("k", src)
        assert backend.get_bytes("k") == b"third"
        assert backend.size("k") == 5
        assert list(backend.list("k")) == ["k"]

    def test_exists_size_delete(self, backend: ByteBackend) -> None:
        assert not backend.exists("x/y")
        assert backend.size("x/y") is None
        backend.put_bytes("x/y", b"12345")
        assert backend.exists("x/y")
        assert backend.size("x/y") == 5
        backend.delete("x/y")
        assert not backend.exists("x/y")
        assert backend.size("x/y") is None
        backend.delete("x/y")  # deleting a missing key is not an error

    def test_list_by_prefix(self, backend: ByteBackend) -> None:
        for key in ["a/1", "a/2", "a/deep/3", "ab/4", "b/5"]:
            backend.put_bytes(key, key.encode())
        assert list(backend.list("a/")) == ["a/1", "a/2", "a/deep/3"]
        assert list(backend.list("a")) == ["a/1", "a/2", "a/deep/3", "ab/4"]
        assert list(backend.list("a/deep/")) == ["a/deep/3"]
        assert list(backend.list("")) == ["a/1", "a/2", "a/deep/3", "ab/4", "b/5"]
        assert list(backend.list("nothing/")) == []

    def test_missing_key_is_not_found(self, backend: ByteBackend, tmp_path: Path) -> None:
        with pytest.raises(NotFound, match="missing/key"):
            backend.get_bytes("missing/key")
        dest = tmp_path / "dest.bin"
        with pytest.raises(NotFound, match="missing/key"):
            backend.get_file("missing/key", dest)
        assert not dest.exists()
        with pytest.raises(NotFound):
            backend.put_file("k", tmp_path / "does-not-exist")
        assert not backend.exists("k")

    def test_readers_see_whole_objects(self, backend: ByteBackend) -> None:
        versions = [bytes([i]) * (256 * 1024) for i in range(4)]
        backend.put_bytes("hot", versions[0])
        seen: list[bytes] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.append(backend.get_bytes("hot"))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for version in versions * 3:
                backend.put_bytes("hot", version)
        finally:
            stop.set()
            reader.join()
        assert seen
        assert all(data in versions for data in seen), "a reader saw a partial object"
        assert backend.get_bytes("hot") == versions[-1]
        assert list(backend.list("")) == ["hot"], "temp objects are visible"

    @pytest.mark.parametrize("key", UNSAFE_KEYS)
    def test_unsafe_keys_refused(self, backend: ByteBackend, key: str, tmp_path: Path) -> None:
        src = tmp_path / "f"
        src.write_bytes(b"x")
        with pytest.raises(InvalidArgument):  # UnsafePath is an InvalidArgument
            backend.put_bytes(key, b"x")
        with pytest.raises(InvalidArgument):
            backend.put_file(key, src)
        with pytest.raises(InvalidArgument):
            backend.get_bytes(key)
        with pytest.raises(InvalidArgument):
            backend.exists(key)
        assert not (tmp_path / "escape").exists()


class _CountingBackend:
    """Wraps a backend and counts uploads, to prove dedup skips them."""

    def __init__(self, inner: ByteBackend) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.uploads = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.uploads += 1

    def put_file(self, key: str, src: Path) -> None:
        self._count()
        self.inner.put_file(key, src)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._count()
        self.inner.put_bytes(key, data)

    def __getattr__(self, name: str) -> Any:  # reads go straight through
        return getattr(self.inner, name)


class _CountingBatchBackend(_CountingBackend):
    """The counting wrapper for a backend that also writes batches."""

    def put_files(self, items: Sequence[tuple[str, Path]]) -> None:
        items = list(items)
        with self._lock:
            self.uploads += len(items)
        assert isinstance(self.inner, BatchWriter)
        self.inner.put_files(items)


class ContentStoreContract:
    """Behaviour of a :class:`ContentStore` over a backend. Subclasses provide ``backend``."""

    @pytest.fixture
    def backend(self) -> ByteBackend:
        raise NotImplementedError("subclasses provide a `backend` fixture")

    @pytest.fixture
    def counting(self, backend: ByteBackend) -> _CountingBackend:
        if isinstance(backend, BatchWriter):
            return _CountingBatchBackend(backend)
        return _CountingBackend(backend)

    @pytest.fixture
    def store(self, counting: _CountingBackend) -> ContentStore:
        return ContentStore(counting)

    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        root = tmp_path / "tree"
        (root / "a" / "b" / "c").mkdir(parents=True)
        (root / "empty-dir").mkdir()
        (root / "top.txt").write_text("top")
        (root / "a" / "same-1.txt").write_text("same content")
        (root / "a" / "b" / "same-2.txt").write_text("same content")
        (root / "a" / "b" / "c" / "empty.bin").write_bytes(b"")
        (root / "a" / "b" / "c" / "naïve name.txt").write_text("unicode")
        _write_random(root / "a" / "big.bin", 2 * 1024 * 1024 + 7)
        return root

    def test_bytes_round_trip(self, store: ContentStore) -> None:
        digest = store.put_bytes(b"payload")
        assert digest == "blake3:" + blake3.blake3(b"payload").hexdigest()
        assert store.exists(digest)
        assert store.get_bytes(digest) == b"payload"
        assert store.verify(digest)

    def test_identical_content_stored_once(
        self, store: ContentStore, counting: _CountingBackend, tmp_path: Path
    ) -> None:
        one, two = tmp_path / "one.txt", tmp_path / "other" / "two.txt"
        two.parent.mkdir()
        one.write_bytes(b"same bytes")
        two.write_bytes(b"same bytes")
        first, second = store.put_file(one), store.put_file(two)
        assert first == second
        assert first.size == len(b"same bytes")
        assert store.put_bytes(b"same bytes") == first.digest
        assert counting.uploads == 1
        assert list(counting.list("blobs/")) == [blob_key(first.digest)]

    def test_tree_round_trip(self, store: ContentStore, tree: Path, tmp_path: Path) -> None:
        files = store.put_tree(tree, prefix="model")
        paths = [f.path for f in files]
        assert paths == sorted(paths)
        assert paths == [
            "model/a/b/c/empty.bin",
            "model/a/b/c/naïve name.txt",
            "model/a/b/same-2.txt",
            "model/a/big.bin",
            "model/a/same-1.txt",
            "model/top.txt",
        ]
        by_path = {f.path: f for f in files}
        assert by_path["model/a/b/c/empty.bin"].size == 0
        assert by_path["model/a/same-1.txt"].digest == by_path["model/a/b/same-2.txt"].digest
        out = tmp_path / "restored"
        store.get_tree(files, out)
        for item in files:
            original = tree / item.path.removeprefix("model/")
            assert (out / item.path).read_bytes() == original.read_bytes()

    def test_manifest_round_trip(self, store: ContentStore, tree: Path) -> None:
        files = store.put_tree(tree)
        digest = store.put_manifest(list(reversed(files)))
        assert store.put_manifest(files) == digest, "manifests are canonical"
        assert store.get_manifest(digest) == files

    def test_manifest_refuses_bad_entries(self, store: ContentStore) -> None:
        good = store.put_bytes(b"x")
        with pytest.raises(InvalidArgument) as info:
            store.put_manifest([ArtifactFile(path="a", digest="nope", size=1)])
        assert info.value.field == "files[0].digest"
        with pytest.raises(UnsafePath):
            store.put_manifest([ArtifactFile(path="../a", digest=good, size=1)])
        with pytest.raises(InvalidArgument, match="twice"):
            store.put_manifest([ArtifactFile(path="a", digest=good, size=1)] * 2)

    @pytest.mark.parametrize(
        "stored", [b"the original bytes of a model filE", b"the original bytes"]
    )
    def test_tampered_or_truncated_blob_is_refused(
        self, store: ContentStore, backend: ByteBackend, tmp_path: Path, stored: bytes
    ) -> None:
        digest = store.put_bytes(b"the original bytes of a model file")
        backend.put_bytes(blob_key(digest), stored)
        fresh = tmp_path / "out" / "fresh.bin"
        with pytest.raises(ArtifactCorrupted, match="corrupted") as info:
            store.get_file(digest, fresh)
        assert digest in str(info.value)
        assert not fresh.exists()
        assert list(fresh.parent.iterdir()) == [], "a temp file was left behind"
        existing = tmp_path / "out" / "existing.bin"
        existing.write_bytes(b"user data")
        with pytest.raises(ArtifactCorrupted):
            store.get_file(digest, existing)
        assert existing.read_bytes() == b"user data"
        with pytest.raises(ArtifactCorrupted):
            store.get_file(digest, tmp_path / "linked.bin", link=True)
        assert not (tmp_path / "linked.bin").exists()
        with pytest.raises(ArtifactCorrupted):
            store.get_bytes(digest)
        assert store.verify(digest) is False

    def test_put_blobs_uploads_only_what_is_missing(
        self, store: ContentStore, counting: _CountingBackend, tmp_path: Path
    ) -> None:
        paths = [_write_random(tmp_path / "in" / f"part-{i}.bin", 1000 + i) for i in range(6)]
        (tmp_path / "in" / "twin.bin").write_bytes(paths[0].read_bytes())
        paths.append(tmp_path / "in" / "twin.bin")
        blobs = [Blob(*hash_file(p)) for p in paths]
        already = store.put_file(paths[1])
        uploaded = store.put_blobs(list(zip(blobs, paths, strict=True)))
        assert sorted(b.digest for b, _ in uploaded) == sorted({b.digest for b in blobs} - {already.digest})
        assert counting.uploads == 1 + 5  # the twin and the blob already stored are skipped
        for blob, path in zip(blobs, paths, strict=True):
            assert store.get_bytes(blob.digest) == path.read_bytes()
        assert store.put_blobs(list(zip(blobs, paths, strict=True))) == []
        assert store.put_blobs([]) == []
        assert not [k for k in counting.list("") if ".conveyor-tmp-" in k]

    def test_truncated_blob_repaired_by_next_put(
        self, store: ContentStore, backend: ByteBackend, tmp_path: Path
    ) -> None:
        src = _write_random(tmp_path / "model.bin", 100_000)
        blob = store.put_file(src)
        backend.put_bytes(blob_key(blob.digest), src.read_bytes()[:50_000])
        assert store.put_file(src) == blob
        assert store.get_file(blob.digest, tmp_path / "copy.bin").read_bytes() == src.read_bytes()

    @pytest.mark.parametrize("digest", BAD_DIGESTS)
    def test_invalid_digest_text(self, store: ContentStore, digest: str, tmp_path: Path) -> None:
        for call in (
            lambda: store.get_bytes(digest),
            lambda: store.get_file(digest, tmp_path / "out"),
            lambda: store.exists(digest),
            lambda: store.verify(digest),
            lambda: store.get_manifest(digest),
        ):
            with pytest.raises(InvalidArgument) as info:
                call()
            assert info.value.field == "digest"
        assert not (tmp_path / "out").exists()

    def test_missing_blob(self, store: ContentStore, tmp_path: Path) -> None:
        digest = hash_bytes(b"never stored")
        assert not store.exists(digest)
        with pytest.raises(NotFound):
            store.get_bytes(digest)
        with pytest.raises(NotFound):
            store.get_file(digest, tmp_path / "out" / "x")
        assert list((tmp_path / "out").iterdir()) == []
        with pytest.raises(NotFound):
            store.verify(digest)

    def test_get_file_link(self, store: ContentStore, tmp_path: Path) -> None:
        digest = store.put_bytes(b"linked or copied")
        dest = store.get_file(digest, tmp_path / "a" / "b.bin", link=True)
        assert dest.read_bytes() == b"linked or copied"

    def test_symlink_out_of_folder_refused(
        self, store: ContentStore, counting: _CountingBackend, tmp_path: Path
    ) -> None:
        outside = tmp_path / "secret.txt"
        outside.write_text("secret")
        folder = tmp_path / "folder"
        folder.mkdir()
        (folder / "ok.txt").write_text("ok")
        _symlink(folder / "leak.txt", outside)
        with pytest.raises(UnsafePath, match="leak.txt"):
            store.put_tree(folder)
        (folder / "leak.txt").unlink()
        _symlink(folder / "leakdir", tmp_path)
        with pytest.raises(UnsafePath, match="leakdir"):
            store.put_tree(folder)
        assert counting.uploads == 0, "refused input must change nothing"

    def test_symlink_inside_folder_followed(self, store: ContentStore, tmp_path: Path) -> None:
        folder = tmp_path / "folder"
        (folder / "real").mkdir(parents=True)
        (folder / "real" / "f.txt").write_text("f")
        _symlink(folder / "alias.txt", folder / "real" / "f.txt")
        files = store.put_tree(folder)
        assert [f.path for f in files] == ["alias.txt", "real/f.txt"]
        assert files[0].digest == files[1].digest

    def test_get_tree_refuses_unsafe_paths(self, store: ContentStore, tmp_path: Path) -> None:
        digest = store.put_bytes(b"x")
        files = [
            ArtifactFile(path="fine.txt", digest=digest, size=1),
            ArtifactFile(path="../evil.txt", digest=digest, size=1),
        ]
        with pytest.raises(UnsafePath):
            store.get_tree(files, tmp_path / "dest")
        assert not (tmp_path / "evil.txt").exists()
        assert not (tmp_path / "dest" / "fine.txt").exists(), "nothing is written on bad input"
