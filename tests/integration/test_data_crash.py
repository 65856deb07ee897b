"""An add killed halfway (SIGKILL) leaves no half-registered version; running it again completes it.

The child process injects the crash itself at a precise point, so the test does not
depend on timing: after a few blobs are uploaded, or inside the registering
transaction just before it commits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.postgres import truncate_all

ADD = textwrap.dedent(
    """
    import os, signal, sys
    import conveyor as cv

    folder, crash, link = sys.argv[1], sys.argv[2], sys.argv[3:] == ["link"]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if crash == "upload":  # die once five blobs are renamed into place
        import threading
        from conveyor.stores.artifacts import local
        real_publish = local.LocalBackend._publish
        lock, count = threading.Lock(), [0]
        def publish(tmp, target):
            real_publish(tmp, target)
            with lock:
                count[0] += 1
                if count[0] == 5:
                    die()
        local.LocalBackend._publish = staticmethod(publish)
    elif crash == "commit":
        from conveyor.stores.metadata.sql import datasets
        datasets.append_event = die  # the version row is inserted; the commit never comes
    ds = cv.data.add(folder, name="scans", link=link)
    stats = cv.data.service().last_add
    print(ds.ref, stats.hashed, stats.uploaded, flush=True)
    if crash == "returned":  # killed the moment add returns: no clean shutdown
        die()
    """
)


CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import conveyor as cv
    ds = cv.data.get("scans@1")
    source = Path(sys.argv[1])
    same = all((ds.path / f.path).read_bytes() == (source / f.path).read_bytes() for f in ds.files)
    print(len(ds.files), same)
    """
)


def _make_folder(folder: Path) -> None:
    folder.mkdir()
    old = time.time_ns() - 60 * 1_000_000_000  # written a while ago: the stat cache trusts them
    for i in range(40):
        (folder / f"scan-{i:03d}.bin").write_bytes(os.urandom(2048 + i))
        os.utime(folder / f"scan-{i:03d}.bin", ns=(old, old))


def _env(home: Path, uri: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(home)
    if uri:
        env["CONVEYOR_URI"] = uri
    return env


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["copy", "link"])
@pytest.mark.parametrize("crash", ["upload", "commit"])
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_an_add_killed_halfway_leaves_no_version_and_a_rerun_completes_it(
    tmp_path: Path, crash: str, backend: str, mode: str, request: pytest.FixtureRequest
) -> None:
    uri = None
    if backend == "postgresql":
        uri = request.getfixturevalue("postgres_uri")
        SqlMetadataStore(uri).close()
        truncate_all(uri)
    home = tmp_path / "home"
    folder = tmp_path / "scans"
    _make_folder(folder)
    script = tmp_path / "add.py"
    script.write_text(ADD)
    env = _env(home, uri)

    killed = subprocess.run([sys.executable, str(script), str(folder), crash, mode],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    stored = [p for p in (home / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert len(stored) >= (5 if crash == "upload" else 41)  # blobs are there, the version is not
    store = SqlMetadataStore(uri or f"sqlite:///{home / 'conveyor.db'}")
    try:
        assert store.datasets.list_datasets() == []
        with store.engine.connect() as conn:
            from sqlalchemy import func, select

            from conveyor.stores.metadata.sql.schema import dataset_versions, sequences

            assert conn.execute(select(func.count()).select_from(dataset_versions)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(sequences)).scalar() == 0
    finally:
        store.close()

    rerun = subprocess.run([sys.executable, str(script), str(folder), "none", mode],
                           env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    ref, hashed, uploaded = rerun.stdout.split()
    assert ref == "scans@1"  # gap-free: the killed attempt used no number
    assert hashed == "0"  # the stat cache remembered every file hashed before the crash
    if crash == "upload":  # only what was missing (threads were mid-upload when it died)
        assert int(uploaded) <= 35
    else:
        assert uploaded == "0"

    done = subprocess.run([sys.executable, "-c", CHECK, str(folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["40", "True"]


@pytest.mark.slow
def test_an_add_killed_right_after_it_returned_leaves_a_complete_version(tmp_path: Path) -> None:
    """The batch of blobs is synced before the version commits, so what add returned is whole."""
    home = tmp_path / "home"
    folder = tmp_path / "scans"
    _make_folder(folder)
    script = tmp_path / "add.py"
    script.write_text(ADD)
    env = _env(home, None)
    killed = subprocess.run([sys.executable, str(script), str(folder), "returned"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout.split() == ["scans@1", "40", "40"]
    leftovers = [p for p in (home / "artifacts").rglob("*") if ".conveyor-tmp-" in p.name]
    assert leftovers == []
    done = subprocess.run([sys.executable, "-c", CHECK, str(folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["40", "True"]
