"""``/runs/{run_id}/artifacts``: record, list, and stream files of a run up and down."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor.core.entities import ArtifactFile
from conveyor.core.errors import NotFound
from conveyor.core.ids import check_id
from conveyor.server.blob_index import received, require_held
from conveyor.server.routes._files import check_artifact_path, receive_file, send_blob, store_blob
from conveyor.server.routing import Call, Endpoint, Param, project_role
from conveyor.server.scope import run_in_path
from conveyor.stores.metadata.wire import ArtifactsIn


def record(call: Call) -> Response:
    body: ArtifactsIn = call.body
    from conveyor.stores.artifacts.cas import check_digest

    for i, f in enumerate(body.files):
        check_artifact_path(f.path, f"files[{i}].path")
        check_digest(f.digest, f"files[{i}].digest")
    require_held(call.state, call.principal, [f.digest for f in body.files], "files")
    call.state.store.record_artifacts(call.path["run_id"], body.files)
    return Response(status_code=204)


def list_(call: Call) -> Any:
    prefix = call.query.get("prefix")
    if prefix is not None:
        prefix = check_artifact_path(prefix, "prefix")
    return call.state.store.list_artifacts(call.path["run_id"], prefix)


async def upload(call: Call) -> Any:
    """Stream the body into the content store and record it at ``path`` in the run."""
    state = call.state
    path = check_artifact_path(call.query.get("path"))
    run_id = check_id(call.path["run_id"])
    await run_in_threadpool(lambda: state.store.get_run(run_id, with_artifacts=False))
    tmp, digest, size = await receive_file(call.request, state.tmp_dir, state.config.max_upload)
    await run_in_threadpool(store_blob, state.content, tmp, digest, size)
    await run_in_threadpool(received, state, call.principal, [digest])
    record_ = ArtifactFile(path=path, digest=digest, size=size)
    await run_in_threadpool(state.store.record_artifacts, run_id, [record_])
    return record_


async def download(call: Call) -> Any:
    """The verified bytes of the file at ``path`` in the run."""
    path = check_artifact_path(call.query.get("path"))
    run_id = check_id(call.path["run_id"])
    files = await run_in_threadpool(call.state.store.list_artifacts, run_id, path)
    match = [f for f in files if f.path == path]
    if not match:
        raise NotFound(f"run {run_id} has no file {path!r}", field="path")
    return await send_blob(call.state.content, match[0].digest, call.state.tmp_dir)


VIEW = project_role("viewer", run_in_path)
EDIT = project_role("editor", run_in_path)

ENDPOINTS = [
    Endpoint("POST", "/runs/{run_id}/artifacts", record, EDIT, "Record files already in the artifact store",
             body=ArtifactsIn),
    Endpoint("GET", "/runs/{run_id}/artifacts", list_, VIEW, "List a run's files", query=[Param("prefix")]),
    Endpoint("PUT", "/runs/{run_id}/artifacts/file", upload, EDIT, "Upload one file (streamed)",
             query=[Param("path", required=True)], stream=True),
    Endpoint("GET", "/runs/{run_id}/artifacts/file", download, VIEW, "Download one file (verified, streamed)",
             query=[Param("path", required=True)], stream=True),
]
