"""Direct-to-S3 uploads negotiated by the server (moto's S3 server, real tokens).

The SDK asks the server for presigned URLs, writes the bytes straight to S3 and
has the server check them; the server's own upload routes are never called for
those bytes. A tampered upload is refused and discarded. Without S3, or with
presigning off, uploads stream through the server as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.settings import reset_settings
from conveyor.server.config import ServerConfig
from conveyor.server.routes import _files, artifacts, blobs
from conveyor.stores.artifacts.cas import blob_key, hash_bytes
from conveyor.stores.metadata.rest import RestMetadataStore
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.s3server import s3_bucket_uri, s3_endpoint  # noqa: F401
from conveyor.testing.server import serve

pytestmark = pytest.mark.usefixtures("conveyor_home")


@dataclass
class Site:
    url: str
    bucket: str
    prefix: str
    s3: Any  # a boto3 client on the same S3 server
    admin: str
    editor: str  # editor of project p
    streamed: list[str]  # bodies the server received itself (its upload routes)

    def objects(self, under: str) -> dict[str, bytes]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}").get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in listed}

    def call(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"},
                             timeout=30, **kwargs)


def counting(streamed: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Record every body the server streams in itself (``PUT /blobs``, ``PUT …/artifacts/file``)."""
    original = _files.receive_file

    async def receive(request: Any, folder: Path, limit: int) -> Any:
        streamed.append(request.url.path)
        return await original(request, folder, limit)

    monkeypatch.setattr(blobs, "receive_file", receive)
    monkeypatch.setattr(artifacts, "receive_file", receive)


def start(tmp_path: Path, artifacts_uri: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[Site]:
    uri = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlMetadataStore(uri)
    admin = store.governance.create_principal("root", admin=True).token
    editor = store.governance.create_principal("eddie").token
    store.governance.grant("eddie", project="p", role="editor")
    store.close()
    streamed: list[str] = []
    counting(streamed, monkeypatch)
    bucket, _, prefix = artifacts_uri.removeprefix("s3://").partition("/")
    client = boto3.session.Session().client("s3", endpoint_url=os.environ.get("CONVEYOR_S3_ENDPOINT_URL"))
    with serve(ServerConfig(backend=uri, artifacts=artifacts_uri, auth=True, **options)) as url:
        monkeypatch.setenv("CONVEYOR_URI", url)
        monkeypatch.setenv("CONVEYOR_TOKEN", editor)
        monkeypatch.setenv("CONVEYOR_PROJECT", "p")
        reset_settings()
        cv.configure()
        yield Site(url, bucket, prefix, client, admin, editor, streamed)
        cv.configure()


@pytest.fixture
def site(tmp_path: Path, s3_bucket_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:  # noqa: F811
    yield from start(tmp_path, s3_bucket_uri, monkeypatch)


def test_the_sdk_writes_blobs_straight_to_s3_and_the_run_lists_them(site: Site, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    assert httpx.get(site.url + "/api/v1/health").json()["direct_uploads"] is True
    folder = tmp_path / "out"
    folder.mkdir()
    big = np.random.default_rng(0).bytes(3 * 1024 * 1024 + 17)  # several chunks
    (folder / "weights.bin").write_bytes(big)
    (folder / "notes.txt").write_text("direct")
    (folder / "same.txt").write_text("direct")  # the same content twice: one blob
    x = pd.DataFrame({"a": np.arange(30.0)})
    with cv.start_run() as run:
        cv.log_artifacts(folder)
        cv.log_text("hello", "hello.txt")
        cv.log_model(LinearRegression().fit(x, 2 * x["a"]), name="m", input_example=x.head(2))

    assert site.streamed == []  # the server's upload routes never saw those bytes
    listed = {f.path: (f.digest, f.size) for f in RestMetadataStore(site.url, token=site.editor).list_artifacts(run.id)}
    assert listed == {
        "weights.bin": (hash_bytes(big), len(big)), "notes.txt": (hash_bytes(b"direct"), 6),
        "same.txt": (hash_bytes(b"direct"), 6), "hello.txt": (hash_bytes(b"hello"), 5),
    }
    stored = site.objects("blobs/")
    for digest, size in listed.values():
        assert len(stored[f"{site.prefix}/{blob_key(digest)}"]) == size
    assert site.objects("uploads/") == {}  # staged objects are gone once kept
    back = site.call(site.editor, "GET", f"/runs/{run.id}/artifacts/file", params={"path": "weights.bin"})
    assert back.status_code == 200 and back.content == big
    assert cv.load_model("models:/m/1").predict(x).tolist() == pytest.approx((2 * x["a"]).tolist())
    assert site.streamed == []


def test_a_tampered_or_truncated_upload_is_refused_and_discarded(site: Site) -> None:
    good = b"the real bytes"
    digest = hash_bytes(good)

    def negotiate() -> dict[str, Any]:
        answer = site.call(site.editor, "POST", "/blob-uploads", json={"blobs": [{"digest": digest, "size": len(good)}]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["direct"] is True and [u["digest"] for u in body["uploads"]] == [digest]
        upload: dict[str, Any] = body["uploads"][0]
        assert "blobs/" not in upload["upload_id"]  # staged elsewhere than the blob's own key
        return upload

    def complete(upload: dict[str, Any]) -> httpx.Response:
        return site.call(site.editor, "POST", "/blob-uploads/complete", json={"uploads": [
            {"digest": digest, "size": len(good), "upload_id": upload["upload_id"]}]})

    for bad in (b"the fake bytes", b"the real", good + b"!"):  # same size, shorter, longer
        upload = negotiate()
        assert httpx.put(upload["url"], content=bad).status_code == 200  # S3 takes anything
        refused = complete(upload)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["field"] == "uploads[0]"
        assert site.call(site.admin, "HEAD", f"/blobs/{blob_key(digest)}").status_code == 404
        assert site.objects("") == {}  # nothing kept, the staged object deleted

    upload = negotiate()
    other = site.call(site.editor, "POST", "/blob-uploads/complete", json={"uploads": [
        {"digest": hash_bytes(b"x"), "size": 1, "upload_id": upload["upload_id"]}]})
    assert other.status_code == 400 and other.json()["error"]["field"] == "uploads[0].upload_id"
    assert httpx.put(upload["url"], content=good).status_code == 200
    assert complete(upload).status_code == 204
    assert complete(upload).status_code == 204  # a retried completion is done already
    assert site.call(site.admin, "GET", f"/blobs/{blob_key(digest)}").content == good
    again = site.call(site.editor, "POST", "/blob-uploads", json={"blobs": [{"digest": digest, "size": len(good)}]})
    assert again.json() == {"direct": True, "uploads": []}  # stored: nothing to upload
    assert site.call(site.editor, "POST", "/blob-uploads", json={"blobs": []}).status_code == 200
    stranger = site.call("cvt_nobody", "POST", "/blob-uploads", json={"blobs": []})
    assert stranger.status_code == 401


@pytest.mark.parametrize("where", ["local", "s3-no-presign"])
def test_without_s3_or_presigning_uploads_stream_through_the_server(
    where: str, tmp_path: Path, s3_bucket_uri: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    if where == "local":
        sites = start(tmp_path, str(tmp_path / "artifacts"), monkeypatch)
    else:
        sites = start(tmp_path, s3_bucket_uri, monkeypatch, presign=False)
    site = next(sites)
    try:
        assert httpx.get(site.url + "/api/v1/health").json()["direct_uploads"] is False
        answer = site.call(site.editor, "POST", "/blob-uploads", json={"blobs": [{"digest": hash_bytes(b"a"), "size": 1}]})
        assert answer.json() == {"direct": False, "uploads": []}
        with cv.start_run() as run:
            cv.log_text("streamed", "s.txt")
        assert site.streamed  # through the server
        files = RestMetadataStore(site.url, token=site.editor).list_artifacts(run.id)
        assert [(f.path, f.digest) for f in files] == [("s.txt", hash_bytes(b"streamed"))]
    finally:
        sites.close()


def test_negotiation_and_completion_do_not_take_a_digest_for_the_bytes(site: Site) -> None:
    """Another project's blob gets an upload URL (no existence leak); a completion needs the upload itself."""
    good = b"project p's weights"
    digest = hash_bytes(good)
    with cv.start_run():  # eddie stores the blob for project p
        cv.log_text(good.decode(), "w.txt")
    assert site.call(site.editor, "POST", "/blob-uploads",
                     json={"blobs": [{"digest": digest, "size": len(good)}]}).json()["uploads"] == []
    quinn = site.call(site.admin, "POST", "/principals", json={"name": "quinn"})  # editor of q, not of p
    assert quinn.status_code in (200, 201), quinn.text
    q = quinn.json()["token"]
    assert site.call(site.admin, "PUT", "/principals/quinn/roles", json={"project": "q", "role": "editor"}).status_code == 200

    answer = site.call(q, "POST", "/blob-uploads", json={"blobs": [{"digest": digest, "size": len(good)}]}).json()
    assert [u["digest"] for u in answer["uploads"]] == [digest]  # the same answer as for a blob nobody stored
    fake = {"digest": digest, "size": len(good), "upload_id": f"uploads/{'0' * 32}/{digest.split(':')[1]}"}
    refused = site.call(q, "POST", "/blob-uploads/complete", json={"uploads": [fake]})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "uploads[0]"
    run = site.call(q, "POST", "/runs", json={"project": "q"}).json()
    record = {"files": [{"path": "stolen.txt", "digest": digest, "size": len(good)}]}
    denied = site.call(q, "POST", f"/runs/{run['id']}/artifacts", json=record)
    assert denied.status_code == 403 and digest in denied.json()["error"]["message"]
    assert site.call(q, "GET", f"/blobs/{blob_key(digest)}").status_code == 403

    upload = answer["uploads"][0]  # quinn really has the bytes: upload them, then naming the blob is fine
    assert httpx.put(upload["url"], content=good).status_code == 200
    done = site.call(q, "POST", "/blob-uploads/complete",
                     json={"uploads": [{"digest": digest, "size": len(good), "upload_id": upload["upload_id"]}]})
    assert done.status_code == 204, done.text
    assert site.call(q, "POST", f"/runs/{run['id']}/artifacts", json=record).status_code == 204
    assert site.call(q, "GET", f"/blobs/{blob_key(digest)}").content == good
