"""General pytest fixtures: an isolated Conveyor home per test.

Load them all with ``pytest_plugins = ["conveyor.testing.fixtures"]`` in a conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing.postgres import postgres_uri  # noqa: F401  (re-exported fixture)
from conveyor.testing.s3server import s3_bucket_uri, s3_endpoint  # noqa: F401


@pytest.fixture
def conveyor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh CONVEYOR_HOME; the fluent API starts from a clean client and ends closed."""
    import conveyor as cv
    from conveyor.core.settings import reset_settings

    home = tmp_path / "conveyor-home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    for name in ("CONVEYOR_URI", "CONVEYOR_ARTIFACTS", "CONVEYOR_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    cv.configure()
    yield home
    while cv.active_run() is not None:
        cv.end_run()
    cv.configure()
    reset_settings()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh :class:`SqlMetadataStore`, once on SQLite and once on PostgreSQL."""
    from conveyor.stores.metadata.sql.store import SqlMetadataStore

    if request.param == "sqlite":
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'conveyor.db'}")
    else:
        from conveyor.testing.postgres import truncate_all

        uri = request.getfixturevalue("postgres_uri")
        store = SqlMetadataStore(uri)  # creates the schema on first use
        truncate_all(uri)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of a fresh, empty database (migrated), once SQLite and once PostgreSQL: for a server under test."""
    from conveyor.stores.metadata.sql.store import SqlMetadataStore

    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'server.db'}"
        SqlMetadataStore(uri).close()
        return uri
    from conveyor.testing.postgres import truncate_all

    uri = str(request.getfixturevalue("postgres_uri"))
    SqlMetadataStore(uri).close()
    truncate_all(uri)
    return uri
