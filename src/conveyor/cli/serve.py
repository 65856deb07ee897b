"""``conveyor serve`` and ``conveyor predict``: the prediction service and batch scoring."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from conveyor.serving.config import ServeConfig


@click.command("serve")
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--project", default=None, help="Project of the model (default: the current one).")
@click.option("--canary", default=None, help="A model URI that answers --canary-weight of the requests.")
@click.option("--canary-weight", default=None, type=click.FloatRange(0, 1),
              help="The canary's share of requests (default: follow the weight an automation sets on the model).")
@click.option("--shadow", default=None, help="A model URI that gets a copy of each request (answers only logged).")
@click.option("--max-batch-size", default=64, show_default=True, type=int)
@click.option("--max-wait-ms", default=0.0, show_default=True, type=float)
@click.option("--max-rows", default=10_000, show_default=True, type=int, help="Rows per request.")
@click.option("--rate-limit", default=0.0, show_default=True, type=float, help="Requests/s per client; 0: off.")
@click.option("--timeout", default=10.0, show_default=True, type=float, help="Seconds a request may wait.")
@click.option("--no-log", is_flag=True, help="Do not write the prediction log.")
@click.option("--poll", default=5.0, show_default=True, type=float, help="Seconds between alias checks.")
@click.option("--auth", is_flag=True,
              help="Require a token of the tracking server (always on for non-loopback binds).")
@click.option("--auth-cache", "auth_cache", default=5.0, show_default=True, type=float,
              help="Seconds a token check is reused (a revoked token stops working within this).")
@click.option("--outlier-monitor", default=None,
              help="The monitor whose outlier detector flags logged rows (default: the best fitting one).")
@click.option("--no-outliers", is_flag=True, help="Do not score logged rows for outliers.")
def serve_command(model_uri: str, host: str, port: int, workers: int, project: str | None, canary: str | None,
                  canary_weight: float | None, shadow: str | None, max_batch_size: int, max_wait_ms: float,
                  max_rows: int, rate_limit: float, timeout: float, no_log: bool, poll: float, auth: bool,
                  auth_cache: float, outlier_monitor: str | None, no_outliers: bool) -> None:
    """Serve MODEL_URI (models:/NAME@ALIAS follows the alias) over HTTP."""
    import uvicorn

    from conveyor.registry.service import parse_model_uri
    from conveyor.server.config import is_loopback
    from conveyor.serving.config import CONFIG_ENV, ServeConfig
    from conveyor.tracking import fluent

    parse_model_uri(model_uri)
    config = ServeConfig(
        model=model_uri, canary=canary, canary_weight=canary_weight, shadow=shadow,
        project=project or fluent.get_project(), max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
        max_rows=max_rows, rate_limit=rate_limit, timeout=timeout, log_predictions=not no_log, poll=poll,
        auth=auth or not is_loopback(host), auth_cache_seconds=auth_cache, outliers=not no_outliers,
        outlier_monitor=outlier_monitor,
    )
    if config.auth:
        _check_auth_backend(config)
    os.environ[CONFIG_ENV] = config.to_json()  # each worker process builds its app from it
    mode = "auth ON" if config.auth else "auth off (loopback only)"
    click.echo(f"serving {model_uri} on http://{host}:{port} ({workers} worker(s), {mode})", err=True)
    # uvicorn picks httptools and uvloop when they are installed (the server extra has them).
    uvicorn.run("conveyor.serving.app:from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False)


def _check_auth_backend(config: ServeConfig) -> None:
    """Fail before binding if tokens cannot be checked; say so when there is nobody to log in yet."""
    import conveyor as cv
    from conveyor.serving.auth import TokenGate

    registry = cv.models.registry(config.project)
    store = registry.store
    TokenGate.for_store(store, registry.project)  # raises when it cannot check tokens
    governance: Any = getattr(store, "governance", None)
    if callable(getattr(governance, "authenticate", None)) and not governance.list_principals():
        click.echo("auth is on and no user exists yet: create one with\n"
                       "  conveyor users create NAME   (prints its token once)\n"
                       f"  conveyor users grant NAME --project {registry.project} --role viewer",
                       err=True)


@click.command("predict")
@click.argument("model_uri")
@click.option("--input", "src", required=True, type=click.Path(),
              help="A .parquet or .csv file (with --ray also a folder of .parquet files).")
@click.option("--output", "dest", required=True, type=click.Path(),
              help="The .parquet file to write (with --ray a name without .parquet is a folder, one file per block).")
@click.option("--chunk-rows", default=100_000, show_default=True, type=int)
@click.option("--project", default=None)
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ray://HOST:PORT]",
              help="Score on Ray: alone, local Ray (or RAY_ADDRESS); or a ray:// cluster address.")
@click.option("--ray-actors", default=None, type=click.IntRange(1), help="Ray actors scoring (default: CPUs - 1).")
def predict_command(model_uri: str, src: str, dest: str, chunk_rows: int, project: str | None,
                    ray_address: str | None, ray_actors: int | None) -> None:
    """Score a file with MODEL_URI, chunk by chunk, into a Parquet file (or on Ray with --ray)."""
    import conveyor as cv

    registry = cv.models.registry(project)
    if ray_address is not None:
        from conveyor.serving.ray_batch import score_on_ray

        mv = registry.resolve(model_uri)
        meta = {"name": mv.name, "version": mv.version, "uri": mv.uri}
        rows = score_on_ray(ray_address, registry.content, mv.package_digest, src, dest, metadata=meta,
                            chunk_rows=chunk_rows, actors=ray_actors)
        click.echo(f"{rows:,} rows scored on Ray by {mv.uri} into {dest}")
        return
    if ray_actors is not None:
        raise click.UsageError("--ray-actors needs --ray")
    from conveyor.serving.batch import score_file

    model = registry.load(model_uri)
    rows = score_file(model, src, dest, chunk_rows=chunk_rows)
    click.echo(f"{rows:,} rows scored by {model.metadata.get('uri', model_uri)} into {dest}")
