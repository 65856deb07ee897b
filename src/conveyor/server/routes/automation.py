"""``/projects/{project}/automations`` and ``/automations/{automation_id}``: automations and their firings.

Reads need ``viewer``; firing by hand and switching an automation on or off need
``editor``; creating, replacing and deleting need ``owner``, because an
automation runs its pipeline's code in the agent, on the server's side. A spec
is parsed and checked here as the embedded service checks it, and a gate must be
inline (the client reads a gate file before it sends the spec): the server never
opens a path a caller names. The agent's own work, moving firings and holding
the lease, has no route: it runs next to the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import Response

from conveyor.core.errors import InvalidArgument, InvalidState, NotFound
from conveyor.server.routing import Call, Endpoint, Param, project_role
from conveyor.server.scope import project_in_path
from conveyor.stores.metadata.automation import STATES
from conveyor.stores.metadata.wire import AutomationIn, EnabledIn, FiringIn

MAX_TEXT = 2_000


def _checked_spec(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    from conveyor.automation.spec import AutomationSpec

    if spec.get("name") != name:
        raise InvalidArgument(f"spec.name must be the automation's name {name!r}, got {spec.get('name')!r}",
                              field="spec.name")
    promote = spec.get("promote")
    gate = promote.get("gate") if isinstance(promote, Mapping) else None
    if gate is not None and not isinstance(gate, Mapping):
        raise InvalidArgument("spec.promote.gate must be the gate's rules inline; the client reads a gate file "
                              "before sending it", field="spec.promote.gate")
    return AutomationSpec.from_dict(spec, where="spec").to_dict()


def automation_in_path(call: Call) -> Iterable[str]:
    """The project of ``{automation_id}``; none for an unknown id (the handler answers 404)."""
    try:
        return [call.state.store.automation.get_automation_by_id(call.path["automation_id"]).project]
    except (NotFound, InvalidArgument):
        return []


def firing_in_path(call: Call) -> Iterable[str]:
    auto = call.state.store.automation
    try:
        return [auto.get_automation_by_id(auto.get_firing(call.path["firing_id"]).automation_id).project]
    except (NotFound, InvalidArgument):
        return []


def put(call: Call) -> Any:
    body: AutomationIn = call.body
    name = call.path["name"]
    spec = _checked_spec(body.spec, name)
    call.state.store.get_or_create_project(call.path["project"])
    return call.state.store.automation.put_automation(
        project=call.path["project"], name=name, spec=spec, cursors=body.cursors, enabled=body.enabled)


def list_(call: Call) -> Any:
    return call.state.store.automation.list_automations(call.path["project"])


def get(call: Call) -> Any:
    return call.state.store.automation.get_automation(call.path["project"], call.path["name"])


def get_by_id(call: Call) -> Any:
    return call.state.store.automation.get_automation_by_id(call.path["automation_id"])


def set_enabled(call: Call) -> Any:
    body: EnabledIn = call.body
    return call.state.store.automation.set_enabled(call.path["project"], call.path["name"], body.enabled)


def delete(call: Call) -> Response:
    call.state.store.automation.delete_automation(call.path["project"], call.path["name"])
    return Response(status_code=204)


def fire(call: Call) -> Any:
    """A manual firing; the same ``key`` again (a retry) answers with the firing it recorded."""
    body: FiringIn = call.body
    if body.trigger != "manual":
        raise InvalidArgument(f"only a manual firing can be recorded over HTTP, not {body.trigger!r}; the agent "
                              "records the others", field="trigger")
    if not body.key.startswith("manual:") or len(body.key) > 200:
        raise InvalidArgument("key must be 'manual:' and an id, at most 200 characters", field="key")
    if len(body.reason) > MAX_TEXT:
        raise InvalidArgument(f"reason is longer than {MAX_TEXT} characters", field="reason")
    auto, automation_id = call.state.store.automation, call.path["automation_id"]
    fired = auto.add_firing(automation_id, trigger="manual", key=body.key, reason=body.reason,
                            evidence=body.evidence)
    if fired is not None:
        return fired
    for earlier in auto.list_firings(automation_id, limit=100):
        if earlier.key == body.key:
            return earlier
    raise InvalidState(f"a firing with key {body.key!r} exists but is no longer among the newest", field="key")


def list_firings(call: Call) -> Any:
    raw = call.query.get("states")
    states = tuple(s for s in raw.split(",") if s) if raw else None
    unknown = [s for s in states or () if s not in STATES]
    if unknown:
        raise InvalidArgument(f"unknown state(s) {', '.join(unknown)} (known: {', '.join(STATES)})", field="states")
    return call.state.store.automation.list_firings(
        call.path["automation_id"], limit=call.query_int("limit", 100) or 0, states=states)


def get_firing(call: Call) -> Any:
    return call.state.store.automation.get_firing(call.path["firing_id"])


_NAMED = "/projects/{project}/automations/{name}"
_BY_ID = "/automations/{automation_id}"

ENDPOINTS = [
    Endpoint("GET", "/projects/{project}/automations", list_, project_role("viewer", project_in_path),
             "List a project's automations in name order"),
    Endpoint("GET", _NAMED, get, project_role("viewer", project_in_path), "Get an automation"),
    Endpoint("PUT", _NAMED, put, project_role("owner", project_in_path),
             "Create an automation or replace its spec (cursors kept); the spec is checked, gates inline",
             body=AutomationIn),
    Endpoint("PUT", _NAMED + "/enabled", set_enabled, project_role("editor", project_in_path),
             "Switch an automation on or off", body=EnabledIn),
    Endpoint("DELETE", _NAMED, delete, project_role("owner", project_in_path),
             "Delete an automation and its firings (refused while one is active)"),
    Endpoint("GET", _BY_ID, get_by_id, project_role("viewer", automation_in_path), "Get an automation by id"),
    Endpoint("POST", _BY_ID + "/firings", fire, project_role("editor", automation_in_path),
             "Fire an automation by hand (idempotent by key); the agent runs it", body=FiringIn, status=201),
    Endpoint("GET", _BY_ID + "/firings", list_firings, project_role("viewer", automation_in_path),
             "Firings, newest first", query=[Param("limit", "integer"), Param("states")]),
    Endpoint("GET", "/automation-firings/{firing_id}", get_firing, project_role("viewer", firing_in_path),
             "Get a firing with its steps"),
]
