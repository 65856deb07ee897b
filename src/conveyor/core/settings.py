"""Settings: the catalogue of environment variables, read lazily and built once.

Nothing here runs at import. :func:`get_settings` builds a :class:`Settings`
from the environment the first time it is called and returns the same object
afterwards; :func:`reset_settings` forgets it (tests, ``conveyor.configure``).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from conveyor.core.errors import InvalidArgument

#: Every environment variable Conveyor reads, with what it means.
ENVIRONMENT: dict[str, str] = {
    "CONVEYOR_HOME": "Folder for the embedded store and artifacts (default ~/.conveyor).",
    "CONVEYOR_URI": "Metadata store URI: sqlite:///path.db, postgresql://... or a server, "
    "http(s)://host:port (default sqlite under CONVEYOR_HOME).",
    "CONVEYOR_ARTIFACTS": "Artifact store URI: a folder, file:///path, s3://bucket/prefix or a "
    "server (default CONVEYOR_HOME/artifacts; the server itself when CONVEYOR_URI is http(s)).",
    "CONVEYOR_TOKEN": "API token sent to a Conveyor server (conveyor tokens create).",
    "CONVEYOR_HTTP_TIMEOUT": "Seconds before one request to a server times out (default 30).",
    "CONVEYOR_HTTP_RETRY_SECONDS": "Seconds a client keeps retrying a request the server did "
    "not answer (connection errors, 5xx) before it gives up (default 60).",
    "CONVEYOR_PROJECT": "Project used when none is set in code (default 'default').",
    "CONVEYOR_S3_ENDPOINT_URL": "Endpoint of an S3-compatible server (MinIO, moto, Ceph...).",
    "CONVEYOR_FLUSH_INTERVAL": "Seconds between background metric flushes (default 1.0).",
    "CONVEYOR_FLUSH_SIZE": "Buffered metric points that trigger an early flush (default 20000).",
    "CONVEYOR_HEARTBEAT_INTERVAL": "Seconds between run heartbeats (default 10).",
    "CONVEYOR_HEARTBEAT_TIMEOUT": "Seconds without a heartbeat after which a RUNNING run "
    "is marked KILLED (default 60).",
    "CONVEYOR_SYSTEM_METRICS": "1 to sample CPU and memory into every run (default 0).",
    "CONVEYOR_SYSTEM_METRICS_INTERVAL": "Seconds between system metric samples (default 10).",
    "CONVEYOR_ALERT_ALLOW_HOSTS": "Comma-separated hosts, addresses or CIDRs that alert webhooks "
    "may reach although they are internal (default: none).",
}


def _default_home() -> Path:
    return Path(os.environ.get("CONVEYOR_HOME") or Path.home() / ".conveyor").expanduser()


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number", field=name) from None
    if not math.isfinite(value):
        raise InvalidArgument(f"{name}={raw!r} must be a finite number", field=name)
    if value < minimum:
        raise InvalidArgument(f"{name}={raw!r} must be at least {minimum}", field=name)
    return value


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved to concrete values."""

    home: Path
    metadata_uri: str
    artifacts_uri: str
    project: str = "default"
    s3_endpoint_url: str | None = None
    flush_interval: float = 1.0
    flush_size: int = 20_000
    heartbeat_interval: float = 10.0
    heartbeat_timeout: float = 60.0
    system_metrics: bool = False
    system_metrics_interval: float = 10.0
    token: str | None = field(default=None, repr=False)
    http_timeout: float = 30.0
    http_retry_seconds: float = 60.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        home = _default_home()
        metadata_uri = os.environ.get("CONVEYOR_URI") or f"sqlite:///{home / 'conveyor.db'}"
        served = metadata_uri.split("://", 1)[0].lower() in ("http", "https")
        return cls(
            home=home,
            metadata_uri=metadata_uri,
            artifacts_uri=os.environ.get("CONVEYOR_ARTIFACTS")
            or (metadata_uri if served else str(home / "artifacts")),
            project=os.environ.get("CONVEYOR_PROJECT") or "default",
            s3_endpoint_url=os.environ.get("CONVEYOR_S3_ENDPOINT_URL")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL"),
            flush_interval=_float("CONVEYOR_FLUSH_INTERVAL", 1.0, 0.001),
            flush_size=int(_float("CONVEYOR_FLUSH_SIZE", 20_000, 1)),
            heartbeat_interval=_float("CONVEYOR_HEARTBEAT_INTERVAL", 10.0, 0.01),
            heartbeat_timeout=_float("CONVEYOR_HEARTBEAT_TIMEOUT", 60.0, 0.05),
            system_metrics=_flag("CONVEYOR_SYSTEM_METRICS"),
            system_metrics_interval=_float("CONVEYOR_SYSTEM_METRICS_INTERVAL", 10.0, 0.01),
            token=os.environ.get("CONVEYOR_TOKEN") or None,
            http_timeout=_float("CONVEYOR_HTTP_TIMEOUT", 30.0, 0.1),
            http_retry_seconds=_float("CONVEYOR_HTTP_RETRY_SECONDS", 60.0, 0.0),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced; unknown names are an error."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise InvalidArgument(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)  # type: ignore[arg-type]


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """The process settings, built from the environment on first use."""
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = Settings.from_env()
    return _settings


def set_settings(settings: Settings | None) -> None:
    """Replace the process settings (``None`` forgets them: re-read on next use)."""
    global _settings
    with _lock:
        _settings = settings


def reset_settings() -> None:
    set_settings(None)


def current_user() -> str:
    """The login name of this process, or "" where there is none (some containers).

    As ``getpass.getuser()``: the first of LOGNAME, USER, LNAME and USERNAME that
    is set, else the password entry of the process's uid. That look-up is
    remembered per uid: every run and audit event asks for it.
    """
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    return _login_of(os.getuid()) if hasattr(os, "getuid") else ""


@functools.lru_cache(maxsize=4)
def _login_of(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except Exception:
        return ""
