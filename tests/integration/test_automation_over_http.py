"""Automations through a server: applied, fired and told over HTTP, run by an agent next to the database.

The SDK talks to a live server (``CONVEYOR_URI=http://…``); the agent holds its
own connection to the server's database and artifact folder, as ``conveyor
server --agent`` does. Real pipeline, real data, real scikit-learn models.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from automation_kit import FEATURES, PIPELINE, spec
from click.testing import CliRunner

import conveyor as cv
from conveyor.automation.agent import Agent
from conveyor.cli.main import cli
from conveyor.core.errors import InvalidArgument, InvalidState, PermissionDenied
from conveyor.server.config import ServerConfig
from conveyor.stores.artifacts.cas import open_content_store
from conveyor.stores.metadata.base import open_metadata_store
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve


def _world(tmp_path: Path, bikes: pd.DataFrame, home: Path) -> dict[str, Any]:
    """The toy pipeline, data version 1 (Jan-Feb 2011) and a holdout (March 2011), all through the server."""
    cv.set_project("auto")
    (tmp_path / "toy.py").write_text(PIPELINE)
    bikes[bikes["dteday"] < "2011-03-01"].to_csv(tmp_path / "v1.csv", index=False)
    cv.data.add(tmp_path / "v1.csv", name="bikes")
    march = bikes[bikes["dteday"].str.startswith("2011-03")]
    cv.data.log(march[[*FEATURES, "cnt"]], name="holdout")
    return {"dir": tmp_path, "pipeline": f"{tmp_path / 'toy.py'}:release", "bikes": bikes, "home": home}


@pytest.fixture
def served(tmp_path: Path, conveyor_home: Path, bikes: pd.DataFrame) -> Iterator[dict[str, Any]]:
    db, artifacts = f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts"
    with serve(ServerConfig(backend=db, artifacts=str(artifacts))) as url:
        cv.configure(uri=url, artifacts=url)
        world = _world(tmp_path, bikes, conveyor_home)
        agent = Agent(open_metadata_store(db), open_content_store(str(artifacts)), conveyor_home,
                      interval=0.05, lease_ttl=5.0, holder="agent-by-the-database")
        yield world | {"url": url, "db": db, "agent": agent}
        cv.configure()


def test_an_automation_applied_and_fired_over_http_is_run_by_the_agent(served: dict[str, Any]) -> None:
    applied = cv.automation.apply(spec(served))
    assert [a.name for a in cv.automation.list_automations()] == ["retrain"]
    store = SqlMetadataStore(served["db"])  # it landed in the server's database, checked there
    stored = store.automation.get_automation("auto", "retrain")
    store.close()
    assert stored.id == applied.record.id and stored.spec["promote"]["gate"]["target"] == "cnt"
    assert any(key.startswith("new_data") for key in stored.cursors)  # bikes@1 was there before: no firing
    fired = cv.automation.trigger("retrain", reason="over http")
    assert fired.state == "pending" and fired.trigger == "manual"

    report = served["agent"].run_once()

    assert report.leader
    firing = cv.automation.history("retrain")[0]
    assert firing.id == fired.id and firing.state == "done", firing.steps
    assert cv.models.get_model("toy").aliases == {"champion": 1}
    story = "\n".join(cv.automation.story("retrain"))
    assert "manual: over http" in story and "version 1 is now champion" in story

    runner = CliRunner()
    off = runner.invoke(cli, ["automation", "disable", "retrain"], prog_name="conveyor")
    assert off.exit_code == 0, off.output
    assert not cv.automation.get("retrain").record.enabled
    shown = runner.invoke(cli, ["automation", "history", "retrain"], prog_name="conveyor")
    assert shown.exit_code == 0 and "DONE" in shown.output
    with pytest.raises(InvalidState, match="next to the database"):
        cv.automation.build_agent().run_once()  # the agent's own work is not done over HTTP
    cv.automation.delete("retrain")
    assert cv.automation.list_automations() == []


def test_a_bad_spec_is_refused_by_the_server_and_nothing_is_stored(served: dict[str, Any]) -> None:
    store = cv.automation.service().records
    good = spec(served)
    bad_specs = [
        ({**good, "on": ["sunspots:daily"]}, "spec.on"),
        ({**good, "name": "other"}, "spec.name"),
        ({**good, "promote": {**good["promote"], "gate": "/etc/passwd"}}, "spec.promote.gate"),
    ]
    for bad, field in bad_specs:
        with pytest.raises(InvalidArgument) as err:
            store.put_automation(project="auto", name="retrain", spec=bad)
        assert err.value.field.startswith(field), (field, err.value.field, err.value.message)
    with pytest.raises(InvalidArgument) as err:  # only the agent records the other triggers
        store.add_firing(cv.automation.apply(good).record.id, trigger="manual", key="not-manual", reason="",
                         evidence={})
    assert err.value.field == "key"
    assert [f.key for f in cv.automation.history("retrain")] == []


def test_owners_apply_editors_fire_viewers_read(tmp_path: Path, conveyor_home: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlMetadataStore(db)
    gov = store.governance
    tokens = {name: gov.create_principal(name).token for name in ("olga", "eddie", "vera")}
    for name, role in (("olga", "owner"), ("eddie", "editor"), ("vera", "viewer")):
        gov.grant(name, project="auto", role=role)
    store.close()
    (tmp_path / "toy.py").write_text(PIPELINE)
    manual = {"name": "retrain", "pipeline": f"{tmp_path / 'toy.py'}:release", "on": ["manual"],
              "params": {"path": "data.csv"}}
    with serve(ServerConfig(backend=db, artifacts=str(tmp_path / "artifacts"), auth=True)) as url:
        def as_(who: str) -> Any:
            cv.configure(uri=url, artifacts=url, token=tokens[who])
            cv.set_project("auto")
            return cv.automation

        try:
            with pytest.raises(PermissionDenied):  # an automation runs its code in the agent: owners only
                as_("eddie").apply(manual)
            as_("olga").apply(manual)
            fired = as_("eddie").trigger("retrain", reason="editor")
            with pytest.raises(PermissionDenied):
                as_("vera").trigger("retrain")
            assert [f.id for f in as_("vera").history("retrain")] == [fired.id]
            with pytest.raises(PermissionDenied):
                as_("eddie").delete("retrain")
            retried = httpx.post(f"{url}/api/v1/automations/{fired.automation_id}/firings",
                                 headers={"Authorization": f"Bearer {tokens['eddie']}"},
                                 json={"trigger": "manual", "key": fired.key, "reason": "a retry"})
            assert retried.status_code == 201 and retried.json()["id"] == fired.id  # the same firing, once
            assert len(as_("vera").history("retrain")) == 1
        finally:
            cv.configure()
