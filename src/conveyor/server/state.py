"""What the app holds while it runs, built in the ASGI lifespan (no module globals)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.governance import Principal

_MAX_CACHED_RUNS = 200_000


@dataclass
class ServerState:
    """The stores and settings one app instance serves.

    ``store`` is a :class:`~conveyor.stores.metadata.sql.store.SqlMetadataStore`
    and ``content`` a :class:`~conveyor.stores.artifacts.cas.ContentStore`.
    """

    config: ServerConfig
    store: Any
    content: Any
    tmp_dir: Path
    local: Principal  # who callers are when auth is off
    _run_projects: dict[str, str] = field(default_factory=dict)
    # blob index backfill (``server/blob_index.py``): one at a time, and manifests it could not read
    index_lock: threading.Lock = field(default_factory=threading.Lock)
    unindexable: set[str] = field(default_factory=set)  # version ids
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def direct_uploads(self) -> bool:
        """Whether clients may write blobs straight to the store (S3, presigning on)."""
        return self.config.presign and hasattr(self.content.backend, "presign_put")

    @property
    def governance(self) -> Any:
        return self.store.governance

    def projects_of_runs(self, run_ids: Iterable[str]) -> dict[str, str]:
        """Run id → project name for the runs that exist (a run never changes project)."""
        ids = set(run_ids)
        known = {r: self._run_projects[r] for r in ids if r in self._run_projects}
        missing = ids - known.keys()
        if missing:
            found = self.store.run_projects(sorted(missing))
            with self._lock:
                if len(self._run_projects) > _MAX_CACHED_RUNS:
                    self._run_projects.clear()
                self._run_projects.update(found)
            known.update(found)
        return known

    def close(self) -> None:
        self.store.close()
