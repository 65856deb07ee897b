"""``/projects``: create on first use, get, list (only the readable ones)."""

from __future__ import annotations

from typing import Any

from conveyor.server.auth import readable_projects
from conveyor.server.routing import AUTHENTICATED, Call, Endpoint, project_role
from conveyor.server.scope import path_project
from conveyor.stores.metadata.wire import ProjectIn


def create(call: Call) -> Any:
    return call.state.store.get_or_create_project(call.body.name)


def get(call: Call) -> Any:
    return call.state.store.get_project(call.path["name"])


def list_(call: Call) -> Any:
    visible = readable_projects(call.principal)
    found = call.state.store.list_projects()
    return [p for p in found if visible is None or p.name in visible]


def _name(call: Call) -> list[str]:
    return [call.body.name]


ENDPOINTS = [
    Endpoint("POST", "/projects", create, project_role("editor", _name), "Get or create a project", body=ProjectIn),
    Endpoint("GET", "/projects", list_, AUTHENTICATED, "List the projects the caller can read"),
    Endpoint("GET", "/projects/{name}", get, project_role("viewer", path_project), "Get a project"),
]
