"""``/runs/search``: filtered, ordered, paged; runs of unreadable projects are invisible."""

from __future__ import annotations

from typing import Any

from conveyor.server.auth import readable_projects
from conveyor.server.routing import AUTHENTICATED, Call, Endpoint
from conveyor.stores.metadata.wire import SearchIn, run_out


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


ENDPOINTS = [
    Endpoint("POST", "/runs/search", search, AUTHENTICATED, "Search runs (filter, order, pages)", body=SearchIn),
]
