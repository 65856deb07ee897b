"""``/datasets``: dataset versions and validation records.

Datasets belong to the whole server, not to a project (the dataset store has no
project), so the rule is by membership: reading needs a role on some project,
registering a version or recording a check ``editor`` on some project (the
rule blob uploads already follow); admins and a server without auth pass.
"""

from __future__ import annotations

from typing import Any

from conveyor.server.blob_index import index_manifest, manifest_digests, require_held
from conveyor.server.routes.registry import version_number
from conveyor.server.routing import UPLOADER, Call, Endpoint, Param, project_role
from conveyor.server.scope import member_projects
from conveyor.stores.metadata.datasets import NewVersion
from conveyor.stores.metadata.sql.blob_refs import DATASET
from conveyor.stores.metadata.wire import CheckIn, DatasetVersionIn


def create_version(call: Call) -> Any:
    """Register the version if the caller holds its manifest and files (403 otherwise), then index them."""
    body: DatasetVersionIn = call.body
    listed = manifest_digests(call.state, body.content_hash)
    require_held(call.state, call.principal, listed or [body.content_hash], "content_hash")
    fields = {f: getattr(body, f) for f in body.__struct_fields__}
    version = call.state.store.datasets.create_version(NewVersion(name=call.path["name"], **fields))
    index_manifest(call.state, DATASET, "", version.id, body.content_hash, listed)  # so any member can check it out
    return version


def get_version(call: Call) -> Any:
    raw = call.path["version"]
    version = None if raw == "latest" else version_number(raw)
    return call.state.store.datasets.get_version(call.path["name"], version)


def get_version_by_id(call: Call) -> Any:
    return call.state.store.datasets.get_version_by_id(call.path["version_id"])


def list_versions(call: Call) -> Any:
    return call.state.store.datasets.list_versions(call.path["name"])


def list_datasets(call: Call) -> Any:
    return call.state.store.datasets.list_datasets()


def content_hashes(call: Call) -> Any:
    return call.state.store.datasets.all_content_hashes()


def record_check(call: Call) -> Any:
    body: CheckIn = call.body
    return call.state.store.datasets.record_check(
        dataset=call.path["name"], version=body.version, target=body.target, suite=body.suite, ok=body.ok,
        num_failures=body.num_failures, report=body.report, run_id=body.run_id,
        idempotency_key=body.idempotency_key,
    )


def list_checks(call: Call) -> Any:
    return call.state.store.datasets.list_checks(call.path["name"], call.query_int("limit", 100) or 0)


READ = project_role("viewer", member_projects, any_of=True)

ENDPOINTS = [
    Endpoint("GET", "/datasets", list_datasets, READ, "List datasets with their newest version number"),
    Endpoint("GET", "/datasets/content-hashes", content_hashes, READ,
             "The manifest digest of every version of every dataset"),
    Endpoint("GET", "/datasets/{name}/versions", list_versions, READ, "Versions of a dataset, oldest first"),
    Endpoint("POST", "/datasets/{name}/versions", create_version, UPLOADER,
             "Register a version (the same content as the newest returns that one)", body=DatasetVersionIn,
             status=201),
    Endpoint("GET", "/datasets/{name}/versions/{version}", get_version, READ,
             "Get a version by number, or the newest with 'latest'"),
    Endpoint("GET", "/dataset-versions/{version_id}", get_version_by_id, READ, "Get a dataset version by id"),
    Endpoint("GET", "/datasets/{name}/checks", list_checks, READ, "Recorded validations, newest first",
             query=[Param("limit", "integer")]),
    Endpoint("POST", "/datasets/{name}/checks", record_check, UPLOADER,
             "Record a validation (idempotent with idempotency_key)", body=CheckIn, status=201),
]
