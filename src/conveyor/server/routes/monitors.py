"""``/projects/{project}/monitors`` and ``/monitors/{monitor_id}``: stored monitors, results, incidents.

Reads need ``viewer`` on the monitor's project, recording results and alert
deliveries ``editor``, creating and rebasing ``editor`` and deleting ``owner``. Routes that
name a monitor or incident by id authorise on the project it belongs to.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from conveyor.server.routing import Call, Endpoint, Param, project_role
from conveyor.server.scope import incident_in_path, monitor_in_path, project_in_path
from conveyor.stores.metadata.monitors import NewResult
from conveyor.stores.metadata.wire import DeliveriesIn, MonitorIn, RebaseIn, ResultIn


def create(call: Call) -> Any:
    body: MonitorIn = call.body
    return call.state.store.monitors.create_monitor(
        project=call.path["project"], name=body.name, model=body.model, config=body.config,
        reference=body.reference, outliers=body.outliers, idempotency_key=body.idempotency_key,
    )


def list_(call: Call) -> Any:
    with_reference = call.query.get("with_reference", "true").lower() != "false"
    return call.state.store.monitors.list_monitors(call.path["project"], with_reference=with_reference)


def get(call: Call) -> Any:
    return call.state.store.monitors.get_monitor(call.path["project"], call.path["name"])


def delete(call: Call) -> Response:
    call.state.store.monitors.delete_monitor(call.path["project"], call.path["name"])
    return Response(status_code=204)


def rebase(call: Call) -> Any:
    body: RebaseIn = call.body
    return call.state.store.monitors.rebase_monitor(
        call.path["project"], call.path["name"], config=body.config, reference=body.reference, outliers=body.outliers
    )


def record_result(call: Call) -> Any:
    body: ResultIn = call.body
    fields = {f: getattr(body, f) for f in NewResult.__struct_fields__}
    return call.state.store.monitors.record_result(
        call.path["monitor_id"], NewResult(**fields), idempotency_key=body.idempotency_key
    )


def list_results(call: Call) -> Any:
    with_reports = call.query.get("with_reports", "false").lower() == "true"
    return call.state.store.monitors.list_results(
        call.path["monitor_id"], call.query_int("limit", 100) or 0, with_reports=with_reports
    )


def open_incident(call: Call) -> Any:
    return call.state.store.monitors.open_incident(call.path["monitor_id"])


def list_incidents(call: Call) -> Any:
    return call.state.store.monitors.list_incidents(call.path["monitor_id"], call.query_int("limit", 100) or 0)


def add_deliveries(call: Call) -> Response:
    body: DeliveriesIn = call.body
    call.state.store.monitors.add_deliveries(
        call.path["incident_id"], body.deliveries, idempotency_key=body.idempotency_key
    )
    return Response(status_code=204)


_NAMED = "/projects/{project}/monitors/{name}"
_BY_ID = "/monitors/{monitor_id}"

ENDPOINTS = [
    Endpoint("GET", "/projects/{project}/monitors", list_, project_role("viewer", project_in_path),
             "List a project's monitors in name order (with_reference=false: without the profiles)",
             query=[Param("with_reference", "boolean")]),
    Endpoint("POST", "/projects/{project}/monitors", create, project_role("editor", project_in_path),
             "Store a monitor (idempotent with idempotency_key)", body=MonitorIn, status=201),
    Endpoint("GET", _NAMED, get, project_role("viewer", project_in_path), "Get a monitor"),
    Endpoint("DELETE", _NAMED, delete, project_role("owner", project_in_path),
             "Delete a monitor with its results and incidents"),
    Endpoint("PUT", _NAMED + "/reference", rebase, project_role("editor", project_in_path),
             "Give a monitor a new reference profile, outlier detector and config (results stay)", body=RebaseIn),
    Endpoint("POST", _BY_ID + "/results", record_result, project_role("editor", monitor_in_path),
             "Record an evaluation; opens or resolves the incident (idempotent with idempotency_key)",
             body=ResultIn, status=201),
    Endpoint("GET", _BY_ID + "/results", list_results, project_role("viewer", monitor_in_path),
             "Results, newest first", query=[Param("limit", "integer"), Param("with_reports", "boolean")]),
    Endpoint("GET", _BY_ID + "/incidents/open", open_incident, project_role("viewer", monitor_in_path),
             "The open incident, or null"),
    Endpoint("GET", _BY_ID + "/incidents", list_incidents, project_role("viewer", monitor_in_path),
             "Incidents, newest first", query=[Param("limit", "integer")]),
    Endpoint("POST", "/monitor-incidents/{incident_id}/deliveries", add_deliveries,
             project_role("editor", incident_in_path),
             "Record how an incident's alerts went (idempotent with idempotency_key)", body=DeliveriesIn),
]
