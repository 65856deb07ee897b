"""The OpenAPI 3.1 document, assembled from the endpoint declarations and msgspec schemas."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from conveyor._version import __version__
from conveyor.server.routing import Endpoint

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}


def _operation_id(endpoint: Endpoint) -> str:
    words = re.sub(r"[^a-zA-Z0-9]+", "_", endpoint.path).strip("_")
    return f"{endpoint.method.lower()}_{words}"


def build(endpoints: Sequence[Endpoint], *, auth: bool) -> dict[str, Any]:
    """The document for ``endpoints``; request bodies reference ``components/schemas``."""
    body_types = sorted({e.body for e in endpoints if e.body is not None}, key=lambda t: t.__name__)
    refs, components = msgspec.json.schema_components(body_types, ref_template="#/components/schemas/{name}")
    ref_of = dict(zip(body_types, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        path = _PARAM.sub(r"{\1}", e.full_path)
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(e.full_path)
        ]
        params += [
            {"name": q.name, "in": "query", "required": q.required, "schema": {"type": q.type},
             **({"description": q.description} if q.description else {})}
            for q in e.query
        ]
        op: dict[str, Any] = {
            "operationId": _operation_id(e),
            "summary": e.summary,
            "parameters": params,
            "responses": {
                str(e.status): {"description": "success"},
                "4XX": {"description": "refused; the body names the field and the reason",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
        if e.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref_of[e.body]}}}
        elif e.stream and e.method == "PUT":
            op["requestBody"] = {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
        if e.access.kind != "public" and auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[e.method.lower()] = op
    components["Error"] = _ERROR
    return {
        "openapi": "3.1.0",
        "info": {"title": "Conveyor tracking server", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
