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
    """The projects an edge or a lookup touches: of its runs and of its model versions.

    Dataset versions belong to no project (datasets are server-wide): they add no
    project, but only a member of some project may name one. Other kinds of node
    need an admin for now.
    """
    run_ids, projects = [], []
    for kind, ident in nodes:
        if kind == "run":
            run_ids.append(check_id(ident, "node"))
        elif kind == "model_version":
            project = call.state.store.registry.project_of_version(check_id(ident, "node"))
            projects += [] if project is None else [project]
        elif kind == "dataset_version":
            check_id(ident, "node")
            if not call.principal.is_admin and not call.principal.roles:
                raise PermissionDenied(f"{call.principal.name} has no role on any project, so no dataset access")
        else:
            raise PermissionDenied(f"lineage of {kind!r} records needs an admin on this server")
    return projects + list(call.state.projects_of_runs(run_ids).values())


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


def project_in_path(call: Call) -> Iterable[str]:
    """``{project}`` of ``/projects/{project}/models/…`` and ``/projects/{project}/monitors/…``."""
    return [call.path["project"]]


def monitor_in_path(call: Call) -> Iterable[str]:
    """The project of ``{monitor_id}``; none for an unknown monitor (the handler answers for it)."""
    project = call.state.store.monitors.project_of(call.path["monitor_id"])
    return [] if project is None else [project]


def incident_in_path(call: Call) -> Iterable[str]:
    project = call.state.store.monitors.project_of_incident(call.path["incident_id"])
    return [] if project is None else [project]


def member_projects(call: Call) -> Iterable[str]:
    """Every project the caller has a role on: with ``any_of``, "this role on some project".

    Datasets belong to the whole server, not to one project (``DatasetStore`` has no
    project), so their routes ask for a role on any project instead of on a named one.
    """
    return list(call.principal.roles)
