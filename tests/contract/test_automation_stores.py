"""The automation store contract on SQLite and on PostgreSQL, and its audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.stores.metadata.sql.audit import iter_events, verify_chain
from conveyor.stores.metadata.sql.engine import read_transaction
from conveyor.stores.metadata.sql.schema import audit_events
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.contracts.automation import AutomationStoreContract, fire
from conveyor.testing.postgres import truncate_all


class SqlHooks:
    def another(self, store: Any) -> Any:
        return SqlMetadataStore(store.uri)

    def audit_actions(self, store: Any) -> list[str]:
        with read_transaction(store.engine) as conn:
            return [e.action for e in iter_events(conn)]

    def audit_chain_ok(self, store: Any) -> bool:
        with read_transaction(store.engine) as conn:
            return verify_chain(conn).ok


class TestSqliteAutomation(SqlHooks, AutomationStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'conveyor.db'}")
        yield store
        store.close()


@pytest.mark.postgres
class TestPostgresAutomation(SqlHooks, AutomationStoreContract):
    @pytest.fixture
    def store(self, postgres_uri: str) -> Iterator[Any]:
        store = SqlMetadataStore(postgres_uri)
        truncate_all(postgres_uri)
        yield store
        store.close()


def test_every_automation_change_is_audited_without_alert_secrets(tmp_path: Path) -> None:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'conveyor.db'}")
    try:
        auto = store.automation
        made = AutomationStoreContract().make(store)
        AutomationStoreContract().make(store)  # applied again unchanged: no event
        auto.set_enabled("bikes", "retrain", False)
        firing = fire(auto, made.id)
        auto.advance_firing(firing.id, expect="pending", state="pending", message="waiting for a worker")
        auto.advance_firing(firing.id, expect="pending", state="failed", message="no worker")
        auto.delete_automation("bikes", "retrain")
        with read_transaction(store.engine) as conn:
            rows = conn.execute(select(audit_events.c.action, audit_events.c.after, audit_events.c.before)).all()
            assert verify_chain(conn).ok
    finally:
        store.close()
    assert [r.action for r in rows] == [
        "automation.create", "automation.disable", "automation.fire", "automation.firing.note",
        "automation.firing.failed", "automation.delete",
    ]
    assert rows[0].after["spec"]["alerts"] == ["slack"] and "SECRET" not in str(rows)
