"""``/metrics``: one batch per client flush, and a metric's history."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument
from conveyor.server.routing import Call, Endpoint, Param, project_role
from conveyor.server.scope import run_in_path, runs_of_points
from conveyor.stores.metadata.base import PointRow
from conveyor.stores.metadata.wire import MetricBatchIn, dec_float, points_out

#: Points per request; the client splits bigger flushes.
MAX_POINTS = 100_000


def decode_points(points: list[Any]) -> list[PointRow]:
    """Wire points checked and turned into store rows; every error names its place."""
    if len(points) > MAX_POINTS:
        raise InvalidArgument(f"at most {MAX_POINTS} points per request", field="points")
    keys: set[str] = set()
    rows: list[PointRow] = []
    for i, (run_id, key, value, step, timestamp) in enumerate(points):
        if key not in keys:
            v.check_key(key)
            keys.add(key)
        number = dec_float(value, f"points[{i}][2]")
        v.metric_step(key, step)
        if not 0 <= timestamp < 2**63:
            raise InvalidArgument(f"points[{i}] timestamp must be milliseconds since the epoch", field=f"points[{i}][4]")
        rows.append((run_id, key, number, step, timestamp))
    return rows


def log_batch(call: Call) -> Response:
    body: MetricBatchIn = call.body
    call.state.store.log_metric_points(decode_points(body.points), idempotency_key=body.idempotency_key)
    return Response(status_code=204)


def history(call: Call) -> Any:
    key = call.query.get("key")
    if key is None:
        raise InvalidArgument("query parameter key is required", field="key")
    return points_out(call.state.store.get_metric_history(call.path["run_id"], key))


ENDPOINTS = [
    Endpoint("POST", "/metrics/batch", log_batch, project_role("editor", runs_of_points),
             "Log a batch of metric points (idempotent with idempotency_key)", body=MetricBatchIn),
    Endpoint("GET", "/runs/{run_id}/metrics/history", history, project_role("viewer", run_in_path),
             "Every point of one metric, in step order", query=[Param("key", required=True)]),
]
