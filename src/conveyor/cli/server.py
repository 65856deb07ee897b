"""``conveyor server``: the tracking server (REST API, artifacts, auth, audit)."""

from __future__ import annotations

import os
from pathlib import Path

import click

MiB = 1024 * 1024


@click.command("server")
@click.option("--backend", default=None, help="Metadata store URI (default: CONVEYOR_URI, else SQLite under CONVEYOR_HOME).")
@click.option("--artifacts", default=None, help="Artifact store URI: folder, file:// or s3:// (default: CONVEYOR_ARTIFACTS).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address; anything but loopback turns auth on.")
@click.option("--port", default=7007, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--auth", is_flag=True, help="Require a token on every request (always on for non-loopback binds).")
@click.option("--max-body", default=16 * MiB, show_default=True, type=click.IntRange(1024), help="Largest JSON body in bytes.")
@click.option("--max-upload", default=0, show_default=True, type=click.IntRange(0), help="Largest artifact upload in bytes (0: no limit).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, help="Host header the server answers to (repeatable).")
@click.option("--cors-origin", "cors_origins", multiple=True, help="Browser origin allowed to call the API (repeatable).")
@click.option("--keep-keys", default="1d", show_default=True,
              help="How long idempotency keys are kept (at least 1h); older ones are pruned hourly.")
@click.option("--presign/--no-presign", default=True, show_default=True,
              help="With an s3:// artifact store, let clients upload straight to S3 through presigned URLs.")
@click.option("--gated-alias", "gated_aliases", multiple=True, default=("champion",), show_default=True,
              help="Alias only an owner may move when the model declares a gate (repeatable).")
@click.option("--expire-uploads", "upload_expiry_days", default=1, show_default=True, type=click.IntRange(0, 3650),
              help="Days after which unfinished direct uploads (uploads/) are expired and swept (0: never).")
@click.option("--agent", "with_agent", is_flag=True,
              help="Also run the automation agent in this process (leader-elected: safe on several servers).")
def command(
    backend: str | None, artifacts: str | None, host: str, port: int, workers: int, auth: bool,
    max_body: int, max_upload: int, allowed_hosts: tuple[str, ...], cors_origins: tuple[str, ...],
    keep_keys: str, presign: bool, gated_aliases: tuple[str, ...], upload_expiry_days: int, with_agent: bool,
) -> None:
    """Serve the REST API on HOST:PORT over a database and an artifact store."""
    import uvicorn

    from conveyor.cli.db import parse_age
    from conveyor.core.errors import InvalidArgument
    from conveyor.core.settings import get_settings
    from conveyor.server.app import create_app
    from conveyor.server.config import CONFIG_ENV, ServerConfig
    from conveyor.stores.metadata.base import open_metadata_store

    key_retention = parse_age(keep_keys) / 1000
    if key_retention < 3600:
        raise InvalidArgument(f"--keep-keys {keep_keys!r}: keys must be kept at least an hour (1h)", field="keep_keys")
    settings = get_settings()
    backend = backend or settings.metadata_uri
    if artifacts is None:  # a client's settings may point at a server; the server itself stores locally
        served = settings.artifacts_uri.startswith(("http://", "https://"))
        artifacts = str(settings.home / "artifacts") if served else settings.artifacts_uri
    config = ServerConfig(
        backend=backend, artifacts=artifacts, host=host, port=port, auth=auth, max_body=max_body,
        max_upload=max_upload, allowed_hosts=allowed_hosts, cors_origins=cors_origins, workers=workers,
        key_retention=key_retention, presign=presign, gated_aliases=gated_aliases,
        upload_expiry_days=upload_expiry_days,
    )
    store = open_metadata_store(backend)  # migrate once here, not in every worker
    try:
        if config.auth_required and not store.governance.list_principals():  # type: ignore[attr-defined]
            click.echo("auth is on and no user exists yet: create the first admin with\n"
                       "  conveyor users create NAME --admin   (prints its token once)", err=True)
    finally:
        store.close()
    if with_agent:
        _start_agent(backend, artifacts, settings.home)
    mode = "auth ON" if config.auth_required else "auth off (loopback only)"
    click.echo(f"conveyor server on http://{host}:{port}  ({mode}; docs at /api/v1/docs)", err=True)
    if workers == 1:
        uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
    else:
        os.environ[CONFIG_ENV] = config.to_env()
        uvicorn.run("conveyor.server.app:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="warning")


def _start_agent(backend: str, artifacts: str, home: Path) -> None:
    """The automation agent on a daemon thread, over its own connections to the same stores."""
    import logging
    import threading

    from conveyor.automation.agent import Agent
    from conveyor.stores.artifacts.cas import open_content_store
    from conveyor.stores.metadata.base import open_metadata_store

    logging.getLogger("conveyor.automation").setLevel(logging.INFO)
    agent = Agent(open_metadata_store(backend), open_content_store(artifacts), home)
    threading.Thread(target=agent.run_forever, name="conveyor-agent", daemon=True).start()
    click.echo(f"automation agent running in this process as {agent.holder}", err=True)
