"""Alert channels against a real HTTP server on 127.0.0.1, and the SSRF guard."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.errors import BackendUnavailable, InvalidArgument
from conveyor.monitoring.alerts import (
    Alert,
    LogChannel,
    WebhookChannel,
    check_outbound_url,
    parse_channel,
)

ALERT = Alert(monitor="bike-demand", title="drift", summary="7 of 10 columns drifted", at=1, details={"share": 0.7})


@pytest.fixture
def hook() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.path == "/bounce":
                self.send_response(302)
                self.send_header("location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()
                return
            received.append(json.loads(body))
            self.send_response(500 if self.path == "/broken" else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_a_webhook_receives_the_alert_as_json_or_slack_text(hook: tuple[str, list[Any]]) -> None:
    base, received = hook
    WebhookChannel(f"{base}/hook", allow=("127.0.0.1",)).send(ALERT)
    WebhookChannel(f"{base}/hook", slack=True, allow=("127.0.0.0/8",)).send(ALERT)
    assert received[0]["monitor"] == "bike-demand" and received[0]["details"] == {"share": 0.7}
    assert received[1] == {"text": "[WARNING] bike-demand: drift\n7 of 10 columns drifted"}


def test_failures_and_redirects_are_errors_not_followed(hook: tuple[str, list[Any]]) -> None:
    base, received = hook
    with pytest.raises(BackendUnavailable, match="500"):
        WebhookChannel(f"{base}/broken", allow=("127.0.0.1",)).send(ALERT)
    with pytest.raises(BackendUnavailable, match="302"):
        WebhookChannel(f"{base}/bounce", allow=("127.0.0.1",)).send(ALERT)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/x", "http://192.168.0.1/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x",
    "http://0.0.0.0/x",
])
def test_internal_targets_are_refused_unless_allowed(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_ALERT_ALLOW_HOSTS", raising=False)
    with pytest.raises(InvalidArgument, match="internal address") as err:
        check_outbound_url(url)
    assert err.value.field == "url"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "http:///nohost", "http://user:pw@example.com/"])
def test_other_schemes_and_shapes_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument):
        check_outbound_url(url, allow=())


def test_the_allow_list_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ALERT_ALLOW_HOSTS", "localhost, 10.0.0.0/8")
    check_outbound_url("http://localhost:8080/x")
    check_outbound_url("http://10.9.9.9/x")
    with pytest.raises(InvalidArgument):
        check_outbound_url("http://192.168.1.1/x")


def test_log_channel_and_parsing(tmp_path: Path) -> None:
    channel = parse_channel(f"log={tmp_path / 'a' / 'alerts.jsonl'}")
    assert isinstance(channel, LogChannel)
    channel.send(ALERT)
    channel.send(ALERT)
    lines = (tmp_path / "a" / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["title"] == "drift"
    with pytest.raises(InvalidArgument, match="unknown alert channel"):
        parse_channel("pager=123")
    with pytest.raises(InvalidArgument, match="needs a URL"):
        parse_channel("webhook=")
    with pytest.raises(InvalidArgument, match="internal"):
        parse_channel("webhook=http://127.0.0.1/x")
