"""Gap-free sequences and the hash-chained audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text, update

from conveyor.core.context import acting_as
from conveyor.stores.metadata.sql.audit import append_event, iter_events, verify_chain
from conveyor.stores.metadata.sql.engine import read_transaction, write_transaction
from conveyor.stores.metadata.sql.schema import audit_events
from conveyor.stores.metadata.sql.sequences import current_value, next_value
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.postgres import truncate_all


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'c.db'}"
    else:
        uri = request.getfixturevalue("postgres_uri")
        SqlMetadataStore(uri).close()
        truncate_all(uri)
    store = SqlMetadataStore(uri)
    request.addfinalizer(store.close)
    return store.engine


def test_fifty_concurrent_writers_get_one_to_fifty_without_gaps(engine: Engine) -> None:
    got: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def worker() -> None:
        barrier.wait()
        with write_transaction(engine) as conn:
            value = next_value(conn, "model-versions:m1")
        with lock:
            got.append(value)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 51))


def test_a_rolled_back_increment_leaves_no_gap_and_scopes_are_independent(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        assert next_value(conn, "a") == 1
        assert next_value(conn, "b") == 1
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        assert next_value(conn, "a") == 2
        raise RuntimeError("the write that needed the number failed")
    with write_transaction(engine) as conn:
        assert next_value(conn, "a") == 2
    with read_transaction(engine) as conn:
        assert current_value(conn, "a") == 2
        assert current_value(conn, "never-used") == 0


def test_events_chain_and_verify(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        append_event(conn, action="model.create", object_kind="model", object_id="m", project="p",
                     after={"name": "m"})
    with acting_as("alice"), write_transaction(engine) as conn:
        append_event(conn, action="alias.set", object_kind="model", object_id="m", project="p",
                     before={"champion": None}, after={"champion": 1}, details={"reason": "first"})
    with read_transaction(engine) as conn:
        events = list(iter_events(conn))
        report = verify_chain(conn)
    assert [e.action for e in events] == ["model.create", "alias.set"]
    assert events[1].actor == "alice" and events[1].prev_hash == events[0].hash
    assert events[1].after == {"champion": 1}
    assert report.ok and report.checked == 2


def test_an_edited_or_removed_event_is_detected(engine: Engine) -> None:
    for i in range(3):
        with write_transaction(engine) as conn:
            append_event(conn, action="run.create", object_kind="run", object_id=str(i))
    with write_transaction(engine) as conn:
        first = conn.execute(text("SELECT min(seq) FROM audit_events")).scalar_one()
        conn.execute(update(audit_events).where(audit_events.c.seq == first + 1).values(actor="mallory"))
    with read_transaction(engine) as conn:
        report = verify_chain(conn)
    assert not report.ok and report.broken_at == first + 1 and "modified" in report.reason

    with write_transaction(engine) as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq == first + 1))
    with read_transaction(engine) as conn:
        report = verify_chain(conn)
    assert not report.ok and report.broken_at == first + 2 and "removed" in report.reason


def test_concurrent_appends_keep_one_chain(engine: Engine) -> None:
    def worker(n: int) -> None:
        for i in range(5):
            with write_transaction(engine) as conn:
                append_event(conn, action="run.update", object_kind="run", object_id=f"{n}-{i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with read_transaction(engine) as conn:
        report = verify_chain(conn)
    assert report.ok and report.checked == 40


def test_events_of_one_transaction_chain_and_a_rolled_back_savepoint_is_not_trusted(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        append_event(conn, action="a", object_kind="run", object_id="1")
        append_event(conn, action="b", object_kind="run", object_id="1")
        savepoint = conn.begin_nested()
        append_event(conn, action="undone", object_kind="run", object_id="1")
        savepoint.rollback()
        append_event(conn, action="c", object_kind="run", object_id="1")
    with write_transaction(engine) as conn:  # a later transaction reads the head again
        append_event(conn, action="d", object_kind="run", object_id="1")
    with read_transaction(engine) as conn:
        events = list(iter_events(conn))
        report = verify_chain(conn)
    assert [e.action for e in events] == ["a", "b", "c", "d"]
    assert report.ok and report.checked == 4
