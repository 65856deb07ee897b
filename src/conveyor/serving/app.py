"""The prediction service: an ASGI app (Starlette) over live model versions.

Routes::

    POST /v1/models/{name}/predict    records | columns+data | instances -> predictions
    POST /invocations                 the MLflow scoring shapes, for existing clients
    POST /v1/models/{name}/feedback   ground-truth labels by request id
    GET  /v1/models/{name}            version live now, signature, lineage summary
    GET  /health                      the process answers
    GET  /ready                       a model is loaded (503 until then)
    GET  /metrics                     Prometheus text

Bad input never reaches the model: 400 for a body that is not JSON or not a
known shape, 413 for too many bytes or rows, 422 with every signature problem,
429 with ``Retry-After`` past the client's rate, 503 when the queue is full or a
request waited too long. A model that raises answers 500 with the request id
and the error class only; other requests in the same batch are still answered.
Such failures inside the service (500, 503) are also written to the prediction
log as error rows, which is where the automation agent reads error rates.

The two prediction routes run on raw ASGI (:mod:`conveyor.serving.asgi`); the
others, and the lifespan, on Starlette. With auth on (:mod:`conveyor.serving.auth`)
every route but ``/health`` and ``/ready`` needs a token of the tracking server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from conveyor.core.errors import (
    ConveyorError,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
)
from conveyor.core.ids import new_id
from conveyor.serving import inputs
from conveyor.serving.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    dumps,
    error_payload,
    failure_body,
    headers_of,
    read_body,
    send_json,
)
from conveyor.serving.auth import TokenGate
from conveyor.serving.batching import Overloaded
from conveyor.serving.config import CANARY_WEIGHT_TAG, ServeConfig
from conveyor.serving.limits import RateLimiter
from conveyor.serving.live import LiveModel
from conveyor.serving.telemetry import Telemetry
from conveyor.serving.variants import Job, PredictionFailed, Variant, pick_canary

log = logging.getLogger(__name__)
_JSON = orjson.OPT_SERIALIZE_NUMPY


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=_JSON), status_code=status, media_type="application/json",
                    headers=headers)


def _error(exc: ConveyorError, request_id: str | None = None) -> Response:
    headers = {"www-authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return Response(error_payload(exc, request_id), status_code=exc.http_status, media_type="application/json",
                    headers=headers)


@dataclass
class Service:
    """Everything a serving process holds, created in the lifespan (no module globals)."""

    config: ServeConfig
    primary: Variant
    canary: Variant | None = None
    shadow: Variant | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    limiter: RateLimiter | None = None
    writer: Any = None  # PredictionLogWriter
    prediction_log: Any = None
    gate: TokenGate | None = None  # auth on: the tracking server's tokens and roles
    outliers: Any = None  # serving.outliers.Outliers: scores the logged rows
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.primary.live.name

    @property
    def canary_weight(self) -> float:
        """The canary's share now: the configured one, else the model tag an automation sets."""
        if self.config.canary_weight is not None:
            return self.config.canary_weight
        return (self.canary.live.weight or 0.0) if self.canary is not None else 0.0

    def variants(self) -> list[Variant]:
        return [v for v in (self.primary, self.canary, self.shadow) if v is not None]

    async def authorize(self, authorization: bytes | str | None, role: str) -> None:
        """401/403 unless auth is off or the caller holds ``role`` on the model's project."""
        if self.gate is not None:
            await self.gate.require(authorization, role)

    def record_error(self, variant: Variant | None, request_id: str, error: BaseException, arrived: float,
                     version: int | None = None) -> None:
        """A request that failed inside the service becomes an error row of the prediction log."""
        if self.writer is None or variant is None:
            return
        if version is None and variant.loaded is not None:
            version = variant.loaded.version
        self.writer.add_columns(self.name, variant.error_columns(request_id, error, arrived, version))


def build_service(config: ServeConfig, registry: Any) -> Service:
    telemetry = Telemetry()
    writer = prediction_log = None
    if config.log_predictions:
        from conveyor.stores.predictions import PredictionLog, PredictionLogWriter

        prediction_log = PredictionLog(registry.content.backend)
        writer = PredictionLogWriter(prediction_log)

    def variant(role: str, uri: str) -> Variant:
        follows_weight = role == "canary" and config.canary_weight is None
        live = LiveModel(registry, uri, poll=config.poll, weight_tag=CANARY_WEIGHT_TAG if follows_weight else None)
        sink = None
        if writer is not None:
            sink = lambda _role, columns: writer.add_columns(live.name, columns)  # noqa: E731
        return Variant(role, live, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms,
                       max_queue_rows=config.max_queue_rows, on_batch=telemetry.batch, log=sink)

    gate = None
    if config.auth:
        gate = TokenGate.for_store(registry.store, config.project or registry.project,
                                   cache_seconds=config.auth_cache_seconds)
    service = Service(
        config=config,
        gate=gate,
        primary=variant("primary", config.model),
        canary=variant("canary", config.canary) if config.canary else None,
        shadow=variant("shadow", config.shadow) if config.shadow else None,
        telemetry=telemetry,
        limiter=RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit else None,
        writer=writer,
        prediction_log=prediction_log,
    )
    if writer is not None and config.outliers:
        from conveyor.serving.outliers import Outliers

        service.outliers = Outliers.of(registry, [v.live for v in service.variants()], monitor=config.outlier_monitor,
                                       poll=config.poll, counted=telemetry.outliers)
        writer.annotate = service.outliers.annotate
    return service


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body has {declared} bytes; at most {limit} are accepted", field="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _client_key(headers: dict[bytes, bytes], scope: Scope) -> str:
    auth = headers.get(b"authorization")
    if auth:
        return auth.decode("latin-1")
    client = scope.get("client")
    return client[0] if client else "unknown"


async def predict_asgi(service: Service, scope: Scope, receive: Receive, send: Send, *,
                       name: str | None) -> None:
    """``POST /v1/models/{name}/predict`` (``name`` given) or ``POST /invocations`` (``name`` None)."""
    started = time.perf_counter()
    mlflow = name is None
    headers = headers_of(scope)
    given_id = headers.get(b"x-request-id")
    request_id = given_id.decode("latin-1") if given_id else new_id()
    route = "invocations" if mlflow else "predict"
    status = 200
    variant: Variant | None = None
    job: Job | None = None
    failure: bytes | None = None
    extra: list[tuple[bytes, bytes]] | None = None
    try:
        if name is not None and name != service.name:
            raise NotFound(f"this service serves {service.name!r}, not {name!r}", field="name")
        if service.gate is not None:
            await service.authorize(headers.get(b"authorization"), "viewer")
        if service.limiter is not None:
            wait = service.limiter.check(_client_key(headers, scope))
            if wait:
                status = 429
                failure = failure_body("RATE_LIMITED", "too many requests; slow down", request_id=request_id)
                extra = [(b"retry-after", service.limiter.retry_after(wait).encode())]
                return
        body = await read_body(receive, headers, service.config.max_body_bytes)
        rows = inputs.parse(body, max_rows=service.config.max_rows, mlflow=mlflow)
        variant = service.primary
        if service.canary is not None:
            key = headers.get(b"x-client-key")
            if pick_canary(key.decode("latin-1") if key else request_id, service.canary_weight):
                variant = service.canary
        if variant.loaded is None and variant is service.canary:
            variant = service.primary  # no challenger to try yet (alias unset or not loadable): the primary answers
        if variant.loaded is None:
            raise Overloaded(f"{variant.live.uri} is not loaded yet")
        job = Job(rows, request_id, started)
        async with asyncio.timeout(service.config.timeout):
            version, output = await variant.batcher.submit(job)
    except TimeoutError as exc:
        status = 503
        failure = failure_body("TIMEOUT", f"no prediction within {service.config.timeout} s", request_id=request_id)
        if variant is not None and job is not None and variant.abandon(job):  # not if its answer made it into the log meanwhile
            service.record_error(variant, request_id, exc, started)
    except PredictionFailed as exc:  # the model raised on these rows
        status = 500
        log.warning("request %s: the model raised %s: %s", request_id, type(exc.error).__name__, exc.error)
        failure = failure_body("PREDICTION_FAILED", f"the model raised {type(exc.error).__name__}",
                               request_id=request_id)
        service.record_error(variant, request_id, exc.error, started, exc.version)
    except ConveyorError as exc:
        status = exc.http_status
        failure = error_payload(exc, request_id)
        if isinstance(exc, Unauthenticated):
            extra = [(b"www-authenticate", b"Bearer")]
        if status >= 500:  # the service could not answer (queue full, not loaded): not the client's fault
            service.record_error(variant, request_id, exc, started)
    except ClientGone:
        status = 499
        return
    except Exception as exc:  # anything else that broke while answering
        status = 500
        log.warning("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
        failure = failure_body("PREDICTION_FAILED", f"the model raised {type(exc).__name__}", request_id=request_id)
        service.record_error(variant, request_id, exc, started)
    finally:
        service.telemetry.request(service.name, route, status, time.perf_counter() - started)
        if failure is not None:
            await send_json(send, status, failure, extra)
    if failure is not None:
        return
    service.telemetry.answered(service.name, version)
    if service.shadow is not None and service.shadow.loaded is not None:
        task = asyncio.get_running_loop().create_task(_mirror(service, Job(rows, request_id, started)))
        service.background.add(task)
        task.add_done_callback(service.background.discard)
    answer = {"predictions": output} if mlflow else {
        "predictions": output, "model": service.name, "version": version, "request_id": request_id}
    await send_json(send, 200, dumps(answer), [(b"x-model-version", str(version).encode()),
                                               (b"x-request-id", request_id.encode("latin-1"))])


async def _mirror(service: Service, job: Job) -> None:
    """Send a copy to the shadow; its answer is logged by its variant, never returned."""
    shadow = service.shadow
    assert shadow is not None
    try:
        async with asyncio.timeout(service.config.timeout):
            version, _ = await shadow.batcher.submit(job)
    except TimeoutError as exc:
        if shadow.abandon(job):
            service.record_error(shadow, job.request_id, exc, job.arrived)
        return
    except PredictionFailed as exc:
        log.info("shadow %s failed on request %s: %s", shadow.live.uri, job.request_id, type(exc.error).__name__)
        service.record_error(shadow, job.request_id, exc.error, job.arrived, exc.version)
        return
    except Exception as exc:
        log.info("shadow %s failed on request %s: %s", shadow.live.uri, job.request_id, type(exc).__name__)
        if not (isinstance(exc, ConveyorError) and exc.http_status < 500):
            service.record_error(shadow, job.request_id, exc, job.arrived)
        return
    service.telemetry.answered(service.name, f"{version}-shadow")


async def feedback(request: Request) -> Response:
    """``{"request_id": "...", "label": 118}`` or ``{"labels": [{"request_id", "label"}, ...]}``."""
    service = _service(request)
    try:
        if request.path_params["name"] != service.name:
            raise NotFound(f"this service serves {service.name!r}", field="name")
        await service.authorize(request.headers.get("authorization"), "editor")
        payload = inputs.loads(await _read_body(request, service.config.max_body_bytes))
        if not isinstance(payload, dict):
            raise InvalidArgument("the body must be a JSON object", field="body")
        items = payload.get("labels", [payload] if "request_id" in payload else None)
        if not isinstance(items, list) or not items:
            raise InvalidArgument("give request_id and label, or labels: [{request_id, label}, ...]",
                                  field="labels")
        labels = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("request_id"), str) or "label" not in item:
                raise InvalidArgument(f"label {i} needs a request_id (text) and a label", field="labels")
            labels.append((item["request_id"], item["label"]))
        if service.prediction_log is None:
            raise InvalidArgument("this service does not log predictions (--no-log)", field="labels")
        await asyncio.get_running_loop().run_in_executor(None, service.prediction_log.add_feedback,
                                                         service.name, labels)
    except ConveyorError as exc:
        return _error(exc)
    return _json({"accepted": len(labels)})


async def metadata(request: Request) -> Response:
    service = _service(request)
    if request.path_params["name"] != service.name:
        return _error(NotFound(f"this service serves {service.name!r}", field="name"))
    try:
        await service.authorize(request.headers.get("authorization"), "viewer")
    except ConveyorError as exc:
        return _error(exc)
    out: dict[str, Any] = {"name": service.name}
    for variant in service.variants():
        loaded = variant.loaded
        sig = loaded.model.signature if loaded else None
        out[variant.role] = {
            "uri": variant.live.uri,
            "version": loaded.version if loaded else None,
            "follows": variant.live.follows,
            "signature": sig.to_dict() if sig is not None else None,
            "run_id": loaded.run_id if loaded else None,
            "datasets": loaded.info.get("datasets", {}) if loaded else {},
            "code": loaded.info.get("code", {}) if loaded else {},
            "error": variant.live.last_error,
        }
    out["version"] = out["primary"]["version"]
    if service.outliers is not None:
        out["outliers"] = {name: watch.describe() for name, watch in service.outliers.watches.items()}
    if service.canary is not None:
        out["canary_weight"] = service.canary_weight
        out["canary_weight_from"] = "config" if service.config.canary_weight is not None else CANARY_WEIGHT_TAG
    return _json(out)


async def health(request: Request) -> Response:
    return _json({"status": "ok"})


async def ready(request: Request) -> Response:
    service = _service(request)
    missing = [v.live.uri for v in service.variants() if not v.live.ready]
    if missing:
        return _json({"ready": False, "waiting_for": missing,
                      "errors": [v.live.last_error for v in service.variants() if v.live.last_error]}, 503)
    return _json({"ready": True, "version": service.primary.loaded.version if service.primary.loaded else None})


async def metrics(request: Request) -> Response:
    service = _service(request)
    try:
        await service.authorize(request.headers.get("authorization"), "viewer")
    except ConveyorError as exc:
        return _error(exc)
    for variant in service.variants():
        if variant.loaded is not None and variant.role == "primary":
            service.telemetry.live_version[service.name] = str(variant.loaded.version)
    return PlainTextResponse(service.telemetry.render(), media_type="text/plain; version=0.0.4")


async def _raw_only(request: Request) -> Response:
    service = _service(request)
    name = request.path_params.get("name")
    return _error(NotFound(f"this service serves {service.name!r}, not {name!r}", field="name"))


class ServingApp:
    """The ASGI app: the prediction routes on raw ASGI, everything else (and the lifespan) on Starlette."""

    def __init__(self, service: Service, fallback: Starlette) -> None:
        self.service = service
        self.fallback = fallback
        self.state = fallback.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path == "/invocations":
                await predict_asgi(self.service, scope, receive, send, name=None)
                return
            if path.startswith("/v1/models/") and path.endswith("/predict"):
                name = path[len("/v1/models/"):-len("/predict")]
                if name and "/" not in name:
                    await predict_asgi(self.service, scope, receive, send, name=name)
                    return
        await self.fallback(scope, receive, send)


def create_app(config: ServeConfig, registry: Any) -> ServingApp:
    """The ASGI app serving ``config.model`` from ``registry`` (a ``ModelRegistry``)."""
    service = build_service(config, registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        for variant in service.variants():
            await loop.run_in_executor(None, variant.live.refresh)  # refuses to be ready on failure
            variant.live.follow()
        if service.outliers is not None:  # after the versions: a detector is checked against their inputs
            await loop.run_in_executor(None, service.outliers.refresh)
            service.outliers.follow()
        app.state.service = service
        try:
            yield
        finally:
            if service.outliers is not None:
                service.outliers.stop()
            for variant in service.variants():
                variant.live.stop()
                await variant.batcher.close()
            if service.writer is not None:
                await loop.run_in_executor(None, service.writer.close)

    routes = [
        # POSTs to these two never get here (ServingApp answers them on raw ASGI); other methods get a 405.
        Route("/v1/models/{name}/predict", _raw_only, methods=["POST"]),
        Route("/invocations", _raw_only, methods=["POST"]),
        Route("/v1/models/{name}/feedback", feedback, methods=["POST"]),
        Route("/v1/models/{name}", metadata, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return ServingApp(service, app)


def from_environment() -> ServingApp:
    """The app of one ``conveyor serve`` worker, from the configuration the command left in the environment."""
    import os

    import conveyor as cv
    from conveyor.serving.config import CONFIG_ENV

    config = ServeConfig.from_json(os.environ[CONFIG_ENV])
    return create_app(config, cv.models.registry(config.project))
