"""Bad input is a 4xx JSON answer naming the field, changes nothing, and is never HTML or a 500."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.server.config import ServerConfig
from conveyor.testing.server import serve


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("hardening")
    config = ServerConfig(backend=f"sqlite:///{tmp / 'db.sqlite'}", artifacts=str(tmp / "artifacts"), max_body=4096)
    with serve(config) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url + "/api/v1") as c:
        yield c


@pytest.fixture(scope="module")
def run_id(client: httpx.Client) -> str:
    return str(client.post("/runs", json={"project": "hard"}).json()["id"])


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()["error"]
    assert set(body) >= {"code", "message", "field"}
    return body


def test_malformed_json_is_400_naming_the_body(client: httpx.Client) -> None:
    response = client.post("/runs", content=b'{"project": "x",', headers={"content-type": "application/json"})
    assert error(response, 400)["field"] == "body"
    assert error(client.post("/runs", content=b""), 400)["field"] == "body"


def test_wrong_types_and_unknown_fields_are_422_naming_the_field(client: httpx.Client, run_id: str) -> None:
    assert error(client.post("/runs", json={"project": 5}), 422)["field"] == "project"
    assert error(client.post("/runs", json={"project": "x", "colour": "red"}), 422)["field"] == "colour"
    assert error(client.post("/runs", json={}), 422)["field"] == "project"
    bad_point = {"points": [[run_id, "m", [1], 0, 0]]}
    assert error(client.post("/metrics/batch", json=bad_point), 422)["field"].startswith("points[0]")
    assert error(client.post("/metrics/batch", json={"points": [[run_id, "m", "lots", 0, 0]]}), 400)["field"] == "points[0][2]"
    huge_step = {"points": [[run_id, "m", 1.0, 2**64, 0]]}
    assert client.post("/metrics/batch", json=huge_step).status_code in (400, 422)
    assert client.get(f"/runs/{run_id}/metrics/history", params={"key": "m"}).json() == []


def test_store_errors_keep_their_code_and_field(client: httpx.Client, run_id: str) -> None:
    assert error(client.get("/runs/not-an-id"), 400)["field"] == "run_id"
    assert error(client.get("/runs/" + "0" * 32), 404)["code"] == "NOT_FOUND"
    body = error(client.post("/runs/search", json={"filter": "metrics.x <"}), 400)
    assert body["code"] == "BAD_FILTER" and body["position"] == 11
    client.post(f"/runs/{run_id}/params", json={"params": {"lr": "1"}})
    assert error(client.post(f"/runs/{run_id}/params", json={"params": {"lr": "2"}}), 409)["field"] == "lr"


def test_bodies_over_the_limit_are_413_and_change_nothing(client: httpx.Client, run_id: str) -> None:
    tags = {"big": "x" * 5000}
    assert error(client.post(f"/runs/{run_id}/tags", json={"tags": tags}), 413)["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"tags": {"big": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    assert error(client.post(f"/runs/{run_id}/tags", content=chunks()), 413)["field"] == "body"
    assert client.get(f"/runs/{run_id}").json()["tags"] == {}


def test_unknown_routes_and_methods_answer_json(client: httpx.Client) -> None:
    assert error(client.get("/nothing-here"), 404)["code"] == "NOT_FOUND"
    assert error(client.patch("/runs"), 405)["code"] == "METHOD_NOT_ALLOWED"


def test_user_text_comes_back_as_json_not_html(client: httpx.Client) -> None:
    script = "<script>alert(1)</script>"
    response = client.get(f"/projects/{script}")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    response = client.post("/runs", json={"project": "hard", "name": script})
    assert response.headers["content-type"] == "application/json"
    assert response.json()["name"] == script  # data, escaped by JSON, never markup


def raw(url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
    """A request exactly as written: no client normalises the Host, Origin or path."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_foreign_host_headers_are_refused_against_dns_rebinding(url: str) -> None:
    port = url.rsplit(":", 1)[1]
    status, body = raw(url, "GET", "/api/v1/projects", {"Host": f"evil.example:{port}"})
    assert status == 421 and b"BAD_HOST" in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert raw(url, "GET", "/api/v1/projects", {"Host": host})[0] == 200


def test_cross_origin_writes_are_refused(url: str) -> None:
    host = url.removeprefix("http://")
    body = b'{"name": "csrf"}'
    json_headers = {"Host": host, "Content-Type": "application/json"}
    status, answer = raw(url, "POST", "/api/v1/projects", {**json_headers, "Origin": "http://evil.example"}, body)
    assert status == 403 and b"CROSS_ORIGIN" in answer
    status, _ = raw(url, "POST", "/api/v1/projects", {**json_headers, "Sec-Fetch-Site": "cross-site"}, body)
    assert status == 403
    names = [p["name"] for p in httpx.get(url + "/api/v1/projects").json()]
    assert "csrf" not in names
    assert raw(url, "POST", "/api/v1/projects", {**json_headers, "Origin": url}, body)[0] == 200


def test_cors_is_off_unless_configured(url: str) -> None:
    response = httpx.options(url + "/api/v1/projects", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in httpx.get(url + "/api/v1/health", headers={"Origin": "http://evil.example"}).headers


def test_configured_cors_origins_are_allowed(tmp_path: Path) -> None:
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'db'}", artifacts=str(tmp_path / "a"),
                          cors_origins=("https://ui.example",))
    with serve(config) as base:
        ok = httpx.get(base + "/api/v1/health", headers={"Origin": "https://ui.example"})
        assert ok.headers["access-control-allow-origin"] == "https://ui.example"
        posted = httpx.post(base + "/api/v1/projects", json={"name": "ui"}, headers={"Origin": "https://ui.example"})
        assert posted.status_code == 200


def test_openapi_document_and_docs_page(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/runs/{run_id}" in doc["paths"] and "/api/v1/metrics/batch" in doc["paths"]
    assert doc["paths"]["/api/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    for path, method in [("/api/v1/projects/{project}/models/{name}/versions", "post"),
                         ("/api/v1/projects/{project}/models/{name}/aliases/{alias}", "put"),
                         ("/api/v1/projects/{project}/models/{name}/versions/{version}/gates", "post"),
                         ("/api/v1/datasets/{name}/versions", "post"),
                         ("/api/v1/projects/{project}/monitors/{name}", "delete"),
                         ("/api/v1/monitors/{monitor_id}/results", "post")]:
        assert method in doc["paths"][path], (path, method)
    assert "owner" in doc["paths"]["/api/v1/projects/{project}/models/{name}/versions/{version}/gates"]["post"]["summary"]
    page = client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    assert "openapi.json" in page.text and "src=" not in page.text  # self-contained: no CDN
    assert "default-src 'none'" in page.headers["content-security-policy"]
