"""``/lineage``: directed edges between records."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from conveyor.core.errors import InvalidArgument
from conveyor.server.routing import Call, Endpoint, Param, project_role
from conveyor.server.scope import lineage_body, lineage_query
from conveyor.stores.metadata.wire import LineageIn


def add(call: Call) -> Response:
    body: LineageIn = call.body
    call.state.store.add_lineage(body.src, body.dst, body.relation, body.attributes)
    return Response(status_code=204)


def list_(call: Call) -> Any:
    kind, ident = call.query.get("kind"), call.query.get("id")
    if not kind or not ident:
        raise InvalidArgument("query parameters kind and id are required", field="kind" if not kind else "id")
    return call.state.store.list_lineage((kind, ident), call.query.get("direction", "both"))


ENDPOINTS = [
    Endpoint("POST", "/lineage", add, project_role("editor", lineage_body), "Add a lineage edge", body=LineageIn),
    Endpoint("GET", "/lineage", list_, project_role("viewer", lineage_query), "Edges in or out of a record",
             query=[Param("kind", required=True), Param("id", required=True), Param("direction")]),
]
