"""Blob references and receipts: who may read a blob through the server, and who may name one.

When a version is registered through the server, the server reads its manifest
from the content store and records every blob it lists in ``blob_refs``
(``stores/metadata/sql/blob_refs.py``), under the version's id; the blob routes
then let viewers of the model's project (any member, for a dataset) read them.
Versions registered on the database directly, or before the index existed, are
indexed the first time a read finds no reference that lets the caller in
(:func:`backfill`).

Naming a blob is not proof of holding it: a digest can be read off another
project's manifest. So before a run file, a model package or a dataset version
is recorded, :func:`require_held` checks that the caller uploaded each blob
through this server (a receipt, :func:`received`) or can read it already; else
403 naming the blob, and nothing is recorded. Admins may read every blob, so
they need no receipt.
"""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.core.errors import ArtifactCorrupted, InvalidArgument, NotFound, PermissionDenied
from conveyor.server.auth import readable_projects
from conveyor.server.state import ServerState
from conveyor.stores.metadata.governance import Principal


def manifest_digests(state: ServerState, digest: str) -> list[str] | None:
    """Manifest ``digest`` and every blob it lists; ``None`` when it cannot be read as a manifest."""
    try:
        files = state.content.get_manifest(digest)
    except (NotFound, InvalidArgument, ArtifactCorrupted):
        return None
    return [digest, *(f.digest for f in files)]


def index_manifest(state: ServerState, kind: str, project: str, source: str, digest: str,
                   listed: list[str] | None = None) -> bool:
    """Record that version ``source`` references manifest ``digest`` and its blobs; ``False`` if unreadable."""
    digests = listed if listed is not None else manifest_digests(state, digest)
    if digests is None:
        return False
    state.store.blob_refs.add(kind, project, source, digests)
    return True


def backfill(state: ServerState) -> bool:
    """Index every version not indexed yet; ``True`` when something new was recorded.

    A manifest that cannot be read (missing from this server's store, not a
    manifest) is remembered and not tried again by this process.
    """
    with state.index_lock:
        added = False
        for kind, project, source, digest in state.store.blob_refs.unindexed():
            if source in state.unindexable:
                continue
            if index_manifest(state, kind, project, source, digest):
                added = True
            else:
                state.unindexable.add(source)
        return added


def received(state: ServerState, principal: Principal, digests: Iterable[str]) -> None:
    """Remember that ``principal`` uploaded these blobs' bytes (admins need no receipt)."""
    if not principal.is_admin:
        state.store.blob_refs.receive(principal.name, digests)


def holds(state: ServerState, principal: Principal, digests: Iterable[str], *, index: bool = True) -> set[str]:
    """The blobs of ``digests`` the caller uploaded or can read (every one, for an admin).

    With ``index``, versions not indexed yet are indexed before a blob counts as
    not held; without, such a blob is uploaded once more (cheaper for a question
    asked before every upload).
    """
    wanted = list(dict.fromkeys(digests))
    if principal.is_admin:
        return set(wanted)
    refs = state.store.blob_refs
    readable, member = readable_projects(principal) or set(), bool(principal.roles)
    held = refs.held(principal.name, readable, member=member, digests=wanted)
    missing = [d for d in wanted if d not in held]
    if missing and index and backfill(state):  # a version registered on the database may reference them
        held |= refs.held(principal.name, readable, member=member, digests=missing)
    return held


def require_held(state: ServerState, principal: Principal, digests: Iterable[str], field: str) -> None:
    """Raise 403 naming the first blob the caller neither uploaded through this server nor can read."""
    wanted = list(dict.fromkeys(digests))
    held = holds(state, principal, wanted)
    missing = [d for d in wanted if d not in held]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise PermissionDenied(
            f"{principal.name} may not reference blob {missing[0]}{more}: upload its bytes through this server "
            "first, or name only blobs you can already read", field=field)
