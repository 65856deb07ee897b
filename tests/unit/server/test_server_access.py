"""Deny by default: every route answers 401 without a token and 403 to a role without the right.

The walk covers every route the app has. A route without an Endpoint (and so
without an access declaration), a new public route, or a new route open to any
authenticated caller makes these tests fail until it is reviewed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.server.app import create_app
from conveyor.server.config import ServerConfig
from conveyor.server.routing import Endpoint
from conveyor.stores.artifacts.cas import blob_key, hash_bytes
from conveyor.stores.metadata.datasets import NewVersion
from conveyor.stores.metadata.monitors import NewResult
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve

PUBLIC_ROUTES = {("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs")}
# Open to any valid token; the handler narrows what the caller sees or may touch.
AUTHENTICATED_ROUTES = {
    ("GET", "/projects"), ("POST", "/runs/search"), ("POST", "/runs/reap"), ("GET", "/whoami"),
    ("POST", "/tokens"), ("GET", "/tokens"), ("DELETE", "/tokens/{token_id}"),
}
CONTENT = b"hello"
DIGEST = hash_bytes(CONTENT)
RESULT = {"at": 1, "window_start": 0, "window_end": 1, "rows": 5, "labelled_rows": 0, "share_drifted": 0.5,
          "drifted_columns": ["a"], "metric_value": None, "baseline": None, "outlier_rate": None,
          "status": "drift", "reasons": ["a drifted"], "report": None}


AUTOMATION = {"name": "auto", "pipeline": "train.py:release", "on": ["manual"]}

@dataclass
class World:
    url: str
    admin: str
    viewer: str  # viewer on project p
    editor: str  # editor on project p
    stranger: str  # no role anywhere
    run_id: str
    other_run_id: str  # in project q, where only the admin has access
    token_id: str
    endpoints: list[Endpoint]
    monitor_id: str  # monitor "mon" of project p, with an open incident
    incident_id: str
    dataset_version_id: str  # version 1 of dataset "ds"
    automation_id: str  # automation "auto" of project p, fired once by hand
    firing_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("access")
    uri = f"sqlite:///{tmp / 'server.db'}"
    store = SqlMetadataStore(uri)
    gov = store.governance
    admin = gov.create_principal("root", admin=True).token
    viewer = gov.create_principal("vera").token
    editor = gov.create_principal("eddie").token
    stranger = gov.create_principal("sam", kind="service").token
    gov.grant("vera", project="p", role="viewer")
    gov.grant("eddie", project="p", role="editor")
    run = store.create_run(project="p", name="visible")
    other = store.create_run(project="q", name="secret")
    token_id = gov.list_tokens("root")[0].id
    for _ in range(3):  # model m of p: versions 1-3, champion moved 1 -> 2, alias "old" on 1
        store.registry.create_version("p", "m", flavour="sklearn", format="pickle", package_digest=DIGEST,
                                      signature=None, info={})
    for version in (1, 2):
        store.registry.set_alias("p", "m", "champion", version)
    store.registry.set_alias("p", "m", "old", 1)
    monitor = store.monitors.create_monitor(project="p", name="mon", model="m", config={}, reference={},
                                            outliers=None)
    incident = store.monitors.record_result(monitor.id, NewResult(**RESULT)).incident
    assert incident is not None
    dataset = store.datasets.create_version(NewVersion(name="ds", content_hash=DIGEST, kind="files", num_files=1,
                                                       size=len(CONTENT)))
    automation = store.automation.put_automation(project="p", name="auto", spec=AUTOMATION)
    firing = store.automation.add_firing(automation.id, trigger="manual", key="manual:1", reason="", evidence={})
    assert firing is not None
    store.close()
    config = ServerConfig(backend=uri, artifacts=str(tmp / "artifacts"), auth=True)
    with serve(config) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as client:
            up = client.put(f"/api/v1/runs/{run.id}/artifacts/file", params={"path": "a.txt"}, content=CONTENT)
            assert up.status_code == 200, up.text
        yield World(url, admin, viewer, editor, stranger, run.id, other.id, token_id, create_app(config).state.endpoints,
                    monitor.id, incident.id, dataset.id, automation.id, firing.id)


def example(world: World, e: Endpoint) -> dict[str, Any]:
    """A request that would pass validation, so only the access check can refuse it."""
    run = world.run_id
    bodies: dict[str, Any] = {
        "ProjectIn": {"name": "p"},
        "RunIn": {"project": "p"},
        "StatusIn": {"status": "RUNNING"},
        "FinishIn": {"status": "RUNNING", "points": [[run, "m", 2.0, 1, 2]]},
        "HeartbeatIn": {"run_ids": [run]},
        "ReapIn": {"timeout_ms": 3_600_000},
        "ParamsIn": {"params": {"a": "1"}},
        "TagsIn": {"tags": {"a": "1"}},
        "MetricBatchIn": {"points": [[run, "m", 1.0, 0, 1]]},
        "ArtifactsIn": {"files": [{"path": "b.txt", "digest": DIGEST, "size": len(CONTENT)}]},
        "SearchIn": {},
        "RunsByTagIn": {"project": "p", "key": "a", "values": ["1"]},
        "LineageIn": {"src": ["run", run], "dst": ["run", run], "relation": "self"},
        "PrincipalIn": {"name": "newcomer"},
        "TokenIn": {},
        "GrantIn": {"project": "p", "role": "viewer"},
        "ModelIn": {"name": "m2", "exist_ok": True},
        "ModelPatch": {"description": "d"},
        "VersionIn": {"flavour": "sklearn", "format": "pickle", "package_digest": DIGEST},
        "VersionPatch": {"description": "d"},
        "VersionStatusIn": {"status": "ready"},
        "AliasIn": {"version": 3},
        "RollbackIn": {},
        "GateIn": {"alias": "shadow", "champion_version": None, "passed": True, "forced": False, "reason": "",
                   "report": {}, "move_alias": True},
        "DatasetVersionIn": {"content_hash": DIGEST, "kind": "files", "num_files": 1, "size": len(CONTENT)},
        "CheckIn": {"version": 1, "target": "ds@1", "suite": "s", "ok": True, "num_failures": 0, "report": {}},
        "MonitorIn": {"name": "mon2", "model": "m", "config": {}, "reference": {}},
        "RebaseIn": {"config": {"window": "1d"}, "reference": {}},
        "AutomationIn": {"spec": AUTOMATION},
        "EnabledIn": {"enabled": True},
        "FiringIn": {"trigger": "manual", "key": "manual:2", "reason": "checking access"},
        "ResultIn": RESULT,
        "DeliveriesIn": {"deliveries": [{"channel": "log", "ok": True}]},
        "UploadsIn": {"blobs": [{"digest": DIGEST, "size": len(CONTENT)}]},
        "UploadsDoneIn": {"uploads": []},
    }
    name = "vera"
    for prefix, value in (("/projects/{project}/models", "m"), ("/projects/{project}/monitors", "mon"),
                          ("/projects/{project}/automations", "auto"),
                          ("/projects", "p"), ("/datasets", "ds")):
        if e.path.startswith(prefix):
            name = value
            break
    values = {"run_id": run, "name": name, "project": "p", "version": "1",
              "alias": "old" if e.method == "DELETE" else "champion", "monitor_id": world.monitor_id,
              "incident_id": world.incident_id, "version_id": world.dataset_version_id,
              "token_id": world.token_id, "key": blob_key(DIGEST), "automation_id": world.automation_id,
              "firing_id": world.firing_id}
    path = e.full_path.replace("{key:path}", "{key}").format(**values)
    query = {"path": "a.txt", "key": "a", "kind": "run", "id": run, "project": "p"}
    request: dict[str, Any] = {"method": e.method, "url": path,
                               "params": {q.name: query[q.name] for q in e.query if q.required or q.name == "project"}}
    if e.body is not None:
        request["json"] = bodies[e.body.__name__]
    elif e.stream and e.method == "PUT":
        request["content"] = CONTENT
    return request


_CLIENTS: dict[tuple[str, str | None], httpx.Client] = {}


def call(world: World, request: dict[str, Any], token: str | None) -> httpx.Response:
    client = _CLIENTS.get((world.url, token))
    if client is None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = _CLIENTS[(world.url, token)] = httpx.Client(base_url=world.url, headers=headers)
    return client.request(**request)


def test_every_route_is_declared_with_an_access_rule(world: World) -> None:
    app = create_app(ServerConfig(backend="sqlite:///unused.db", artifacts="unused", auth=True))
    for route in app.routes:
        spec = getattr(route, "endpoint_spec", None)
        assert isinstance(spec, Endpoint), f"route {route} has no Endpoint (and no permission declaration)"
        assert spec.access.kind in {"public", "authenticated", "admin", "project", "uploader"}


def test_only_the_allow_list_is_public(world: World) -> None:
    public = {(e.method, e.path) for e in world.endpoints if e.access.kind == "public"}
    assert public == PUBLIC_ROUTES
    for method, path in sorted(PUBLIC_ROUTES):
        assert httpx.request(method, world.url + "/api/v1" + path).status_code == 200


def test_the_routes_open_to_any_token_are_the_reviewed_ones(world: World) -> None:
    assert {(e.method, e.path) for e in world.endpoints if e.access.kind == "authenticated"} == AUTHENTICATED_ROUTES


def test_every_other_route_answers_401_without_a_valid_token(world: World) -> None:
    checked = 0
    for e in world.endpoints:
        if e.access.kind == "public":
            continue
        request = example(world, e)
        for token in (None, "cvt_not-a-real-token", "garbage"):
            response = call(world, request, token)
            assert response.status_code == 401, (e.method, e.path, token, response.text)
            if e.method != "HEAD":
                assert response.json()["error"]["code"] == "UNAUTHENTICATED"
        checked += 1
    assert checked == len(world.endpoints) - len(PUBLIC_ROUTES)


def test_every_guarded_route_answers_403_to_a_role_without_the_right(world: World) -> None:
    checked = 0
    for e in world.endpoints:
        if e.access.kind in ("public", "authenticated"):
            continue
        # A viewer role is refused with no role at all; anything stronger is refused to a viewer.
        token = world.stranger if e.access.kind == "project" and e.access.role == "viewer" else world.viewer
        response = call(world, example(world, e), token)
        assert response.status_code == 403, (e.method, e.path, response.status_code, response.text)
        if e.method != "HEAD":
            assert response.json()["error"]["code"] == "PERMISSION_DENIED"
        checked += 1
    assert checked >= 20


def test_the_right_role_gets_through(world: World) -> None:
    for e in world.endpoints:
        if e.access.kind != "project" or e.access.role not in ("viewer", "editor"):
            continue
        if e.path.startswith("/lineage") or e.path.startswith("/blobs") or e.path == "/audit":
            continue
        if (e.method, e.path) == ("POST", "/runs/{run_id}/status"):
            continue
        token = world.viewer if e.access.role == "viewer" else world.editor
        response = call(world, example(world, e), token)
        assert response.status_code < 400, (e.method, e.path, response.text)


def test_search_and_project_lists_never_show_unreadable_projects(world: World) -> None:
    def search(token: str, body: dict[str, Any]) -> list[str]:
        response = call(world, {"method": "POST", "url": "/api/v1/runs/search", "json": body}, token)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["runs"]]

    in_p = search(world.admin, {"projects": ["p"]})
    assert world.run_id in in_p and world.other_run_id not in in_p
    assert search(world.viewer, {}) == in_p
    assert search(world.viewer, {"projects": []}) == in_p  # [] means every readable project
    assert search(world.viewer, {"projects": ["q"]}) == []  # invisible, not 403
    assert search(world.viewer, {"projects": ["p", "q"]}) == in_p
    assert search(world.stranger, {}) == []
    assert world.other_run_id in search(world.admin, {})

    def projects(token: str) -> list[str]:
        return [p["name"] for p in call(world, {"method": "GET", "url": "/api/v1/projects"}, token).json()]

    assert projects(world.viewer) == ["p"]
    assert projects(world.stranger) == []
    assert projects(world.admin) == ["p", "q"]
    hidden = call(world, {"method": "GET", "url": f"/api/v1/runs/{world.other_run_id}"}, world.viewer)
    assert hidden.status_code == 403


def test_a_non_admin_cannot_reap_other_peoples_runs_early(world: World) -> None:
    request = {"method": "POST", "url": "/api/v1/runs/reap", "json": {"timeout_ms": 0, "now": 10**15}}
    response = call(world, request, world.stranger)
    assert response.status_code == 400 and response.json()["error"]["field"] == "timeout_ms"
    run = call(world, {"method": "GET", "url": f"/api/v1/runs/{world.other_run_id}"}, world.admin).json()
    assert run["status"] == "RUNNING"
