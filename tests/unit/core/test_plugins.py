"""The backend table: schemes map to classes, missing extras say what to install."""

from __future__ import annotations

import sys

import pytest

from conveyor.core.errors import InvalidArgument, MissingExtra
from conveyor.core.plugins import BACKENDS, load_backend
from conveyor.stores.artifacts.local import LocalBackend
from conveyor.stores.metadata.base import open_metadata_store
from conveyor.stores.metadata.sql.store import SqlMetadataStore


@pytest.mark.parametrize(
    ("kind", "scheme", "cls"),
    [
        ("metadata", "sqlite", SqlMetadataStore),
        ("metadata", "postgresql", SqlMetadataStore),
        ("artifacts", "file", LocalBackend),
    ],
)
def test_load_backend_returns_the_registered_class(kind: str, scheme: str, cls: type) -> None:
    assert load_backend(kind, scheme) is cls


def test_every_row_of_the_table_loads_with_the_dev_extras() -> None:
    for kind, table in BACKENDS.items():
        for scheme, backend in table.items():
            loaded = load_backend(kind, scheme)
            assert isinstance(loaded, type)
            assert f"{loaded.__module__}:{loaded.__name__}" == backend.target


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument) as info:
        load_backend("metadata", "mysql")
    message = str(info.value)
    assert "'mysql'" in message
    assert "known schemes: http:, https:, postgresql:, sqlite:" in message
    assert info.value.field == "uri"
    with pytest.raises(InvalidArgument, match="known schemes: file:, http:, https:, s3:"):
        load_backend("artifacts", "gs")


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown backend kind 'queue'"):
        load_backend("queue", "redis")


def test_opening_a_store_with_an_unknown_scheme_fails_before_connecting() -> None:
    with pytest.raises(InvalidArgument, match="no metadata backend for scheme 'mysql'"):
        open_metadata_store("mysql://user@127.0.0.1:1/db")


@pytest.mark.parametrize(
    ("kind", "scheme", "module", "extra"),
    [("artifacts", "s3", "boto3", "s3"), ("metadata", "postgresql", "psycopg", "postgres")],
)
def test_a_missing_extra_names_the_exact_install_command(
    monkeypatch: pytest.MonkeyPatch, kind: str, scheme: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingExtra) as info:
        load_backend(kind, scheme)
    message = str(info.value)
    assert f"pip install 'conveyor-mlops[{extra}]'" in message
    assert repr(module) in message
    assert isinstance(info.value, ImportError)
    assert info.value.exit_code == 6


def test_a_backend_without_requirements_loads_even_when_extras_are_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert load_backend("metadata", "sqlite") is SqlMetadataStore
    assert load_backend("artifacts", "file") is LocalBackend
