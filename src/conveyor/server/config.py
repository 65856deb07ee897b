"""Server settings, resolved once from the command line and passed down."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field

#: The environment variable ``conveyor server --workers N`` hands the config through.
CONFIG_ENV = "CONVEYOR_SERVER_CONFIG"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) only accepts connections from this machine."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app needs; built by ``conveyor server`` or by tests.

    Args:
        backend: metadata store URI (``sqlite:///…``, ``postgresql://…``).
        artifacts: artifact store URI (a folder, ``file://``, ``s3://``).
        host: the bind address; a non-loopback address turns auth on.
        auth: ``True`` requires a bearer token on every route but the allow-list.
        max_body: largest JSON request body in bytes (larger: 413).
        max_upload: largest artifact upload in bytes (0: no limit).
        allowed_hosts: Host header values accepted (empty: loopback names when bound
            to loopback, anything otherwise); guards against DNS rebinding.
        cors_origins: origins allowed to call from a browser (empty: CORS off).
        key_retention: seconds an idempotency key is kept (at least an hour).
        prune_every: seconds between two prunes of old idempotency keys (0: never).
        presign: hand out presigned URLs for direct uploads when the artifact store is S3.
        presign_expiry: seconds a presigned upload URL stays valid.
        gated_aliases: aliases that only an owner may move when the model declares a gate
            (an editor's client-side verdict is not trusted for them).
        upload_expiry_days: staged direct uploads (``uploads/``) older than this are expired by
            the bucket's lifecycle rule and swept by the server (0: never).
        sweep_every: seconds between two sweeps of stale staged uploads (0: never).
    """

    backend: str
    artifacts: str
    host: str = "127.0.0.1"
    port: int = 7007
    auth: bool = False
    max_body: int = 16 * 1024 * 1024
    max_upload: int = 0
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    workers: int = 1
    key_retention: float = 24 * 3600
    prune_every: float = 3600
    presign: bool = True
    presign_expiry: int = 3600
    gated_aliases: tuple[str, ...] = ("champion",)
    upload_expiry_days: int = 1
    sweep_every: float = 3600
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def auth_required(self) -> bool:
        """Auth is off only on a loopback bind without ``--auth``."""
        return self.auth or not is_loopback(self.host)

    @property
    def host_allow_list(self) -> tuple[str, ...]:
        if self.allowed_hosts:
            return self.allowed_hosts
        return LOOPBACK_NAMES if is_loopback(self.host) else ("*",)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerConfig:
        raw = json.loads(os.environ[CONFIG_ENV])
        raw["allowed_hosts"] = tuple(raw.get("allowed_hosts") or ())
        raw["cors_origins"] = tuple(raw.get("cors_origins") or ())
        raw["gated_aliases"] = tuple(raw.get("gated_aliases") or ())
        return cls(**raw)
