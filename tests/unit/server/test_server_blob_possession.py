"""Naming a blob is not holding it: references need an upload receipt or read access (real server, real tokens).

An editor of one project cannot register a model version, a dataset version or
a run file over blobs of another project he cannot read (403 naming the blob,
nothing recorded), while re-logging a model the caller can read uploads nothing.
Deleting a model version takes its blobs away from the project's viewers unless
another live version lists them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.settings import reset_settings
from conveyor.server.config import ServerConfig
from conveyor.server.routes import _files, artifacts, blobs
from conveyor.stores.artifacts.cas import blob_key, open_content_store
from conveyor.stores.metadata.rest import RestMetadataStore
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve

pytestmark = pytest.mark.usefixtures("conveyor_home")


@dataclass
class Team:
    url: str
    artifacts: Path
    tokens: dict[str, str]
    streamed: list[int]  # sizes of the bodies the server's upload routes received

    def act_as(self, monkeypatch: pytest.MonkeyPatch, user: str, project: str) -> None:
        monkeypatch.setenv("CONVEYOR_PROJECT", project)
        monkeypatch.setenv("CONVEYOR_URI", self.url)
        monkeypatch.setenv("CONVEYOR_TOKEN", self.tokens[user])
        reset_settings()
        cv.configure()

    def call(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1{path}",
                             headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=30, **kwargs)

    def status(self, user: str, digest: str) -> int:
        return self.call(user, "GET", f"/blobs/{blob_key(digest)}").status_code

    def package(self, digest: str) -> list[str]:
        content = open_content_store(str(self.artifacts))
        return [digest, *(f.digest for f in content.get_manifest(digest))]

    def raw(self, digest: str) -> bytes:
        return bytes(open_content_store(str(self.artifacts)).get_bytes(digest))


@pytest.fixture
def team(tmp_path: Path, sql_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    uri = sql_uri
    store = SqlMetadataStore(uri)
    gov = store.governance
    tokens = {name: gov.create_principal(name).token for name in ("eddie", "olga", "vera", "mallory")}
    gov.grant("eddie", project="p", role="editor")
    gov.grant("olga", project="p", role="owner")
    gov.grant("vera", project="p", role="viewer")
    gov.grant("mallory", project="q", role="editor")  # an editor, but not of p
    store.close()
    streamed: list[int] = []
    original = _files.receive_file

    async def receive(request: Any, folder: Path, limit: int) -> Any:
        tmp, digest, size = await original(request, folder, limit)
        streamed.append(size)
        return tmp, digest, size

    monkeypatch.setattr(blobs, "receive_file", receive)
    monkeypatch.setattr(artifacts, "receive_file", receive)
    with serve(ServerConfig(backend=uri, artifacts=str(tmp_path / "server-artifacts"), auth=True)) as url:
        yield Team(url, tmp_path / "server-artifacts", tokens, streamed)
    cv.configure()


def _model(seed: int = 0) -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import RandomForestRegressor

    bikes = pd.read_csv(Path(__file__).parents[3] / "examples/data/bike_sharing_hourly.csv", nrows=400)
    x = bikes[["temp", "hum", "windspeed", "season"]]
    return RandomForestRegressor(n_estimators=10, random_state=seed).fit(x, bikes["cnt"]), x


def test_an_editor_cannot_reference_blobs_of_a_project_he_cannot_read(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x = _model()
    team.act_as(monkeypatch, "eddie", "p")
    version = cv.log_model(model, name="m", input_example=x.head(3))
    stolen = team.package(version.package_digest)
    assert team.status("mallory", stolen[0]) == 403

    # mallory names p's package in q: refused, the body names the blob, nothing is recorded
    assert team.call("mallory", "POST", "/projects/q/models", json={"name": "loot"}).status_code == 201
    register = {"flavour": version.flavour, "format": version.format, "package_digest": stolen[0],
                "signature": None, "info": {}}
    denied = team.call("mallory", "POST", "/projects/q/models/loot/versions", json=register)
    assert denied.status_code == 403, denied.text
    assert denied.json()["error"]["field"] == "package_digest" and stolen[0] in denied.json()["error"]["message"]
    assert team.call("mallory", "GET", "/projects/q/models/loot/versions").json()["versions"] == []
    # nor as a dataset version, nor as a run file
    dataset = {"content_hash": stolen[0], "kind": "files", "num_files": len(stolen) - 1, "size": 1}
    assert team.call("mallory", "POST", "/datasets/loot/versions", json=dataset).status_code == 403
    assert team.call("mallory", "GET", "/datasets").json() == []
    run = team.call("mallory", "POST", "/runs", json={"project": "q"}).json()
    files = {"files": [{"path": "model.pkl", "digest": stolen[-1], "size": 1}]}
    refused = team.call("mallory", "POST", f"/runs/{run['id']}/artifacts", json=files)
    assert refused.status_code == 403 and stolen[-1] in refused.json()["error"]["message"]
    assert team.call("mallory", "GET", f"/runs/{run['id']}/artifacts").json() == []
    assert [team.status("mallory", d) for d in stolen] == [403] * len(stolen)

    # a manifest of his own that lists p's files: he holds the manifest, not the files it names
    manifest = team.raw(stolen[0])  # the manifest's bytes are easy to rebuild from a listing: a receipt
    assert team.call("mallory", "PUT", f"/blobs/{blob_key(stolen[0])}", content=manifest).status_code == 204
    denied = team.call("mallory", "POST", "/projects/q/models/loot/versions", json=register)
    assert denied.status_code == 403 and "more" in denied.json()["error"]["message"]
    assert team.call("mallory", "GET", "/projects/q/models/loot/versions").json()["versions"] == []

    # with the bytes themselves (he trained the same model), registering is fine
    for digest in stolen[1:]:
        assert team.call("mallory", "PUT", f"/blobs/{blob_key(digest)}", content=team.raw(digest)).status_code == 204
    assert team.call("mallory", "POST", "/projects/q/models/loot/versions", json=register).status_code == 201
    assert [team.status("mallory", d) for d in stolen] == [200] * len(stolen)


def test_relogging_a_model_the_caller_can_read_uploads_nothing_and_strangers_upload_it_again(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x = _model()
    team.act_as(monkeypatch, "eddie", "p")
    first = cv.log_model(model, name="m", input_example=x.head(3))
    uploaded = sum(team.streamed)
    assert uploaded > 10_000  # the forest's bytes went up once
    team.streamed.clear()
    second = cv.log_model(model, name="m", input_example=x.head(3))
    assert (second.version, second.package_digest) == (2, first.package_digest)
    assert sum(team.streamed) == 0  # every blob was known to be held: 0 bytes uploaded

    team.act_as(monkeypatch, "mallory", "q")  # cannot read p: the server does not say it has the blobs
    copy = cv.log_model(model, name="m", input_example=x.head(3))
    assert copy.package_digest == first.package_digest
    assert sum(team.streamed) >= uploaded
    np.testing.assert_allclose(cv.load_model("models:/m/1").predict(x), model.predict(x))


def test_deleting_a_version_takes_its_blobs_away_unless_another_live_version_lists_them(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    (one, x), (other, _) = _model(0), _model(1)
    team.act_as(monkeypatch, "eddie", "p")
    v1 = cv.log_model(one, name="m", input_example=x.head(3))
    v2 = cv.log_model(one, name="m", input_example=x.head(3))  # the same package as v1
    v3 = cv.log_model(other, name="m", input_example=x.head(3))
    shared = set(team.package(v1.package_digest))
    only_v3 = set(team.package(v3.package_digest)) - shared
    assert v2.package_digest == v1.package_digest and only_v3
    assert {team.status("vera", d) for d in shared | only_v3} == {200}

    assert team.call("olga", "DELETE", "/projects/p/models/m/versions/3").status_code == 204
    assert {team.status("vera", d) for d in only_v3} == {403}
    assert {team.status("vera", d) for d in shared} == {200}
    assert team.call("olga", "DELETE", "/projects/p/models/m/versions/2").status_code == 204
    assert {team.status("vera", d) for d in shared} == {200}  # v1 still lists them
    team.act_as(monkeypatch, "vera", "p")
    np.testing.assert_allclose(cv.load_model("models:/m/1").predict(x), one.predict(x))
    assert team.call("olga", "DELETE", "/projects/p/models/m/versions/1").status_code == 204
    assert {team.status("vera", d) for d in shared} == {403}
    assert team.call("vera", "GET", "/projects/p/models/m/versions").json()["versions"] == []
    # eddie uploaded those bytes himself: his receipts still let him register them again
    again = RestMetadataStore(team.url, token=team.tokens["eddie"]).registry.create_version(
        "p", "m", flavour=v1.flavour, format=v1.format, package_digest=v1.package_digest, signature=None, info={})
    assert again.version == 4 and {team.status("vera", d) for d in shared} == {200}
