"""Hashing, digest text and backend choice of the content-addressed store."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from conveyor.core.errors import InvalidArgument
from conveyor.core.settings import Settings, set_settings
from conveyor.stores.artifacts.cas import (
    MMAP_THRESHOLD,
    blob_key,
    check_digest,
    hash_bytes,
    hash_file,
    open_content_store,
)
from conveyor.stores.artifacts.local import LocalBackend


@pytest.mark.parametrize(
    "size", [0, 1, 1000, MMAP_THRESHOLD - 1, MMAP_THRESHOLD, 3 * MMAP_THRESHOLD + 5]
)
def test_hash_file_matches_blake3(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    digest, stored_size = hash_file(path)
    assert digest == "blake3:" + blake3.blake3(data).hexdigest()
    assert stored_size == size
    assert hash_bytes(data) == digest


def test_empty_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.touch()
    assert hash_file(path) == (
        "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        0,
    )


def test_blob_key_layout() -> None:
    digest = hash_bytes(b"abc")
    hexdigest = digest.removeprefix("blake3:")
    assert blob_key(digest) == f"blobs/{hexdigest[:2]}/{hexdigest[2:]}"


@pytest.mark.parametrize("bad", ["", "blake3:", "BLAKE3:" + "a" * 64, "blake3:" + "g" * 64, 42])
def test_check_digest_names_the_field(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="blake3") as info:
        check_digest(bad, field="model.digest")
    assert info.value.field == "model.digest"


def test_open_bare_path(tmp_path: Path) -> None:
    store = open_content_store(str(tmp_path / "plain"))
    assert isinstance(store.backend, LocalBackend)
    assert store.backend.root == tmp_path / "plain"
    assert (tmp_path / "plain").is_dir()


def test_open_file_uri(tmp_path: Path) -> None:
    store = open_content_store((tmp_path / "via uri").as_uri().replace("%20", " "))
    assert isinstance(store.backend, LocalBackend)
    assert store.backend.root == tmp_path / "via uri"


def test_open_default_from_settings(tmp_path: Path) -> None:
    set_settings(
        Settings(home=tmp_path, metadata_uri="sqlite://", artifacts_uri=str(tmp_path / "arts"))
    )
    try:
        store = open_content_store()
    finally:
        set_settings(None)
    assert isinstance(store.backend, LocalBackend)
    assert store.backend.root == tmp_path / "arts"


def test_open_unknown_scheme() -> None:
    with pytest.raises(InvalidArgument, match="no artifacts backend for scheme 'ftp'"):
        open_content_store("ftp://host/path")


def test_round_trip_through_opened_store(tmp_path: Path) -> None:
    store = open_content_store(str(tmp_path / "store"))
    digest = store.put_bytes(b"abc")
    assert store.get_bytes(digest) == b"abc"
    assert store.get_file(digest, tmp_path / "out" / "abc.txt").read_bytes() == b"abc"
