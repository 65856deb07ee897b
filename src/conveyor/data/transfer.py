"""Moving dataset blobs between artifact stores (local folder <-> S3), missing ones only.

``push`` copies every blob the versions reference (manifests and files) from
one content store to another; ``pull`` copies one version's blobs back. A blob
the destination already holds with the right size is skipped, so an interrupted
transfer is resumed by running it again. Blobs are read verified (the source
store checks each hash) and written atomically by the destination backend;
transfers run on a thread pool.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from conveyor.core.entities import ArtifactFile
from conveyor.data.files import WORKERS
from conveyor.stores.artifacts.cas import ContentStore, blob_key


class TransferStats(NamedTuple):
    """Blobs looked at, blobs copied, bytes copied."""

    blobs: int
    copied: int
    bytes: int


def blobs_of(store: ContentStore, content_hashes: Iterable[str]) -> dict[str, int]:
    """Every blob (digest -> size) of the given manifests, the manifests included."""
    hashes = list(dict.fromkeys(content_hashes))

    def read(manifest: str) -> tuple[str, int, list[ArtifactFile]]:
        files = store.get_manifest(manifest)
        return manifest, store.backend.size(blob_key(manifest)) or 0, files

    wanted: dict[str, int] = {}
    if not hashes:
        return wanted
    with ThreadPoolExecutor(min(WORKERS, len(hashes)), thread_name_prefix="conveyor-manifest") as pool:
        for manifest, size, files in pool.map(read, hashes):
            wanted[manifest] = size
            for f in files:
                wanted[f.digest] = f.size
    return wanted


def copy_blobs(source: ContentStore, dest: ContentStore, blobs: dict[str, int]) -> TransferStats:
    """Copy the blobs ``dest`` lacks from ``source``, in parallel, each verified on the way."""

    def copy(item: tuple[str, int]) -> int:
        digest, size = item
        key = blob_key(digest)
        if dest.backend.size(key) == size:
            return -1
        with tempfile.TemporaryDirectory(prefix="conveyor-transfer-") as tmp:
            local = Path(tmp) / "blob"
            source.get_file(digest, local)  # raises ArtifactCorrupted on a bad source blob
            dest.backend.put_file(key, local)
        return size

    if not blobs:
        return TransferStats(0, 0, 0)
    with ThreadPoolExecutor(min(WORKERS, len(blobs)), thread_name_prefix="conveyor-transfer") as pool:
        sizes = list(pool.map(copy, blobs.items()))
    copied = [s for s in sizes if s >= 0]
    return TransferStats(len(blobs), len(copied), sum(copied))
