"""Users, tokens, roles and the audit trail, as an operator and a client meet them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import cli
from conveyor.core.errors import PermissionDenied, Unauthenticated
from conveyor.core.ids import now_ms
from conveyor.core.settings import reset_settings
from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.rest import RestMetadataStore
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve


def invoke(*args: str) -> Result:
    reset_settings()
    return CliRunner().invoke(cli, list(args), prog_name="conveyor")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "server.db"
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONVEYOR_URI", f"sqlite:///{path}")
    monkeypatch.delenv("CONVEYOR_TOKEN", raising=False)
    yield path
    reset_settings()


def test_auth_is_on_for_non_loopback_binds_and_with_the_flag() -> None:
    assert not ServerConfig(backend="x", artifacts="y").auth_required
    assert ServerConfig(backend="x", artifacts="y", auth=True).auth_required
    assert ServerConfig(backend="x", artifacts="y", host="0.0.0.0").auth_required
    assert ServerConfig(backend="x", artifacts="y", host="192.168.1.5").auth_required
    assert not ServerConfig(backend="x", artifacts="y", host="::1").auth_required


def test_operator_flow_users_roles_tokens_and_the_audit_trail(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created = invoke("users", "create", "ana", "--admin")
    assert created.exit_code == 0, created.output
    admin_token = created.stdout.strip()
    assert admin_token.startswith("cvt_") and len(admin_token) > 40
    bob_token = invoke("users", "create", "bob").stdout.strip()
    assert invoke("users", "grant", "bob", "--project", "p", "--role", "editor").exit_code == 0
    assert invoke("users", "create", "bob").exit_code == 2  # exists already
    with closing(sqlite3.connect(db)) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM api_tokens")]
    assert len(stored) == 2 and admin_token not in stored and bob_token not in stored

    config = ServerConfig(backend=f"sqlite:///{db}", artifacts=str(tmp_path / "artifacts"), auth=True)
    with serve(config) as url:
        with pytest.raises(Unauthenticated):
            RestMetadataStore(url, token="").list_projects()
        bob = RestMetadataStore(url, token=bob_token)
        run = bob.create_run(project="p", name="by-bob", user="someone-else")
        assert run.user == "bob"  # recorded under the caller, whatever the client claims
        bob.log_params(run.id, {"lr": "0.1"})
        bob.set_tags(run.id, {"stage": "dev"})
        bob.log_metric_points([(run.id, "loss", 1.0, i, now_ms()) for i in range(100)])
        bob.set_run_status(run.id, "FINISHED")
        with pytest.raises(PermissionDenied):
            bob.create_run(project="q")
        with pytest.raises(PermissionDenied):
            bob.delete_run(run.id)  # an editor, not an owner
        with pytest.raises(PermissionDenied):
            bob.governance.create_principal("eve")

        # the CLI through the server, with the admin's token
        monkeypatch.setenv("CONVEYOR_URI", url)
        monkeypatch.setenv("CONVEYOR_TOKEN", admin_token)
        issued = invoke("tokens", "create", "--user", "bob", "--name", "ci", "--expires-in", "30")
        assert issued.exit_code == 0, issued.output
        ci_token = issued.stdout.strip()
        assert RestMetadataStore(url, token=ci_token).get_run(run.id).name == "by-bob"
        listed = json.loads(invoke("tokens", "list", "--user", "bob", "--json").stdout)
        assert [t["name"] for t in listed] == ["initial", "ci"]
        assert ci_token not in json.dumps(listed) and all("token" not in t for t in listed)
        ci = next(t for t in listed if t["name"] == "ci")
        assert ci["expires_at"] - ci["created_at"] == 30 * 86400 * 1000
        assert invoke("tokens", "revoke", ci["id"]).exit_code == 0
        with pytest.raises(Unauthenticated):
            RestMetadataStore(url, token=ci_token, retry_for=0).get_run(run.id)

        monkeypatch.setenv("CONVEYOR_TOKEN", bob_token)
        refused = invoke("users", "create", "eve")
        assert refused.exit_code == 8 and "admin" in refused.output
        monkeypatch.setenv("CONVEYOR_TOKEN", admin_token)
        events = json.loads(invoke("audit", "list", "--project", "p", "--json").stdout)
        verified = invoke("audit", "verify")
        assert verified.exit_code == 0 and "intact" in verified.stdout
        assert httpx.get(url + "/api/v1/audit", params={"project": "p"},
                         headers={"Authorization": f"Bearer {bob_token}"}).status_code == 403

    by_action = {(e["action"], e["actor"]) for e in events}
    from conveyor.core.context import current_actor

    assert ("role.grant", current_actor()) in by_action  # granted on the database by the operator
    for action in ("project.create", "run.create", "run.params", "run.tags", "run.status"):
        assert (action, "bob") in by_action, action
    assert not any(e["action"].startswith("metric") for e in events)
    status = next(e for e in events if e["action"] == "run.status")
    assert status["before"] == {"status": "RUNNING"} and status["after"] == {"status": "FINISHED"}
    monkeypatch.setenv("CONVEYOR_URI", f"sqlite:///{db}")
    everything = json.loads(invoke("audit", "list", "--json").stdout)
    actions = [(e["action"], e["actor"]) for e in everything]
    assert ("token.create", "ana") in actions and ("token.revoke", "ana") in actions

    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE action = 'run.params'")
    broken = invoke("audit", "verify")
    assert broken.exit_code == 1 and "BROKEN" in broken.output


def test_expired_tokens_stop_working(db: Path) -> None:
    store = SqlMetadataStore(f"sqlite:///{db}")
    try:
        gov = store.governance
        gov.create_principal("ana")
        issued = gov.create_token("ana", expires_in=60)
        assert gov.authenticate(issued.token).name == "ana"
        assert gov.authenticate(issued.token, now=issued.info.expires_at + 1) is None
        assert gov.authenticate("cvt_" + "x" * 43) is None
    finally:
        store.close()


def test_audit_since_accepts_durations_and_dates() -> None:
    import datetime as dt

    from conveyor.cli.audit import parse_since

    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert parse_since("1d", now) == int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    assert parse_since("2026-01-01") == int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    with pytest.raises(ValueError, match="since"):
        parse_since("yesterday")
