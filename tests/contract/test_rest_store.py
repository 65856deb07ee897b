"""The metadata store contract, unchanged, against a live server on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.rest import RestMetadataStore
from conveyor.testing.contracts.metadata import MetadataStoreContract
from conveyor.testing.postgres import truncate_all
from conveyor.testing.server import serve


class TestRestStoreOnSqlite(MetadataStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        config = ServerConfig(backend=f"sqlite:///{tmp_path / 'server.db'}", artifacts=str(tmp_path / "artifacts"))
        with serve(config) as url:
            store = RestMetadataStore(url, retry_for=5)
            yield store
            store.close()


@pytest.mark.postgres
class TestRestStoreOnPostgres(MetadataStoreContract):
    @pytest.fixture
    def store(self, postgres_uri: str, tmp_path: Path) -> Iterator[Any]:
        config = ServerConfig(backend=postgres_uri, artifacts=str(tmp_path / "artifacts"))
        with serve(config) as url:
            truncate_all(postgres_uri)
            store = RestMetadataStore(url, retry_for=5)
            yield store
            store.close()
