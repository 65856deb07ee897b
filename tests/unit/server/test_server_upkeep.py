"""Old idempotency keys are pruned: by the running server periodically, and by `conveyor db prune-keys`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from conveyor.cli.main import cli
from conveyor.core.ids import now_ms
from conveyor.core.settings import reset_settings
from conveyor.server.app import _open_state
from conveyor.server.config import ServerConfig
from conveyor.server.upkeep import expire_uploads, sweep_uploads
from conveyor.stores.metadata.sql.schema import idempotency_keys
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.s3server import s3_bucket_uri, s3_endpoint  # noqa: F401
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


def _stage(folder: Path, name: str, days_old: float) -> Path:
    path = folder / "uploads" / name / ("ab" * 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half an upload")
    then = time.time() - days_old * DAY / 1000
    os.utime(path, (then, then))
    return path


def test_the_server_sweeps_stale_staged_uploads_of_a_local_store(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    old, fresh = _stage(artifacts, "a" * 32, 2), _stage(artifacts, "b" * 32, 0.5)
    blob = artifacts / "blobs" / "ab" / ("c" * 62)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"a kept blob")
    os.utime(blob, (0, 0))  # ancient, but not a staged upload: never swept
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=str(artifacts), sweep_every=0.2)
    with serve(config):
        deadline = time.monotonic() + 30
        while old.exists():
            assert time.monotonic() < deadline, "the server did not sweep"
            time.sleep(0.1)
        time.sleep(0.5)  # a few more sweeps
        assert fresh.exists() and blob.exists()
        assert not old.parent.exists()  # its folder went with it


def _lifecycle(s3: Any, bucket: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return rules


def test_an_s3_store_gets_a_lifecycle_rule_and_stale_uploads_are_swept(
    tmp_path: Path, s3_bucket_uri: str  # noqa: F811
) -> None:
    import boto3

    bucket, _, prefix = s3_bucket_uri.removeprefix("s3://").partition("/")
    s3 = boto3.session.Session().client("s3", endpoint_url=os.environ["CONVEYOR_S3_ENDPOINT_URL"])
    theirs = {"ID": "keep-logs-a-year", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
              "Expiration": {"Days": 365}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]})
    staged = f"{prefix}/uploads/{'d' * 32}/{'ef' * 32}"
    s3.put_object(Bucket=bucket, Key=staged, Body=b"never completed")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/blobs/ab/{'c' * 62}", Body=b"a blob")

    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=s3_bucket_uri,
                          upload_expiry_days=3)
    with serve(config):
        deadline = time.monotonic() + 30
        while len(_lifecycle(s3, bucket)) < 2:
            assert time.monotonic() < deadline, "the server put no lifecycle rule"
            time.sleep(0.1)
    rules = {r["ID"]: r for r in _lifecycle(s3, bucket)}
    ours = next(r for i, r in rules.items() if i != "keep-logs-a-year")
    assert rules["keep-logs-a-year"]["Expiration"] == {"Days": 365}  # the bucket's own rule is kept
    assert ours["Filter"] == {"Prefix": f"{prefix}/uploads/"} and ours["Expiration"]["Days"] == 3
    assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    # the sweep (for stores without lifecycle rules): nothing is 3 days old yet; later it is
    state = _open_state(config)
    try:
        assert sweep_uploads(state) == 0
        assert expire_uploads(state) is True  # idempotent: the same rule again
        assert len(_lifecycle(s3, bucket)) == 2
        # moto dates every multipart upload in 2010, so this one is started only now, after the sweep above
        started = s3.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/uploads/{'e' * 32}/{'01' * 32}")
        assert started["UploadId"] and s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
        assert sweep_uploads(state, now=time.time() + 3 * DAY / 1000 + 60) == 2
    finally:
        state.close()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    assert keys == [f"{prefix}/blobs/ab/{'c' * 62}"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
