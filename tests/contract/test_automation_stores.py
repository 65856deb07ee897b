"""The automation store contract on SQLite and on PostgreSQL, and its audit trail."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.core.errors import LeaseLost
from conveyor.core.ids import now_ms
from conveyor.stores.metadata.sql.audit import iter_events, verify_chain
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.leases import check_fence
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



def test_a_takeover_waits_for_writes_that_passed_the_fence(sql_store: SqlMetadataStore) -> None:
    auto = sql_store.automation
    assert auto.acquire_lease("agent", "a", 60_000).token == 1
    taken: list[Any] = []
    takeover = threading.Thread(
        target=lambda: taken.append(auto.acquire_lease("agent", "b", 60_000, now=now_ms() + 120_000))
    )
    with write_transaction(sql_store.engine) as conn:
        check_fence(conn, ("agent", 1), now_ms())  # a write of agent a, checked and not yet committed
        takeover.start()
        takeover.join(0.5)
        assert takeover.is_alive() and taken == []
    takeover.join()
    assert taken[0].token == 2
    with write_transaction(sql_store.engine) as conn, pytest.raises(LeaseLost, match="its token is 2"):
        check_fence(conn, ("agent", 1), now_ms())


def test_an_expired_lease_fences_writes_even_when_nobody_took_it(sql_store: SqlMetadataStore) -> None:
    auto = sql_store.automation
    made = AutomationStoreContract().make(sql_store)
    assert auto.acquire_lease("agent", "a", 1_000, now=now_ms() - 5_000).token == 1
    with pytest.raises(LeaseLost, match="expired"):
        fire(auto, made.id, fence=("agent", 1))
    assert auto.list_firings(made.id) == []
    assert auto.acquire_lease("agent", "a", 60_000).token == 1  # the same holder renews: same token
    assert fire(auto, made.id, fence=("agent", 1)).number == 1
