"""The dataset store contract on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.contracts.datasets import DatasetStoreContract
from conveyor.testing.postgres import truncate_all


class TestSqliteDatasets(DatasetStoreContract):
    @pytest.fixture
    def datasets(self, tmp_path: Path) -> Iterator[Any]:
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'conveyor.db'}")
        yield store.datasets
        store.close()


@pytest.mark.postgres
class TestPostgresDatasets(DatasetStoreContract):
    @pytest.fixture
    def datasets(self, postgres_uri: str) -> Iterator[Any]:
        store = SqlMetadataStore(postgres_uri)
        truncate_all(postgres_uri)
        yield store.datasets
        store.close()
