"""Old idempotency keys are pruned: by the running server periodically, and by `conveyor db prune-keys`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from conveyor.cli.main import cli
from conveyor.core.ids import now_ms
from conveyor.core.settings import reset_settings
from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.sql.schema import idempotency_keys
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve

DAY = 24 * 3600 * 1000


def keys(store: SqlMetadataStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(idempotency_keys.c.key)).scalars())


def age(store: SqlMetadataStore, key: str, ms: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(idempotency_keys).where(idempotency_keys.c.key == key).values(created_at=now_ms() - ms))


def test_the_server_prunes_old_keys_while_it_runs_and_retries_still_apply_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlMetadataStore(uri)
    run = store.create_run(project="p")
    store.log_metric_points([(run.id, "loss", 1.0, 0, now_ms())], idempotency_key="ancient-batch")
    age(store, "ancient-batch", 2 * DAY)
    config = ServerConfig(backend=uri, artifacts=str(tmp_path / "artifacts"), prune_every=0.2)
    with serve(config) as url:
        batch = {"points": [[run.id, "loss", 2.0, 1, now_ms()]], "idempotency_key": "recent-batch"}
        assert httpx.post(url + "/api/v1/metrics/batch", json=batch).status_code < 300
        deadline = time.monotonic() + 30
        while "ancient-batch" in keys(store):
            assert time.monotonic() < deadline, "the server did not prune"
            time.sleep(0.1)
        time.sleep(0.5)  # a few more prunes: the recent key stays
        assert keys(store) == {"recent-batch"}
        assert httpx.post(url + "/api/v1/metrics/batch", json=batch).status_code < 300  # the retry
    assert [p.step for p in store.get_metric_history(run.id, "loss")] == [0, 1]
    store.close()


def test_prune_keys_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlMetadataStore(uri)
    run = store.create_run(project="p")
    for key, ms in (("two-days-old", 2 * DAY), ("ten-hours-old", DAY // 2 - 2 * 3600 * 1000), ("just-now", 0)):
        store.log_metric_points([(run.id, "m", 1.0, len(key), now_ms())], idempotency_key=key)
        age(store, key, ms)
    monkeypatch.setenv("CONVEYOR_URI", uri)
    reset_settings()
    runner = CliRunner()
    done = runner.invoke(cli, ["db", "prune-keys"], prog_name="conveyor")
    assert done.exit_code == 0, done.output
    assert "removed 1 idempotency keys older than 1d" in done.output
    assert keys(store) == {"ten-hours-old", "just-now"}
    assert runner.invoke(cli, ["db", "prune-keys", "--older-than", "6h"]).exit_code == 0
    assert keys(store) == {"just-now"}
    refused = runner.invoke(cli, ["db", "prune-keys", "--older-than", "10m"])
    assert refused.exit_code != 0 and "at least an hour" in refused.output
    assert runner.invoke(cli, ["db", "prune-keys", "--older-than", "soon"]).exit_code != 0
    assert keys(store) == {"just-now"}
    store.close()
    reset_settings()
