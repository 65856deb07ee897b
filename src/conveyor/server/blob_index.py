"""Indexing model packages and dataset versions, so their blobs can be read through the server.

When a version is registered through the server, the server reads its manifest
from the content store and records every blob it lists in ``blob_refs``
(``stores/metadata/sql/blob_refs.py``); the blob routes then let viewers of the
model's project (any member, for a dataset) read them. Versions registered on
the database directly, or before the index existed, are indexed the first time
a read finds no reference that lets the caller in (:func:`backfill`).
"""

from __future__ import annotations

from conveyor.core.errors import ArtifactCorrupted, InvalidArgument, NotFound
from conveyor.server.state import ServerState


def index_manifest(state: ServerState, kind: str, project: str, digest: str) -> bool:
    """Record manifest ``digest`` and every blob it lists; ``False`` when the manifest cannot be read."""
    try:
        files = state.content.get_manifest(digest)
    except (NotFound, InvalidArgument, ArtifactCorrupted):
        return False
    state.store.blob_refs.add(kind, project, [digest, *(f.digest for f in files)])
    return True


def backfill(state: ServerState) -> bool:
    """Index every version not indexed yet; ``True`` when something new was recorded.

    A manifest that cannot be read (missing from this server's store, not a
    manifest) is remembered and not tried again by this process.
    """
    with state.index_lock:
        added = False
        for kind, project, digest in state.store.blob_refs.unindexed():
            if (kind, project, digest) in state.unindexable:
                continue
            if index_manifest(state, kind, project, digest):
                added = True
            else:
                state.unindexable.add((kind, project, digest))
        return added
