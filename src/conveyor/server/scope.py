"""Which projects a request touches: the resolvers endpoints declare in their Access."""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.core.errors import PermissionDenied
from conveyor.core.ids import check_id
from conveyor.server.routing import Call


def body_project(call: Call) -> Iterable[str]:
    return [call.body.project]


def path_project(call: Call) -> Iterable[str]:
    return [call.path["name"]]


def query_project(call: Call) -> Iterable[str]:
    """The ``project`` query parameter; without one only an admin may go on."""
    project = call.query.get("project")
    if not project:
        raise PermissionDenied(f"{call.principal.name} must name a project (only admins read across projects)")
    return [project]


def run_in_path(call: Call) -> Iterable[str]:
    return call.state.projects_of_runs([check_id(call.path["run_id"])]).values()


def runs_of_points(call: Call) -> Iterable[str]:
    ids = {check_id(p[0]) for p in call.body.points}
    return call.state.projects_of_runs(ids).values()


def run_and_points(call: Call) -> Iterable[str]:
    """The run being ended and every run its last points belong to."""
    ids = {check_id(call.path["run_id"])} | {check_id(p[0]) for p in call.body.points}
    return call.state.projects_of_runs(ids).values()


def runs_of_heartbeat(call: Call) -> Iterable[str]:
    ids = {check_id(r) for r in call.body.run_ids}
    return call.state.projects_of_runs(ids).values()


def lineage_nodes(nodes: Iterable[tuple[str, str]], call: Call) -> list[str]:
    """Projects of the runs among ``nodes``; other kinds of node need an admin for now."""
    run_ids = []
    for kind, ident in nodes:
        if kind != "run":
            raise PermissionDenied(f"lineage of {kind!r} records needs an admin on this server")
        run_ids.append(check_id(ident, "node"))
    return list(call.state.projects_of_runs(run_ids).values())


def created_run_and_lineage(call: Call) -> Iterable[str]:
    """The project a run is created in, and those of the records its lineage names."""
    return [call.body.project, *lineage_nodes([*call.body.inputs, *call.body.outputs], call)]


def ended_run_points_and_lineage(call: Call) -> Iterable[str]:
    """What :func:`run_and_points` needs, and the projects of the records the run's lineage names."""
    return [*run_and_points(call), *lineage_nodes([*call.body.inputs, *call.body.outputs], call)]


def lineage_body(call: Call) -> Iterable[str]:
    return lineage_nodes([call.body.src, call.body.dst], call)


def lineage_query(call: Call) -> Iterable[str]:
    return lineage_nodes([(call.query.get("kind", ""), call.query.get("id", ""))], call)


def blob_digest(call: Call) -> Iterable[str]:
    """The projects whose runs recorded this blob's content."""
    from conveyor.server.routes.blobs import digest_of_key

    return call.state.store.digest_projects(digest_of_key(call.path["key"]))
