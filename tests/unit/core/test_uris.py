"""URI schemes and the gate every user-supplied artifact path passes."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from conveyor.core.errors import InvalidArgument, UnsafePath
from conveyor.core.uris import (
    MAX_PATH_LENGTH,
    join_under,
    local_path,
    safe_relpath,
    scheme_of,
    split_bucket,
)

# --- safe_relpath -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("model.pkl", "model.pkl"),
        ("a//b/./c", "a/b/c"),
        ("./plots/residuals.png", "plots/residuals.png"),
        ("plots/", "plots"),
        ("a\\b\\c.txt", "a/b/c.txt"),
        ("a/.../b", "a/.../b"),  # '...' is an ordinary name
        ("..hidden/x", "..hidden/x"),
        (PurePosixPath("dir/file.csv"), "dir/file.csv"),
    ],
)
def test_safe_relpath_normalises(given: str, stored: str) -> None:
    assert safe_relpath(given) == stored


@pytest.mark.parametrize(
    "given",
    [
        "..",
        "../secret",
        "a/../../b",
        "a/b/..",
        "a\\..\\..\\b",
        "/etc/passwd",
        "\\\\server\\share",
        "C:\\x",
        "c:/windows",
        "a\x00b",
    ],
)
def test_safe_relpath_refuses_ways_out_of_the_root(given: str) -> None:
    with pytest.raises(UnsafePath):
        safe_relpath(given)


@pytest.mark.parametrize("given", ["", "   ", ".", "./", "./."])
def test_safe_relpath_refuses_paths_that_name_no_file(given: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        safe_relpath(given)
    assert not isinstance(info.value, UnsafePath)


def test_safe_relpath_limits_the_length() -> None:
    longest = "a" * MAX_PATH_LENGTH
    assert safe_relpath(longest) == longest
    with pytest.raises(InvalidArgument, match=str(MAX_PATH_LENGTH)):
        safe_relpath(longest + "a")


def test_safe_relpath_errors_name_the_field_and_the_path() -> None:
    with pytest.raises(UnsafePath) as info:
        safe_relpath("../up", field="artifact_path")
    assert info.value.field == "artifact_path"
    assert str(info.value).startswith("artifact_path '../up'")
    assert "'..'" in str(info.value)


def test_safe_relpath_refuses_bytes() -> None:
    with pytest.raises(InvalidArgument, match="must be a string"):
        safe_relpath(b"a/b")  # type: ignore[arg-type]


# --- join_under ---------------------------------------------------------------------------


def test_join_under_keeps_paths_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert join_under(root, "a//b/c.txt") == root / "a" / "b" / "c.txt"
    with pytest.raises(UnsafePath):
        join_under(root, "../outside.txt")


def test_join_under_refuses_a_symlink_that_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside"):
        join_under(root, "link/secret.txt")
    with pytest.raises(UnsafePath):
        join_under(root, "link")
    (root / "file-link").symlink_to(outside / "secret.txt")
    with pytest.raises(UnsafePath):
        join_under(root, "file-link")


def test_join_under_allows_symlinks_that_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "alias").symlink_to(root / "data", target_is_directory=True)
    assert join_under(root, "alias/x.txt") == root / "alias" / "x.txt"


def test_join_under_works_when_the_root_itself_is_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    root = tmp_path / "root-link"
    root.symlink_to(real, target_is_directory=True)
    assert join_under(root, "a/b.txt") == root / "a" / "b.txt"


# --- schemes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("/data/conveyor", "file"),
        ("relative/folder", "file"),
        ("~/conveyor", "file"),
        ("C:\\conveyor\\artifacts", "file"),
        ("D:/conveyor", "file"),
        ("file:///data/conveyor", "file"),
        ("s3://bucket/prefix", "s3"),
        ("S3://Bucket/prefix", "s3"),
        ("sqlite:///conveyor.db", "sqlite"),
        ("sqlite:////abs/conveyor.db", "sqlite"),
        ("postgresql://user@host:5432/db", "postgresql"),
        ("postgresql+psycopg://user:pw@host/db", "postgresql"),
    ],
)
def test_scheme_of(uri: str, scheme: str) -> None:
    assert scheme_of(uri) == scheme


def test_the_short_postgres_scheme_is_postgresql() -> None:
    assert scheme_of("postgres://user@host:5432/db") == "postgresql"


def test_scheme_of_refuses_an_empty_uri() -> None:
    with pytest.raises(InvalidArgument, match="empty URI"):
        scheme_of("")


def test_local_path() -> None:
    assert local_path("file:///data/artifacts") == Path("/data/artifacts")
    assert local_path("/data/artifacts") == Path("/data/artifacts")
    assert local_path("~/artifacts") == Path.home() / "artifacts"


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("s3://bucket/some/prefix", ("bucket", "some/prefix")),
        ("s3://bucket/some/prefix/", ("bucket", "some/prefix")),
        ("s3://bucket", ("bucket", "")),
    ],
)
def test_split_bucket(uri: str, parts: tuple[str, str]) -> None:
    assert split_bucket(uri) == parts


@pytest.mark.parametrize("uri", ["s3:///prefix", "s3://", "bucket/prefix"])
def test_split_bucket_needs_a_bucket_name(uri: str) -> None:
    with pytest.raises(InvalidArgument, match="no bucket name") as info:
        split_bucket(uri)
    assert info.value.field == "uri"
