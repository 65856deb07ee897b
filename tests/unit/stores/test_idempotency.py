"""A write retried with its idempotency key applies once, on SQLite and on PostgreSQL.

PostgreSQL reports the row count of ``INSERT ... ON CONFLICT DO NOTHING`` only
when asked to; without it every retry looked new and metric points were stored
twice. This runs the same retries on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.core.ids import now_ms
from conveyor.stores.metadata.sql.audit import iter_events
from conveyor.stores.metadata.sql.store import SqlMetadataStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadataStore]:
    if request.param == "sqlite":
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'c.db'}")
    else:
        from conveyor.testing.postgres import truncate_all

        uri = request.getfixturevalue("postgres_uri")
        store = SqlMetadataStore(uri)  # creates the schema on first use
        truncate_all(uri)
    yield store
    store.close()


def test_a_metric_batch_retried_with_its_key_is_written_once(store: SqlMetadataStore) -> None:
    run = store.create_run(project="p")
    points = [(run.id, "loss", 0.5, 0, now_ms()), (run.id, "loss", 0.4, 1, now_ms())]
    store.log_metric_points(points, idempotency_key="batch-0001")
    store.log_metric_points(points, idempotency_key="batch-0001")  # the answer was lost; the client retries
    assert [p.value for p in store.get_metric_history(run.id, "loss")] == [0.5, 0.4]


def test_a_finish_retried_with_its_key_writes_its_points_once(store: SqlMetadataStore) -> None:
    run = store.create_run(project="p")
    points = [(run.id, "loss", 0.1, 9, now_ms())]
    store.finish_run(run.id, "FINISHED", now_ms(), points, idempotency_key="finish-0001")
    store.finish_run(run.id, "FINISHED", now_ms(), points, idempotency_key="finish-0001")
    assert len(store.get_metric_history(run.id, "loss")) == 1


def test_an_existing_lineage_edge_is_not_audited_again(store: SqlMetadataStore) -> None:
    run = store.create_run(project="p")
    store.add_lineage(("dataset_version", "d1"), ("run", run.id), "input")
    store.add_lineage(("dataset_version", "d1"), ("run", run.id), "input")
    with store.engine.connect() as conn:
        assert [e.action for e in iter_events(conn)].count("lineage.add") == 1
