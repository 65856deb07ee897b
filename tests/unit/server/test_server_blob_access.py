"""Reading model packages and dataset files through a server with auth on, with real tokens.

A blob is readable by viewers of a project whose runs recorded it, by viewers of
the project of a model version whose package lists it, and by any member of any
project when a dataset version lists it; nobody else (``blob_refs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.errors import PermissionDenied
from conveyor.core.settings import reset_settings
from conveyor.server.config import ServerConfig
from conveyor.stores.artifacts.cas import blob_key, open_content_store
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve

pytestmark = pytest.mark.usefixtures("conveyor_home")


@dataclass
class Team:
    url: str
    uri: str  # the server's database
    artifacts: Path
    tokens: dict[str, str]  # user name -> token

    def act_as(self, monkeypatch: pytest.MonkeyPatch, user: str, project: str = "p") -> None:
        """The SDK as ``user``: CONVEYOR_URI points at the server, CONVEYOR_TOKEN is theirs."""
        monkeypatch.setenv("CONVEYOR_PROJECT", project)
        monkeypatch.setenv("CONVEYOR_URI", self.url)
        monkeypatch.setenv("CONVEYOR_TOKEN", self.tokens[user])
        reset_settings()
        cv.configure()

    def blob(self, user: str, digest: str, method: str = "GET") -> int:
        response = httpx.request(method, f"{self.url}/api/v1/blobs/{blob_key(digest)}",
                                 headers={"Authorization": f"Bearer {self.tokens[user]}"})
        return response.status_code


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    uri = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlMetadataStore(uri)
    gov = store.governance
    tokens = {name: gov.create_principal(name).token for name in ("eddie", "vera", "quinn", "rita", "sam")}
    gov.grant("eddie", project="p", role="editor")
    gov.grant("vera", project="p", role="viewer")
    gov.grant("quinn", project="q", role="viewer")  # a member, but not of p
    gov.grant("rita", project="r", role="viewer")
    store.close()  # sam has no role anywhere
    artifacts = tmp_path / "server-artifacts"
    with serve(ServerConfig(backend=uri, artifacts=str(artifacts), auth=True)) as url:
        yield Team(url, uri, artifacts, tokens)
    cv.configure()


def test_a_viewer_loads_a_model_and_members_check_out_datasets_and_strangers_get_403(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) % 7})
    y = 3 * x["a"] - x["b"]
    team.act_as(monkeypatch, "eddie")
    cv.set_project("p")
    model = LinearRegression().fit(x, y)
    version = cv.log_model(model, name="m", input_example=x.head(3))  # no run: not a run artifact
    dataset = cv.data.log(x, name="features")
    with cv.start_run() as run:
        cv.log_text("run notes", "notes.txt")

    team.act_as(monkeypatch, "vera")
    loaded = cv.load_model("models:/m/1")  # every file of the package came through the server, verified
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))
    pd.testing.assert_frame_equal(cv.data.get("features@1").to_pandas(), x, check_dtype=False)

    team.act_as(monkeypatch, "quinn")  # a member of q: datasets are server-wide, p's model is not
    pd.testing.assert_frame_equal(cv.data.get("features@1").to_pandas(), x, check_dtype=False)
    with pytest.raises(PermissionDenied):
        cv.load_model("models:/m/1")

    content = open_content_store(str(team.artifacts))
    package = [version.package_digest, *(f.digest for f in content.get_manifest(version.package_digest))]
    files = [dataset.content_hash, *(f.digest for f in content.get_manifest(dataset.content_hash))]
    notes = next(f.digest for f in SqlMetadataStore(team.uri).list_artifacts(run.id))
    for digest in package:
        assert team.blob("vera", digest) == 200
        assert team.blob("quinn", digest) == 403
        assert team.blob("sam", digest) == 403
        assert team.blob("sam", digest, "HEAD") == 403
    for digest in files:
        assert team.blob("quinn", digest) == 200
        assert team.blob("sam", digest) == 403
    # run artifacts as before: viewers of the run's project, nobody else
    assert [team.blob(u, notes) for u in ("vera", "eddie", "quinn", "sam")] == [200, 200, 403, 403]


def test_versions_registered_on_the_database_are_indexed_when_first_read(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"a": np.arange(20.0)})
    team.act_as(monkeypatch, "eddie")
    cv.set_project("p")
    version = cv.log_model(LinearRegression().fit(x, 2 * x["a"]), name="m")
    # an operator registers the same package in project r on the database, not through the server
    store = SqlMetadataStore(team.uri)
    try:
        store.registry.create_version("r", "copy", flavour=version.flavour, format=version.format,
                                      package_digest=version.package_digest, signature=None, info={})
    finally:
        store.close()
    assert team.blob("rita", version.package_digest) == 200  # indexed on the miss, then allowed
    team.act_as(monkeypatch, "rita", "r")
    assert cv.load_model("models:/copy/1").predict(x).tolist() == pytest.approx((2 * x["a"]).tolist())
    assert team.blob("sam", version.package_digest) == 403
