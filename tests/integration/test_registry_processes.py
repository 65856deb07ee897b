"""Model versions registered from several processes at once: 1..N, no gap, no duplicate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.postgres import truncate_all

REGISTER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from sklearn.linear_model import LinearRegression
    import conveyor as cv

    X = np.arange(20.0).reshape(10, 2)
    model = LinearRegression().fit(X, X[:, 0] * 3 + int(sys.argv[1]))
    cv.set_project("bikes")
    with cv.start_run():
        for _ in range(int(sys.argv[2])):
            print(cv.log_model(model, name="bike-demand", input_example=X[:2]).version)
    """
)


def _register_from_processes(tmp_path: Path, uri: str, processes: int = 5, each: int = 10) -> None:
    script = tmp_path / "register.py"
    script.write_text(REGISTER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update({"CONVEYOR_HOME": str(tmp_path / "home"), "CONVEYOR_URI": uri,
                "CONVEYOR_ARTIFACTS": str(tmp_path / "artifacts")})
    procs = [subprocess.Popen([sys.executable, str(script), str(i), str(each)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(processes)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [(p.returncode, err) for p, (_, err) in zip(procs, results, strict=True) if p.returncode] == []
    numbers = sorted(int(line) for out, _ in results for line in out.split())
    assert numbers == list(range(1, processes * each + 1))
    store = SqlMetadataStore(uri)
    try:
        listed = store.registry.list_versions("bikes", "bike-demand", max_results=1000)
        assert sorted(mv.version for mv in listed) == numbers
        # five different models, each stored once however often it was logged
        assert len({mv.package_digest for mv in listed}) == processes
    finally:
        store.close()


@pytest.mark.slow
def test_processes_register_versions_on_sqlite(tmp_path: Path) -> None:
    _register_from_processes(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_register_versions_on_postgresql(tmp_path: Path, postgres_uri: str) -> None:
    SqlMetadataStore(postgres_uri).close()
    truncate_all(postgres_uri)
    _register_from_processes(tmp_path, postgres_uri)
