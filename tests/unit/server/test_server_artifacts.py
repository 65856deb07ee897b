"""Artifacts through the server: streamed both ways, verified, and no path ever leaves the root."""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import conveyor as cv
from conveyor.core.errors import ArtifactCorrupted
from conveyor.server.config import ServerConfig
from conveyor.stores.artifacts.cas import blob_key, hash_bytes
from conveyor.testing.server import serve

HOSTILE = [
    "../outside.txt",
    "a/../../outside.txt",
    "/etc/passwd",
    "..\\outside.txt",
    "a\\b.txt",
    "%2e%2e/outside.txt",
    "%2E%2E%2Foutside.txt",
    "%252e%252e/outside.txt",
    "..%2foutside.txt",
    "a%00b.txt",
    "C:/Windows/win.ini",
]


@dataclass
class Server:
    url: str
    root: Path  # everything the test owns; only artifacts/ and the db may change
    artifacts: Path
    run_id: str


def snapshot(root: Path, skip: Path) -> dict[str, bytes]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and skip not in path.parents and not path.name.startswith("db.sqlite"):
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "outside.txt").write_text("secret")
    artifacts = tmp_path / "artifacts"
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=str(artifacts))
    with serve(config) as url:
        run_id = httpx.post(url + "/api/v1/runs", json={"project": "art"}).json()["id"]
        yield Server(url, tmp_path, artifacts, run_id)


def raw(url: str, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``target`` byte for byte: no client normalises dots or re-encodes it."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, target, body=body, headers={"Content-Length": str(len(body))})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def quoted(path: str) -> str:
    """Percent-encode what HTTP cannot carry raw (backslash, NUL are sent encoded once)."""
    return path.replace("\\", "%5C").replace("\x00", "%00")


def test_every_artifact_endpoint_refuses_every_hostile_path(server: Server) -> None:
    before = snapshot(server.root, server.artifacts)
    run = f"/api/v1/runs/{server.run_id}/artifacts"
    digest = hash_bytes(b"data")
    checked = 0
    for path in HOSTILE:
        q = quoted(path)
        targets = [
            ("GET", f"{run}?prefix={q}", b""),
            ("PUT", f"{run}/file?path={q}", b"data"),
            ("GET", f"{run}/file?path={q}", b""),
            ("HEAD", f"/api/v1/blobs/{q}", b""),
            ("GET", f"/api/v1/blobs/{q}", b""),
            ("PUT", f"/api/v1/blobs/{q}", b"data"),
            ("GET", f"/api/v1/blobs/blobs/{q}", b""),
        ]
        for method, target, body in targets:
            status, answer = raw(server.url, method, target, body)
            assert status == 400, (method, target, status, answer)
            if method != "HEAD":
                assert b'"field"' in answer
            checked += 1
        record = httpx.post(server.url + run, json={"files": [{"path": path, "digest": digest, "size": 4}]})
        assert record.status_code == 400, (path, record.text)
        checked += 1
    assert checked == len(HOSTILE) * 8
    assert httpx.get(server.url + run).json() == []
    assert snapshot(server.root, server.artifacts) == before  # nothing written or changed outside


def test_symlinks_out_of_the_root_are_refused(server: Server) -> None:
    secret = server.root / "outside.txt"
    key = blob_key(hash_bytes(b"secret"))
    link = server.artifacts / key
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, link)
    outside_dir = server.root / "elsewhere"
    outside_dir.mkdir()
    other = blob_key(hash_bytes(b"other"))
    os.symlink(outside_dir, server.artifacts / other.rsplit("/", 1)[0])
    for method, target, body in [
        ("GET", f"/api/v1/blobs/{key}", b""),
        ("HEAD", f"/api/v1/blobs/{key}", b""),
        ("PUT", f"/api/v1/blobs/{key}", b"secret"),
        ("PUT", f"/api/v1/blobs/{other}", b"other"),
        ("GET", f"/api/v1/blobs/{other}", b""),
    ]:
        status, answer = raw(server.url, method, target, body)
        assert status == 400, (method, target, answer)
        assert b"secret" not in answer
    run = f"/api/v1/runs/{server.run_id}/artifacts"
    httpx.post(server.url + run, json={"files": [{"path": "s.txt", "digest": hash_bytes(b"secret"), "size": 6}]})
    assert httpx.get(server.url + run + "/file", params={"path": "s.txt"}).status_code == 400
    assert secret.read_text() == "secret" and list(outside_dir.iterdir()) == []


def test_a_big_file_streams_up_and_down_and_is_verified(server: Server, tmp_path: Path) -> None:
    block = os.urandom(1 << 20)
    total = 24
    expected = hashlib.sha256(block * total).hexdigest()

    def body() -> Iterator[bytes]:  # chunked upload: the client never holds the file either
        for _ in range(total):
            yield block

    url = f"{server.url}/api/v1/runs/{server.run_id}/artifacts/file"
    up = httpx.put(url, params={"path": "model/big.bin"}, content=body(), timeout=120)
    assert up.status_code == 200, up.text
    assert up.json()["size"] == total << 20
    got = hashlib.sha256()
    with httpx.stream("GET", url, params={"path": "model/big.bin"}, timeout=120) as down:
        assert down.status_code == 200
        for chunk in down.iter_bytes():
            got.update(chunk)
    assert got.hexdigest() == expected
    # a stored blob that was tampered with is never served
    blob = server.artifacts / blob_key(up.json()["digest"])
    blob.write_bytes(b"tampered")
    broken = httpx.get(url, params={"path": "model/big.bin"})
    assert broken.status_code == 500 and broken.json()["error"]["code"] == "ARTIFACT_CORRUPTED"


def test_blob_uploads_must_hash_to_their_key(server: Server) -> None:
    key = blob_key(hash_bytes(b"right"))
    status, answer = raw(server.url, "PUT", f"/api/v1/blobs/{key}", b"wrong")
    assert status == 400 and b"hashes to" in answer
    assert not (server.artifacts / key).exists()


def test_the_sdk_logs_and_downloads_artifacts_through_the_server(
    server: Server, conveyor_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from conveyor.core.settings import reset_settings

    monkeypatch.setenv("CONVEYOR_URI", server.url)
    reset_settings()
    cv.configure()
    folder = tmp_path / "outputs"
    (folder / "plots").mkdir(parents=True)
    (folder / "plots" / "a.txt").write_text("alpha")
    (folder / "model.bin").write_bytes(b"\x00\x01" * 1000)
    with cv.start_run(project="remote") as run:
        cv.log_metric("loss", 0.5)
        cv.log_artifacts(folder)
        cv.log_text("notes", "notes.md")
    assert sorted(f.path for f in cv.client().list_artifacts(run.id)) == ["model.bin", "notes.md", "plots/a.txt"]
    dest = cv.download_artifacts(run.id, None, tmp_path / "back")
    assert (dest / "plots" / "a.txt").read_text() == "alpha"
    assert (dest / "model.bin").read_bytes() == b"\x00\x01" * 1000
    assert not (conveyor_home / "artifacts").exists()  # the bytes went to the server, not a local folder
    stored = server.artifacts / blob_key(hash_bytes(b"alpha"))
    stored.write_bytes(b"omega")
    with pytest.raises(ArtifactCorrupted):
        cv.download_artifacts(run.id, "plots/a.txt", tmp_path / "again")


@pytest.mark.s3
def test_the_server_streams_artifacts_to_and_from_s3(s3_bucket_uri: str, tmp_path: Path) -> None:
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=s3_bucket_uri)
    data = os.urandom(3 << 20)
    with serve(config) as url:
        run_id = httpx.post(url + "/api/v1/runs", json={"project": "s3"}).json()["id"]
        files = f"{url}/api/v1/runs/{run_id}/artifacts/file"
        up = httpx.put(files, params={"path": "weights.bin"}, content=data, timeout=60)
        assert up.status_code == 200, up.text
        assert up.json()["digest"] == hash_bytes(data)
        assert httpx.get(files, params={"path": "weights.bin"}, timeout=60).content == data
        blob = f"{url}/api/v1/blobs/{blob_key(hash_bytes(data))}"
        assert httpx.head(blob).headers["content-length"] == str(len(data))
