"""``/runs/search`` (filtered, ordered, paged; runs of unreadable projects are invisible)
and ``/runs/by-tag`` (the newest run per tag value, in one project the caller may read)."""

from __future__ import annotations

from typing import Any

from conveyor.core.errors import InvalidArgument
from conveyor.server.auth import readable_projects
from conveyor.server.routing import AUTHENTICATED, Call, Endpoint, project_role
from conveyor.server.scope import body_project
from conveyor.stores.metadata.wire import RunsByTagIn, SearchIn, run_out


def search(call: Call) -> Any:
    body: SearchIn = call.body
    projects = body.projects
    visible = readable_projects(call.principal)
    if visible is not None:
        # Not a 403: what the caller cannot read simply does not show up.
        projects = sorted(set(projects) & visible if projects else visible)  # [] means all, as in the store
        if not projects:
            return {"runs": [], "next_page_token": None}
    page = call.state.store.search_runs(projects, body.filter, body.order_by, body.max_results, body.page_token)
    return {"runs": [run_out(r) for r in page], "next_page_token": page.next_page_token}


#: Values per ``/runs/by-tag`` request (the REST store sends bigger look-ups in parts).
MAX_TAG_VALUES = 5_000


def by_tag(call: Call) -> Any:
    body: RunsByTagIn = call.body
    if len(body.values) > MAX_TAG_VALUES:
        raise InvalidArgument(f"at most {MAX_TAG_VALUES} values per request", field="values")
    found = call.state.store.find_runs_by_tag(body.project, body.key, body.values, status=body.status)
    return {"runs": {value: run_out(run) for value, run in found.items()}}


ENDPOINTS = [
    Endpoint("POST", "/runs/search", search, AUTHENTICATED, "Search runs (filter, order, pages)", body=SearchIn),
    Endpoint("POST", "/runs/by-tag", by_tag, project_role("viewer", body_project),
             "The newest run of a project per value of one tag", body=RunsByTagIn),
]
