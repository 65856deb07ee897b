"""The registry store contract on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.stores.metadata.sql.audit import iter_events, verify_chain
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.contracts.registry import RegistryStoreContract
from conveyor.testing.postgres import truncate_all


class SqlAudit:
    def audit_events(self, store: Any) -> list[Any]:
        with store.engine.connect() as conn:
            return list(iter_events(conn))

    def audit_chain_ok(self, store: Any) -> bool:
        with store.engine.connect() as conn:
            return verify_chain(conn).ok


class TestSqliteRegistry(SqlAudit, RegistryStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'conveyor.db'}")
        yield store
        store.close()


@pytest.mark.postgres
class TestPostgresRegistry(SqlAudit, RegistryStoreContract):
    @pytest.fixture
    def store(self, postgres_uri: str) -> Iterator[Any]:
        store = SqlMetadataStore(postgres_uri)
        truncate_all(postgres_uri)
        yield store
        store.close()
