"""Fixtures for tests of the data service: a fresh home on SQLite or PostgreSQL.

Import them into a test module::

    from conveyor.testing.datasets import data_home  # noqa: F401
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def data_home(request: pytest.FixtureRequest, conveyor_home: Path) -> Path:
    """A Conveyor home whose metadata store is SQLite or an emptied PostgreSQL database."""
    import conveyor as cv
    from conveyor.stores.metadata.sql.store import SqlMetadataStore
    from conveyor.testing.postgres import truncate_all

    if request.param == "postgresql":
        uri = request.getfixturevalue("postgres_uri")
        SqlMetadataStore(uri).close()
        truncate_all(uri)
        cv.configure(uri=uri)
    return conveyor_home


def blob_count(home: Path) -> int:
    """How many blobs the local artifact store of ``home`` holds."""
    root = home / "artifacts" / "blobs"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0
