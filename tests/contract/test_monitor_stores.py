"""The monitor store contract on SQLite and on PostgreSQL, and its audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.stores.metadata.sql.audit import verify_chain
from conveyor.stores.metadata.sql.engine import read_transaction
from conveyor.stores.metadata.sql.schema import audit_events
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.contracts.monitors import MonitorStoreContract, result
from conveyor.testing.postgres import truncate_all


class TestSqliteMonitors(MonitorStoreContract):
    @pytest.fixture
    def monitors(self, tmp_path: Path) -> Iterator[Any]:
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'conveyor.db'}")
        yield store.monitors
        store.close()


@pytest.mark.postgres
class TestPostgresMonitors(MonitorStoreContract):
    @pytest.fixture
    def monitors(self, postgres_uri: str) -> Iterator[Any]:
        store = SqlMetadataStore(postgres_uri)
        truncate_all(postgres_uri)
        yield store.monitors
        store.close()


def test_every_monitor_change_is_audited_without_webhook_secrets(tmp_path: Path) -> None:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'conveyor.db'}")
    try:
        made = MonitorStoreContract().make(store.monitors)
        store.monitors.record_result(made.id, result("drift"))
        store.monitors.record_result(made.id, result("ok"))
        store.monitors.delete_monitor("p", "bikes")
        with read_transaction(store.engine) as conn:
            rows = conn.execute(select(audit_events.c.action, audit_events.c.after)).all()
            assert verify_chain(conn).ok
    finally:
        store.close()
    actions = [r.action for r in rows]
    assert actions == ["monitor.create", "monitor_incident.open", "monitor.evaluate", "monitor_incident.resolve",
                       "monitor.evaluate", "monitor.delete"]
    assert rows[0].after["config"]["alerts"] == ["webhook"]  # the URL (a Slack secret) stays out
