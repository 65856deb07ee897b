"""Alert channels: a webhook (plain JSON or Slack-compatible) and a local JSON-lines log.

Webhook targets are checked against server-side request forgery before every
send: only ``http``/``https``, and the host must not resolve to a loopback,
private, link-local (cloud metadata), multicast, reserved or unspecified
address, unless the admin allowed that host or network explicitly
(``CONVEYOR_ALERT_ALLOW_HOSTS``, comma-separated names, addresses or CIDRs).
Redirects are never followed, so an allowed public URL cannot bounce the
request inward.

Channels are written as text where monitors are configured::

    webhook=https://hooks.example/abc     JSON body: the alert as an object
    slack=https://hooks.slack.com/...     JSON body {"text": ...} Slack accepts
    log=/var/log/conveyor-alerts.jsonl    one JSON object per line, appended
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from conveyor.core.errors import BackendUnavailable, InvalidArgument

ALLOW_ENV = "CONVEYOR_ALERT_ALLOW_HOSTS"


@dataclass(frozen=True)
class Alert:
    monitor: str
    title: str
    summary: str
    severity: str = "warning"  # warning | critical | resolved
    at: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return f"[{self.severity.upper()}] {self.monitor}: {self.title}\n{self.summary}"


class Channel(Protocol):
    def send(self, alert: Alert) -> None: ...


def allowed_targets() -> tuple[str, ...]:
    raw = os.environ.get(ALLOW_ENV, "")
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
    )


def _allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: Sequence[str]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_outbound_url(url: str, allow: Sequence[str] | None = None) -> None:
    """Refuse a URL that is not http(s) or that reaches an internal address."""
    allow = allowed_targets() if allow is None else allow
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(f"alert URL must be http or https, not {parts.scheme or 'empty'!r}", field="url")
    host = parts.hostname
    if not host:
        raise InvalidArgument(f"alert URL {url!r} has no host", field="url")
    if parts.username or parts.password:
        raise InvalidArgument("alert URL must not carry credentials in the host part", field="url")
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidArgument(f"alert URL host {host!r} does not resolve: {exc.strerror}", field="url") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _is_internal(address) and not _allowed(host, address, allow):
            raise InvalidArgument(
                f"alert URL host {host!r} resolves to the internal address {address}; "
                f"an admin can allow it with {ALLOW_ENV}",
                field="url",
            )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx becomes an error instead of a second, unchecked request


@dataclass
class WebhookChannel:
    url: str
    slack: bool = False
    timeout: float = 5.0
    allow: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_outbound_url(self.url, self.allow)

    def send(self, alert: Alert) -> None:
        check_outbound_url(self.url, self.allow)  # again: DNS may have changed since
        body = {"text": alert.text()} if self.slack else asdict(alert)
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), method="POST",
            headers={"content-type": "application/json", "user-agent": "conveyor-alerts"},
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                response.read(1024)
        except urllib.error.HTTPError as exc:
            raise BackendUnavailable(f"the webhook answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendUnavailable(f"could not reach the webhook: {reason}") from None


@dataclass
class LogChannel:
    path: Path

    def send(self, alert: Alert) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(alert), sort_keys=True) + "\n")


def parse_channel(spec: str, *, default_log: Path | None = None) -> Channel:
    """``webhook=URL``, ``slack=URL``, ``log=PATH`` or ``log`` (the default log file)."""
    kind, _, target = spec.partition("=")
    kind = kind.strip().lower()
    if kind in ("webhook", "slack"):
        if not target:
            raise InvalidArgument(f"alert channel {spec!r} needs a URL: {kind}=https://...", field="alert")
        return WebhookChannel(target, slack=kind == "slack")
    if kind == "log":
        path = Path(target).expanduser() if target else default_log
        if path is None:
            raise InvalidArgument("alert channel 'log' needs a path: log=/path/alerts.jsonl", field="alert")
        return LogChannel(path)
    raise InvalidArgument(f"unknown alert channel {kind!r}; use webhook=, slack= or log=", field="alert")
