"""Tracking across real processes: concurrent writers, SIGKILL, normal and failed exits, git capture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conveyor.core.entities import RunStatus
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.postgres import truncate_all

WRITER = textwrap.dedent(
    """
    import sys
    import conveyor as cv
    cv.set_project("load")
    with cv.start_run(name=f"writer-{sys.argv[1]}") as run:
        for i in range(int(sys.argv[2])):
            cv.log_metric("loss", 1.0 / (i + 1), step=i)
    print(run.id)
    """
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update({"CONVEYOR_HOME": str(home), **extra})
    return env


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(text))
    return path


def _concurrent_writers(tmp_path: Path, uri: str, processes: int = 16, points: int = 20_000) -> None:
    script = _script(tmp_path, WRITER)
    env = _env(tmp_path / "home", CONVEYOR_URI=uri)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(i), str(points)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(processes)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    errors = [(p.returncode, err) for p, (_, err) in zip(procs, results, strict=True) if p.returncode or err.strip()]
    assert errors == []
    run_ids = [out.strip() for out, _ in results]
    store = SqlMetadataStore(uri)
    try:
        for run_id in run_ids:
            run = store.get_run(run_id)
            assert run.status is RunStatus.FINISHED
            history = store.get_metric_history(run_id, "loss")
            assert [p.step for p in history] == list(range(points))
            assert run.metrics == {"loss": 1.0 / points}
        assert len(store.search_runs(["load"], max_results=100)) == processes
    finally:
        store.close()


@pytest.mark.slow
def test_sixteen_writers_on_sqlite(tmp_path: Path) -> None:
    _concurrent_writers(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_sixteen_writers_on_postgres(tmp_path: Path, postgres_uri: str) -> None:
    SqlMetadataStore(postgres_uri).close()
    truncate_all(postgres_uri)
    _concurrent_writers(tmp_path, postgres_uri)


@pytest.mark.slow
def test_sigkill_keeps_flushed_points_and_run_becomes_killed(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        """
        import sys, time
        import conveyor as cv
        run = cv.start_run(name="doomed")
        for i in range(5000):
            cv.log_metric("loss", float(i), step=i)
        cv.flush()
        print(run.id, flush=True)
        for i in range(5000, 6000):
            cv.log_metric("loss", float(i), step=i)  # never flushed: may be lost
        time.sleep(600)
        """,
    )
    home = tmp_path / "home"
    env = _env(home, CONVEYOR_HEARTBEAT_INTERVAL="0.2", CONVEYOR_HEARTBEAT_TIMEOUT="1.5",
               CONVEYOR_FLUSH_INTERVAL="60")
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    time.sleep(0.5)  # a few heartbeats
    store = SqlMetadataStore(f"sqlite:///{home / 'conveyor.db'}")
    try:
        assert store.get_run(run_id).status is RunStatus.RUNNING
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert store.reap_stale_runs(1500) == []  # the heartbeat is still fresh
        time.sleep(2.0)
        assert store.reap_stale_runs(1500) == [run_id]
        run = store.get_run(run_id)
        assert run.status is RunStatus.KILLED and run.end_time is not None
        steps = [p.step for p in store.get_metric_history(run_id, "loss")]
        assert steps[:5000] == list(range(5000))
    finally:
        store.close()


def test_exit_without_end_run_flushes_and_finishes(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        """
        import conveyor as cv
        run = cv.start_run()
        for i in range(30000):
            cv.log_metric("loss", float(i), step=i)
        print(run.id)
        """,
    )
    home = tmp_path / "home"
    env = _env(home, CONVEYOR_FLUSH_INTERVAL="60", CONVEYOR_FLUSH_SIZE="1000000")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True)
    store = SqlMetadataStore(f"sqlite:///{home / 'conveyor.db'}")
    try:
        run = store.get_run(out.stdout.strip())
        assert run.status is RunStatus.FINISHED
        assert len(store.get_metric_history(run.id, "loss")) == 30000
    finally:
        store.close()


def test_uncaught_exception_marks_run_failed(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        """
        import conveyor as cv
        run = cv.start_run()
        cv.log_metric("loss", 1.0)
        print(run.id, flush=True)
        raise RuntimeError("training diverged")
        """,
    )
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, str(script)], env=_env(home), capture_output=True, text=True)
    assert out.returncode == 1 and "training diverged" in out.stderr
    store = SqlMetadataStore(f"sqlite:///{home / 'conveyor.db'}")
    try:
        run = store.get_run(out.stdout.strip())
        assert run.status is RunStatus.FAILED and run.metrics == {"loss": 1.0}
    finally:
        store.close()


def test_environment_records_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    script = repo / "train.py"
    script.write_text("import conveyor as cv\nwith cv.start_run() as run:\n    pass\nprint(run.id)\n")
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    home = tmp_path / "home"

    def run_script() -> dict[str, object]:
        out = subprocess.run([sys.executable, str(script), "--epochs", "3"], env=_env(home), cwd=tmp_path,
                             capture_output=True, text=True, check=True)
        store = SqlMetadataStore(f"sqlite:///{home / 'conveyor.db'}")
        try:
            return store.get_run(out.stdout.strip()).env
        finally:
            store.close()

    clean = run_script()
    assert clean["git"] == {"commit": commit, "branch": clean["git"]["branch"], "dirty": False,  # type: ignore[index]
                            "root": str(repo.resolve())}
    assert clean["command"][-2:] == ["--epochs", "3"]  # type: ignore[index]
    assert clean["python"] == ".".join(map(str, sys.version_info[:3]))
    script.write_text(script.read_text() + "# edited\n")
    assert run_script()["git"]["dirty"] is True  # type: ignore[index]
