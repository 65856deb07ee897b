"""``/audit``: read the trail of a project (owners) or of everything (admins), and verify it."""

from __future__ import annotations

from typing import Any

from conveyor.server.routing import ADMIN, Call, Endpoint, Param, project_role
from conveyor.server.scope import query_project


def list_(call: Call) -> Any:
    return call.state.governance.list_audit(
        project=call.query.get("project") or None,
        since=call.query_int("since"),
        after_seq=call.query_int("after_seq", 0) or 0,
        limit=call.query_int("limit", 1000) or 0,
    )


def verify(call: Call) -> Any:
    return call.state.governance.verify_audit()


def _project_or_admin(call: Call) -> list[str]:
    return list(query_project(call))


ENDPOINTS = [
    Endpoint("GET", "/audit", list_, project_role("owner", _project_or_admin), "Audit events in chain order",
             query=[Param("project"), Param("since", "integer", description="ms since the epoch"),
                    Param("after_seq", "integer"), Param("limit", "integer")]),
    Endpoint("GET", "/audit/verify", verify, ADMIN, "Recompute the audit hash chain"),
]
