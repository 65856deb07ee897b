"""``conveyor server`` as an operator starts it: a real process on a free port."""

from __future__ import annotations

from pathlib import Path

import httpx

from conveyor.server.config import ServerConfig
from conveyor.testing.server import free_port, kill_group, start_process


def test_the_server_command_serves_the_api_with_auth_and_no_default_user(tmp_path: Path) -> None:
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=str(tmp_path / "a"),
                          port=free_port(), auth=True)
    log = tmp_path / "server.log"
    proc = start_process(config, log)
    try:
        base = f"http://127.0.0.1:{config.port}/api/v1"
        assert httpx.get(base + "/health").json()["auth"] is True
        assert httpx.get(base + "/projects").status_code == 401
        assert "conveyor users create NAME --admin" in log.read_text()
    finally:
        kill_group(proc)
