"""A real Conveyor server on 127.0.0.1 for tests: in a thread, or as a subprocess.

Example::

    with serve(ServerConfig(backend=f"sqlite:///{tmp}/db", artifacts=str(tmp / "a"))) as url:
        store = RestMetadataStore(url)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from conveyor.server.config import ServerConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(config: ServerConfig) -> Iterator[str]:
    """Run the app in a thread of this process; yields its base URL."""
    import uvicorn

    from conveyor.server.app import create_app

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else ~40 ms per answer (Nagle + delayed ACK)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="conveyor-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def start_process(config: ServerConfig, log: Path) -> subprocess.Popen[bytes]:
    """``conveyor server`` in a subprocess (this source tree first on its path); waits until it answers.

    The server leads its own process group, so ``kill_group`` takes its workers down with it.
    """
    import httpx

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    args = [sys.executable, "-m", "conveyor.cli.main", "server", "--backend", config.backend,
            "--artifacts", config.artifacts, "--host", config.host, "--port", str(config.port),
            "--workers", str(config.workers)]
    if config.auth:
        args.append("--auth")
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    url = f"http://127.0.0.1:{config.port}/api/v1/health"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server did not answer within 60 s")
        time.sleep(0.05)


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the server and every worker it started, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait()
