"""The SQL store's own writes leave audit events (metric points do not), under the acting identity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.core.context import acting_as
from conveyor.core.entities import ArtifactFile, RunStatus
from conveyor.core.ids import now_ms
from conveyor.stores.metadata.sql.store import SqlMetadataStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlMetadataStore]:
    s = SqlMetadataStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield s
    s.close()


def test_every_change_is_an_audit_event_and_metrics_are_not(store: SqlMetadataStore) -> None:
    with acting_as("ana"):
        run = store.create_run(project="bikes", name="base", tags={"team": "a"})
        store.log_params(run.id, {"lr": "0.1"})
        store.log_params(run.id, {"lr": "0.1"})  # nothing new: no event
        store.set_tags(run.id, {"team": "b"})
        store.delete_tag(run.id, "team")
        store.log_metric_points([(run.id, "loss", 1.0, i, now_ms()) for i in range(500)])
        store.heartbeat([run.id])
        store.record_artifacts(run.id, [ArtifactFile(path="m.bin", digest="blake3:" + "a" * 64, size=1)])
        store.set_run_status(run.id, RunStatus.FINISHED)
        store.set_run_status(run.id, RunStatus.FINISHED)  # no change: no event
        store.delete_run(run.id)
    events = store.governance.list_audit()
    assert [(e.action, e.actor) for e in events] == [
        ("project.create", "ana"), ("run.create", "ana"), ("run.params", "ana"), ("run.tags", "ana"),
        ("run.tag_delete", "ana"), ("run.artifacts", "ana"), ("run.status", "ana"), ("run.delete", "ana"),
    ]
    tags = events[3]
    assert tags.before == {"team": "a"} and tags.after == {"team": "b"} and tags.project == "bikes"
    assert events[-1].before == {"name": "base", "status": "FINISHED"}
    assert store.governance.verify_audit().ok
    assert [e.action for e in store.governance.list_audit(project="bikes", after_seq=events[5].seq)] == [
        "run.status", "run.delete"]


def test_a_create_retried_with_its_key_returns_the_first_run(store: SqlMetadataStore) -> None:
    first = store.create_run(project="p", name="one", idempotency_key="key-0001")
    again = store.create_run(project="p", name="two", idempotency_key="key-0001")
    assert again.id == first.id and again.name == "one"
    assert len(store.search_runs(["p"])) == 1
    with pytest.raises(ValueError, match="idempotency key"):
        store.create_run(project="p", idempotency_key="short")
