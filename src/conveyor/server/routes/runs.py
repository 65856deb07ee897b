"""``/runs``: create, get, status, heartbeat, reap, delete, params and tags."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from conveyor.core.errors import InvalidArgument
from conveyor.server.routing import AUTHENTICATED, Call, Endpoint, Param, project_role
from conveyor.server.scope import (
    created_run_and_lineage,
    ended_run_points_and_lineage,
    run_in_path,
    runs_of_heartbeat,
)
from conveyor.stores.metadata.wire import (
    FinishIn,
    HeartbeatIn,
    ParamsIn,
    ReapIn,
    RunIn,
    StatusIn,
    TagsIn,
    dec_float,
    run_out,
)

_MIN_REAP_MS = 30_000


def _no_content() -> Response:
    return Response(status_code=204)


def create(call: Call) -> Any:
    body: RunIn = call.body
    # With auth on, the run is recorded under the caller, whatever the client claims.
    user = call.principal.name if call.state.config.auth_required else body.user
    metrics = None
    if body.metrics:
        metrics = {k: dec_float(val, f"metrics.{k}") for k, val in body.metrics.items()}
    run = call.state.store.create_run(
        project=body.project, name=body.name, parent_id=body.parent_id, tags=body.tags, env=body.env,
        user=user, start_time=body.start_time, idempotency_key=body.idempotency_key,
        params=body.params, metrics=metrics, status=body.status, end_time=body.end_time,
        inputs=body.inputs, outputs=body.outputs,
    )
    return run_out(run)


def get(call: Call) -> Any:
    with_artifacts = call.query.get("with_artifacts", "true").lower() != "false"
    return run_out(call.state.store.get_run(call.path["run_id"], with_artifacts=with_artifacts))


def set_status(call: Call) -> Any:
    body: StatusIn = call.body
    return run_out(call.state.store.set_run_status(call.path["run_id"], body.status, body.end_time))


def finish(call: Call) -> Response:
    from conveyor.server.routes.metrics import decode_points

    body: FinishIn = call.body
    call.state.store.finish_run(call.path["run_id"], body.status, body.end_time, decode_points(body.points),
                                tags=body.tags, inputs=body.inputs, outputs=body.outputs,
                                idempotency_key=body.idempotency_key)
    return _no_content()


def heartbeat(call: Call) -> Response:
    call.state.store.heartbeat(call.body.run_ids, call.body.at)
    return _no_content()


def reap(call: Call) -> Any:
    body: ReapIn = call.body
    now = body.now
    if not call.principal.is_admin:  # anyone may reap, but only truly silent runs
        if body.timeout_ms < _MIN_REAP_MS:
            raise InvalidArgument(f"timeout_ms must be at least {_MIN_REAP_MS} for non-admins", field="timeout_ms")
        now = None
    if body.timeout_ms < 0:
        raise InvalidArgument("timeout_ms must not be negative", field="timeout_ms")
    return {"run_ids": call.state.store.reap_stale_runs(body.timeout_ms, now)}


def delete(call: Call) -> Response:
    call.state.store.delete_run(call.path["run_id"])
    return _no_content()


def log_params(call: Call) -> Response:
    call.state.store.log_params(call.path["run_id"], call.body.params)
    return _no_content()


def set_tags(call: Call) -> Response:
    call.state.store.set_tags(call.path["run_id"], call.body.tags)
    return _no_content()


def delete_tag(call: Call) -> Response:
    key = call.query.get("key")
    if key is None:
        raise InvalidArgument("query parameter key is required", field="key")
    call.state.store.delete_tag(call.path["run_id"], key)
    return _no_content()


VIEW = project_role("viewer", run_in_path)
EDIT = project_role("editor", run_in_path)
OWN = project_role("owner", run_in_path)

ENDPOINTS = [
    Endpoint("POST", "/runs", create, project_role("editor", created_run_and_lineage), "Create a run", body=RunIn),
    Endpoint("GET", "/runs/{run_id}", get, VIEW, "Get a run",
             query=[Param("with_artifacts", "boolean")]),
    Endpoint("POST", "/runs/{run_id}/status", set_status, EDIT, "Set a run's status", body=StatusIn),
    Endpoint("POST", "/runs/{run_id}/finish", finish, project_role("editor", ended_run_points_and_lineage),
             "End a run: its last metric points, tags, lineage and status in one transaction", body=FinishIn),
    Endpoint("DELETE", "/runs/{run_id}", delete, OWN, "Delete a run and everything logged to it"),
    Endpoint("POST", "/runs/heartbeat", heartbeat, project_role("editor", runs_of_heartbeat),
             "Mark runs alive", body=HeartbeatIn),
    Endpoint("POST", "/runs/reap", reap, AUTHENTICATED, "Mark silent RUNNING runs KILLED", body=ReapIn),
    Endpoint("POST", "/runs/{run_id}/params", log_params, EDIT, "Log params (immutable)", body=ParamsIn),
    Endpoint("POST", "/runs/{run_id}/tags", set_tags, EDIT, "Set tags", body=TagsIn),
    Endpoint("DELETE", "/runs/{run_id}/tags", delete_tag, EDIT, "Delete a tag",
             query=[Param("key", required=True)]),
]
