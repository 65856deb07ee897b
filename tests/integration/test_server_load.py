"""The server under load and under SIGKILL: every acknowledged point is stored exactly once.

Sizes come from the environment so CI can run the full scenario
(``CONVEYOR_LOAD_CLIENTS=32 CONVEYOR_LOAD_SECONDS=30``); the defaults are short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conveyor.core.settings import Settings
from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.rest import RestMetadataStore
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.postgres import truncate_all
from conveyor.testing.server import free_port, kill_group, start_process
from conveyor.tracking.client import TrackingClient

CLIENTS = int(os.environ.get("CONVEYOR_LOAD_CLIENTS", "8"))
SECONDS = float(os.environ.get("CONVEYOR_LOAD_SECONDS", "5"))


@dataclass
class Server:
    config: ServerConfig
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    def start(self) -> None:
        self.proc = start_process(self.config, self.log)

    def kill(self) -> None:
        """SIGKILL the server and its workers; return once nothing answers on the port."""
        assert self.proc is not None
        kill_group(self.proc, signal.SIGKILL)
        while True:
            try:
                httpx.get(self.url + "/api/v1/health", timeout=1)
            except httpx.TransportError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc, signal.SIGTERM)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "postgresql":
        backend = request.getfixturevalue("postgres_uri")
        SqlMetadataStore(backend).close()  # the schema exists before the tables are emptied
        truncate_all(backend)
    else:
        backend = f"sqlite:///{tmp_path / 'server.db'}"
    config = ServerConfig(backend=backend, artifacts=str(tmp_path / "artifacts"), port=free_port(), workers=2)
    srv = Server(config, tmp_path / "server.log")
    srv.start()
    yield srv
    srv.stop()


def client_for(url: str, tmp_path: Path) -> TrackingClient:
    settings = Settings(home=tmp_path, metadata_uri=url, artifacts_uri=url, flush_interval=0.2,
                        flush_size=5000, http_retry_seconds=120)
    return TrackingClient(settings=settings)


@dataclass
class Logger:
    """One client: logs steps 0, 1, 2... of one metric; ``acked`` counts points a flush confirmed."""

    client: TrackingClient
    run_id: str
    logged: int = 0
    acked: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def log_until(self, stop: threading.Event, flush_every: int = 0) -> None:
        try:
            while not stop.is_set():
                for _ in range(50):
                    self.client.log_metric(self.run_id, "loss", 1.0 / (self.logged + 1), step=self.logged)
                    self.logged += 1
                if flush_every and self.logged % flush_every == 0:
                    self.client.flush()
                    self.acked = self.logged
                time.sleep(0.001)
            self.client.flush()
            self.acked = self.logged
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


def check_stored_once(url: str, loggers: list[Logger]) -> None:
    reader = RestMetadataStore(url)
    try:
        for logger in loggers:
            steps = [p.step for p in reader.get_metric_history(logger.run_id, "loss")]
            assert len(steps) == logger.acked, "points lost or duplicated"
            assert sorted(steps) == list(range(logger.acked))  # each exactly once
    finally:
        reader.close()


@pytest.mark.slow
def test_concurrent_clients_lose_and_duplicate_nothing(server: Server, tmp_path: Path) -> None:
    loggers = []
    for i in range(CLIENTS):
        client = client_for(server.url, tmp_path)
        loggers.append(Logger(client, client.create_run("load", name=f"client-{i}").id))
    stop = threading.Event()
    threads = [threading.Thread(target=lg.log_until, args=(stop,)) for lg in loggers]
    for t in threads:
        t.start()
    time.sleep(SECONDS)  # how long to generate load, not an assertion
    stop.set()
    for t in threads:
        t.join()
    for logger in loggers:
        logger.client.close()
    assert [lg.errors for lg in loggers] == [[] for _ in loggers]
    assert all(lg.acked > 0 for lg in loggers)
    check_stored_once(server.url, loggers)


@pytest.mark.slow
def test_sigkilled_server_comes_back_and_every_flushed_point_is_there_once(server: Server, tmp_path: Path) -> None:
    loggers = []
    for i in range(4):
        client = client_for(server.url, tmp_path)
        loggers.append(Logger(client, client.create_run("crash", name=f"client-{i}").id))
    stop = threading.Event()
    threads = [threading.Thread(target=lg.log_until, args=(stop, 500)) for lg in loggers]
    for t in threads:
        t.start()
    while min(lg.acked for lg in loggers) < 2000 and not any(lg.errors for lg in loggers):
        time.sleep(0.01)
    server.kill()  # mid-stream: some requests are cut off, some responses lost
    before_restart = [lg.logged for lg in loggers]
    time.sleep(1.0)  # clients keep logging and retrying against a dead server
    server.start()
    while min(lg.acked - b for lg, b in zip(loggers, before_restart, strict=True)) < 2000:
        if any(lg.errors for lg in loggers):
            break
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    for logger in loggers:
        logger.client.close()
    assert [lg.errors for lg in loggers] == [[] for _ in loggers]
    check_stored_once(server.url, loggers)
