"""The registry, dataset and monitor contracts, unchanged, against a live server on SQLite and PostgreSQL.

The audit hooks read the trail the way an admin would: through the server's
``/audit`` routes (``store.governance``), so what is checked is what a client sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.rest import RestMetadataStore
from conveyor.testing.contracts.datasets import DatasetStoreContract
from conveyor.testing.contracts.monitors import MonitorStoreContract
from conveyor.testing.contracts.registry import RegistryStoreContract
from conveyor.testing.postgres import truncate_all
from conveyor.testing.server import serve


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[RestMetadataStore]:
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'server.db'}", artifacts=str(tmp_path / "artifacts"))
    with serve(config) as url:
        store = RestMetadataStore(url, retry_for=5)
        yield store
        store.close()


@pytest.fixture
def postgres_server(postgres_uri: str, tmp_path: Path) -> Iterator[RestMetadataStore]:
    config = ServerConfig(backend=postgres_uri, artifacts=str(tmp_path / "artifacts"))
    with serve(config) as url:
        truncate_all(postgres_uri)
        store = RestMetadataStore(url, retry_for=5)
        yield store
        store.close()


class RestAudit:
    def audit_events(self, store: Any) -> list[Any]:
        events: list[Any] = []
        while batch := store.governance.list_audit(after_seq=events[-1].seq if events else 0):
            events.extend(batch)
        return events

    def audit_chain_ok(self, store: Any) -> bool:
        return bool(store.governance.verify_audit().ok)


class TestRestRegistryOnSqlite(RestAudit, RegistryStoreContract):
    @pytest.fixture
    def store(self, sqlite_server: RestMetadataStore) -> RestMetadataStore:
        return sqlite_server


@pytest.mark.postgres
class TestRestRegistryOnPostgres(RestAudit, RegistryStoreContract):
    @pytest.fixture
    def store(self, postgres_server: RestMetadataStore) -> RestMetadataStore:
        return postgres_server


class TestRestDatasetsOnSqlite(DatasetStoreContract):
    @pytest.fixture
    def datasets(self, sqlite_server: RestMetadataStore) -> Any:
        return sqlite_server.datasets


@pytest.mark.postgres
class TestRestDatasetsOnPostgres(DatasetStoreContract):
    @pytest.fixture
    def datasets(self, postgres_server: RestMetadataStore) -> Any:
        return postgres_server.datasets


class TestRestMonitorsOnSqlite(MonitorStoreContract):
    @pytest.fixture
    def monitors(self, sqlite_server: RestMetadataStore) -> Any:
        return sqlite_server.monitors


@pytest.mark.postgres
class TestRestMonitorsOnPostgres(MonitorStoreContract):
    @pytest.fixture
    def monitors(self, postgres_server: RestMetadataStore) -> Any:
        return postgres_server.monitors


def test_an_alias_move_cannot_pose_as_a_promotion_or_rollback(sqlite_server: RestMetadataStore) -> None:
    """Rollback replays the alias history, so a client may not write moves that claim to be rollbacks."""
    import httpx

    from conveyor.core.errors import InvalidArgument
    from conveyor.testing.contracts.registry import register

    register(sqlite_server)
    register(sqlite_server)
    url = f"{sqlite_server.uri}/api/v1/projects/bikes/models/bike-demand/aliases/champion"
    forged = httpx.put(url, json={"version": 2, "action": "rollback", "details": {"forced": False}})
    assert forged.status_code == 422 and forged.json()["error"]["field"] == "action"
    with pytest.raises(InvalidArgument):
        sqlite_server.registry.set_alias("bikes", "bike-demand", "champion", 2, action="promote")
    assert sqlite_server.registry.get_model("bikes", "bike-demand").aliases == {}
