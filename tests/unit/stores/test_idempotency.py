"""A write retried with its idempotency key applies once, on SQLite and on PostgreSQL.

PostgreSQL reports the row count of ``INSERT ... ON CONFLICT DO NOTHING`` only
when asked to; without it every retry looked new and metric points were stored
twice. This runs the same retries on both databases.
"""

from __future__ import annotations

import pytest

from conveyor.core.ids import now_ms
from conveyor.stores.metadata.sql.audit import iter_events
from conveyor.stores.metadata.sql.store import SqlMetadataStore


def test_a_metric_batch_retried_with_its_key_is_written_once(sql_store: SqlMetadataStore) -> None:
    run = sql_store.create_run(project="p")
    points = [(run.id, "loss", 0.5, 0, now_ms()), (run.id, "loss", 0.4, 1, now_ms())]
    sql_store.log_metric_points(points, idempotency_key="batch-0001")
    sql_store.log_metric_points(points, idempotency_key="batch-0001")  # the answer was lost; the client retries
    assert [p.value for p in sql_store.get_metric_history(run.id, "loss")] == [0.5, 0.4]


def test_a_finish_retried_with_its_key_writes_its_points_once(sql_store: SqlMetadataStore) -> None:
    run = sql_store.create_run(project="p")
    points = [(run.id, "loss", 0.1, 9, now_ms())]
    sql_store.finish_run(run.id, "FINISHED", now_ms(), points, idempotency_key="finish-0001")
    sql_store.finish_run(run.id, "FINISHED", now_ms(), points, idempotency_key="finish-0001")
    assert len(sql_store.get_metric_history(run.id, "loss")) == 1


def test_an_existing_lineage_edge_is_not_audited_again(sql_store: SqlMetadataStore) -> None:
    run = sql_store.create_run(project="p")
    sql_store.add_lineage(("dataset_version", "d1"), ("run", run.id), "input")
    sql_store.add_lineage(("dataset_version", "d1"), ("run", run.id), "input")
    with sql_store.engine.connect() as conn:
        assert [e.action for e in iter_events(conn)].count("lineage.add") == 1


def _keys(sql_store: SqlMetadataStore) -> set[str]:
    from sqlalchemy import select

    from conveyor.stores.metadata.sql.schema import idempotency_keys

    with sql_store.engine.connect() as conn:
        return set(conn.execute(select(idempotency_keys.c.key)).scalars())


def test_pruning_forgets_old_keys_keeps_recent_ones_and_a_retry_still_applies_once(sql_store: SqlMetadataStore) -> None:
    from conveyor.core.errors import InvalidArgument

    run = sql_store.create_run(project="p")
    points = [(run.id, "loss", 0.5, 0, now_ms())]
    sql_store.log_metric_points(points, idempotency_key="old-batch-1")
    sql_store.log_metric_points(points, idempotency_key="new-batch-1")
    day, hour = 24 * 3600 * 1000, 3600 * 1000
    # a day and an hour later, the first key is more than a day old; the second is re-recorded recently
    later = now_ms() + day + hour
    from sqlalchemy import update

    from conveyor.stores.metadata.sql.schema import idempotency_keys

    with sql_store.engine.begin() as conn:
        conn.execute(update(idempotency_keys).where(idempotency_keys.c.key == "new-batch-1")
                     .values(created_at=later - 2 * hour))
    assert sql_store.prune_idempotency_keys(now=later) == 1
    assert _keys(sql_store) == {"new-batch-1"}
    assert sql_store.prune_idempotency_keys(now=later) == 0
    sql_store.log_metric_points(points, idempotency_key="new-batch-1")  # a retry within the retention
    assert len(sql_store.get_metric_history(run.id, "loss")) == 2  # the two first writes only
    with pytest.raises(InvalidArgument, match="at least an hour"):
        sql_store.prune_idempotency_keys(60_000)
    assert _keys(sql_store) == {"new-batch-1"}
