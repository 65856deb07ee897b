"""Promotion over a server: an editor's client-side "passed" verdict cannot move a gated alias.

The gate runs in the client, so the server does not take its verdict on trust
for a gated alias (``champion`` of a model that declares a gate): an editor
cannot move it by a faked passing verdict, a direct move, a rollback or by
dropping the declared gate; nothing changes. An owner can, forced with a
reason, and the audit trail says so. Real server, real tokens, real models.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.errors import GateFailed, PermissionDenied
from conveyor.core.settings import reset_settings
from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve

pytestmark = pytest.mark.usefixtures("conveyor_home")
M = "/projects/p/models/m"


@dataclass
class Team:
    url: str
    tokens: dict[str, str]

    def act_as(self, monkeypatch: pytest.MonkeyPatch, user: str) -> None:
        monkeypatch.setenv("CONVEYOR_PROJECT", "p")
        monkeypatch.setenv("CONVEYOR_URI", self.url)
        monkeypatch.setenv("CONVEYOR_TOKEN", self.tokens[user])
        reset_settings()
        cv.configure()

    def call(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1{path}",
                             headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=30, **kwargs)

    def champion(self) -> int | None:
        aliases: dict[str, int] = self.call("olga", "GET", M).json()["aliases"]
        return aliases.get("champion")


@pytest.fixture
def team(tmp_path: Path, sql_uri: str) -> Iterator[Team]:
    uri = sql_uri
    store = SqlMetadataStore(uri)
    tokens = {name: store.governance.create_principal(name).token for name in ("eddie", "olga", "sam")}
    store.governance.grant("eddie", project="p", role="editor")
    store.governance.grant("olga", project="p", role="owner")
    store.governance.grant("sam", project="q", role="editor")  # an editor elsewhere
    store.close()
    with serve(ServerConfig(backend=uri, artifacts=str(tmp_path / "artifacts"), auth=True)) as url:
        yield Team(url, tokens)
    cv.configure()


def _versions(team: Team, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """Two versions of m, logged by the editor, and v1 champion before any gate is declared."""
    from sklearn.linear_model import LinearRegression

    bikes = pd.read_csv(Path(__file__).parents[3] / "examples/data/bike_sharing_hourly.csv", nrows=2000)
    x = bikes[["hr", "temp", "hum"]]
    team.act_as(monkeypatch, "eddie")
    cv.log_model(LinearRegression().fit(x[["hr"]], bikes["cnt"]), name="m", input_example=x[["hr"]].head(5))
    cv.log_model(LinearRegression().fit(x, bikes["cnt"]), name="m", input_example=x.head(5))
    cv.models.set_alias("m", "champion", 1)  # no gate declared yet: an editor's move, as before
    return x


def test_an_editor_cannot_put_a_version_in_a_gated_champion_seat(team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    _versions(team, monkeypatch)
    # the gate is the project's policy: an editor can neither declare nor drop it
    strict = {"latency_p95_ms": 1e-6}  # nothing predicts that fast: every promotion fails it
    assert team.call("eddie", "PATCH", M, json={"gate": {}}).status_code == 403
    team.act_as(monkeypatch, "olga")
    cv.models.set_gate("m", strict)
    assert team.call("eddie", "PATCH", M, json={"gate": {}}).status_code == 403
    assert team.call("eddie", "PATCH", M, json={"description": "still fine"}).status_code == 200

    # a faked "passed" verdict, a direct move, a rollback, a removal: all refused, nothing recorded
    fake = {"alias": "champion", "champion_version": 1, "passed": True, "forced": False, "reason": "",
            "report": {"passed": True, "checks": []}, "move_alias": True}
    for method, path, body in [
        ("POST", f"{M}/versions/2/gates", fake),
        ("POST", f"{M}/versions/2/gates", {**fake, "move_alias": False}),
        ("PUT", f"{M}/aliases/champion", {"version": 2}),
        ("POST", f"{M}/aliases/champion/rollback", {}),
        ("DELETE", f"{M}/aliases/champion", None),
    ]:
        refused = team.call("eddie", method, path, json=body)
        assert refused.status_code == 403, (method, path, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "PERMISSION_DENIED" and "declares a gate" in error["message"], error
    assert team.champion() == 1
    assert team.call("eddie", "GET", f"{M}/gates").json() == []
    outsider = team.call("sam", "PUT", f"{M}/aliases/champion", json={"version": 2})
    assert outsider.status_code == 403 and "gate" not in outsider.text  # nothing said about p's model

    team.act_as(monkeypatch, "eddie")  # the SDK's own promotion: the gate fails and says so (a failed verdict is kept)
    with pytest.raises(GateFailed):
        cv.models.promote("m", 2, to="champion")
    with pytest.raises(PermissionDenied, match="owner"):
        cv.models.promote("m", 2, to="champion", force=True, reason="trust me")
    cv.models.set_alias("m", "challenger", 2)  # an alias the server does not gate stays an editor's
    assert team.champion() == 1
    assert [(e.passed, e.forced) for e in cv.models.evaluations("m")] == [(False, False)]

    team.act_as(monkeypatch, "olga")  # the owner forces it past the failing gate, with a reason
    forced = cv.models.promote("m", 2, to="champion", force=True, reason="hotfix for the holiday peak")
    assert forced.forced and not forced.passed and forced.actor == "olga"
    assert team.champion() == 2
    audit = team.call("olga", "GET", "/audit", params={"project": "p"}).json()
    gates = [(e["action"], e["actor"], e["details"].get("reason")) for e in audit if e["action"].startswith("gate.")]
    assert gates == [("gate.failed", "eddie", ""), ("gate.forced", "olga", "hotfix for the holiday peak")]
    assert team.call("olga", "POST", f"{M}/aliases/champion/rollback", json={}).status_code == 200
    assert team.champion() == 1


def test_the_gated_aliases_are_a_server_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlMetadataStore(uri)
    tokens = {name: store.governance.create_principal(name).token for name in ("eddie", "olga")}
    store.governance.grant("eddie", project="p", role="editor")
    store.governance.grant("olga", project="p", role="owner")
    store.close()
    config = ServerConfig(backend=uri, artifacts=str(tmp_path / "a"), auth=True, gated_aliases=("prod",))
    with serve(config) as url:
        team = Team(url, tokens)
        _versions(team, monkeypatch)
        team.act_as(monkeypatch, "olga")
        cv.models.set_gate("m", {"latency_p95_ms": 1e-6})
        assert team.call("eddie", "PUT", f"{M}/aliases/champion", json={"version": 2}).status_code == 200
        assert team.call("eddie", "PUT", f"{M}/aliases/prod", json={"version": 2}).status_code == 403
        assert team.call("olga", "PUT", f"{M}/aliases/prod", json={"version": 2}).status_code == 200
    cv.configure()
