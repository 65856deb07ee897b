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
    error_body,
)
from conveyor.core.ids import new_id
from conveyor.serving import inputs
from conveyor.serving.batching import Overloaded
from conveyor.serving.config import ServeConfig
from conveyor.serving.limits import RateLimiter
from conveyor.serving.live import LiveModel
from conveyor.serving.telemetry import Telemetry
from conveyor.serving.variants import Job, Variant, pick_canary

log = logging.getLogger(__name__)
_JSON = orjson.OPT_SERIALIZE_NUMPY


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=_JSON), status_code=status, media_type="application/json",
                    headers=headers)


def _failure(status: int, code: str, message: str, *, field: str | None = None,
             headers: dict[str, str] | None = None, **details: Any) -> Response:
    """The error shape every Conveyor HTTP face uses: ``{"error": {"code", "message", "field", ...}}``."""
    return _json(error_body(code, message, field, **details), status, headers)


def _error(exc: ConveyorError, request_id: str | None = None) -> Response:
    details: dict[str, Any] = {}
    problems = getattr(exc, "problems", None)
    if problems:
        details["problems"] = [{"column": c, "problem": p} for c, p in problems]
    if request_id:
        details["request_id"] = request_id
    return _failure(exc.http_status, exc.code, exc.message, field=exc.field, **details)


def _plain(output: Any) -> Any:
    """Model output as JSON-ready values (DataFrames as records)."""
    if hasattr(output, "to_dict") and hasattr(output, "columns"):
        return output.to_dict(orient="records")
    if hasattr(output, "tolist"):
        return output.tolist()
    return output


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
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.primary.live.name

    def variants(self) -> list[Variant]:
        return [v for v in (self.primary, self.canary, self.shadow) if v is not None]


def build_service(config: ServeConfig, registry: Any) -> Service:
    telemetry = Telemetry()
    writer = prediction_log = None
    if config.log_predictions:
        from conveyor.stores.predictions import PredictionLog, PredictionLogWriter

        prediction_log = PredictionLog(registry.content.backend)
        writer = PredictionLogWriter(prediction_log)

    def variant(role: str, uri: str) -> Variant:
        live = LiveModel(registry, uri, poll=config.poll)
        sink = None
        if writer is not None:
            sink = lambda _role, columns: writer.add_columns(live.name, columns)  # noqa: E731
        return Variant(role, live, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms,
                       max_queue_rows=config.max_queue_rows, on_batch=telemetry.batch, log=sink)

    return Service(
        config=config,
        primary=variant("primary", config.model),
        canary=variant("canary", config.canary) if config.canary else None,
        shadow=variant("shadow", config.shadow) if config.shadow else None,
        telemetry=telemetry,
        limiter=RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit else None,
        writer=writer,
        prediction_log=prediction_log,
    )


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


def _client_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth:
        return auth
    return request.client.host if request.client else "unknown"


async def _predict(request: Request, *, mlflow: bool) -> Response:
    service = _service(request)
    started = time.perf_counter()
    request_id = request.headers.get("x-request-id") or new_id()
    route = "invocations" if mlflow else "predict"
    status = 200
    try:
        if not mlflow and request.path_params["name"] != service.name:
            raise NotFound(f"this service serves {service.name!r}, not {request.path_params['name']!r}",
                           field="name")
        if service.limiter is not None:
            wait = service.limiter.check(_client_key(request))
            if wait:
                status = 429
                return _failure(429, "RATE_LIMITED", "too many requests; slow down", request_id=request_id,
                                headers={"retry-after": service.limiter.retry_after(wait)})
        body = await _read_body(request, service.config.max_body_bytes)
        rows = inputs.parse(body, max_rows=service.config.max_rows, mlflow=mlflow)
        use_canary = service.canary is not None and pick_canary(
            request.headers.get("x-client-key") or request_id, service.config.canary_weight)
        variant = service.canary if use_canary and service.canary is not None else service.primary
        if variant.loaded is None and variant is service.canary:
            variant = service.primary  # no challenger to try yet (alias unset or not loadable): the primary answers
        if variant.loaded is None:
            raise Overloaded(f"{variant.live.uri} is not loaded yet")
        job = Job(rows, request_id, started)
        version, output = await asyncio.wait_for(variant.batcher.submit(job), service.config.timeout)
    except TimeoutError:
        status = 503
        return _failure(503, "TIMEOUT", f"no prediction within {service.config.timeout} s", request_id=request_id)
    except ConveyorError as exc:
        status = exc.http_status
        return _error(exc, request_id)
    except Exception as exc:  # the model raised on these rows
        status = 500
        log.warning("request %s: the model raised %s: %s", request_id, type(exc).__name__, exc)
        return _failure(500, "PREDICTION_FAILED", f"the model raised {type(exc).__name__}", request_id=request_id)
    finally:
        service.telemetry.request(service.name, route, status, time.perf_counter() - started)
    service.telemetry.answered(service.name, version)
    if service.shadow is not None and service.shadow.loaded is not None:
        task = asyncio.get_running_loop().create_task(_mirror(service, Job(rows, request_id, started)))
        service.background.add(task)
        task.add_done_callback(service.background.discard)
    predictions = _plain(output)
    answer = {"predictions": predictions} if mlflow else {
        "predictions": predictions, "model": service.name, "version": version, "request_id": request_id}
    return _json(answer, headers={"x-model-version": str(version), "x-request-id": request_id})


async def _mirror(service: Service, job: Job) -> None:
    """Send a copy to the shadow; its answer is logged by its variant, never returned."""
    shadow = service.shadow
    assert shadow is not None
    try:
        version, _ = await asyncio.wait_for(shadow.batcher.submit(job), service.config.timeout)
    except Exception as exc:
        log.info("shadow %s failed on request %s: %s", shadow.live.uri, job.request_id, type(exc).__name__)
        return
    service.telemetry.answered(service.name, f"{version}-shadow")


async def predict(request: Request) -> Response:
    return await _predict(request, mlflow=False)


async def invocations(request: Request) -> Response:
    return await _predict(request, mlflow=True)


async def feedback(request: Request) -> Response:
    """``{"request_id": "...", "label": 118}`` or ``{"labels": [{"request_id", "label"}, ...]}``."""
    service = _service(request)
    try:
        if request.path_params["name"] != service.name:
            raise NotFound(f"this service serves {service.name!r}", field="name")
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
    if service.canary is not None:
        out["canary_weight"] = service.config.canary_weight
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
    for variant in service.variants():
        if variant.loaded is not None and variant.role == "primary":
            service.telemetry.live_version[service.name] = str(variant.loaded.version)
    return PlainTextResponse(service.telemetry.render(), media_type="text/plain; version=0.0.4")


def create_app(config: ServeConfig, registry: Any) -> Starlette:
    """The ASGI app serving ``config.model`` from ``registry`` (a ``ModelRegistry``)."""
    service = build_service(config, registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        for variant in service.variants():
            await loop.run_in_executor(None, variant.live.refresh)  # refuses to be ready on failure
            variant.live.follow()
        app.state.service = service
        try:
            yield
        finally:
            for variant in service.variants():
                variant.live.stop()
                await variant.batcher.close()
            if service.writer is not None:
                await loop.run_in_executor(None, service.writer.close)

    routes = [
        Route("/v1/models/{name}/predict", predict, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/v1/models/{name}/feedback", feedback, methods=["POST"]),
        Route("/v1/models/{name}", metadata, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


def from_environment() -> Starlette:
    """The app of one ``conveyor serve`` worker, from the configuration the command left in the environment."""
    import os

    import conveyor as cv
    from conveyor.serving.config import CONFIG_ENV

    config = ServeConfig.from_json(os.environ[CONFIG_ENV])
    return create_app(config, cv.models.registry(config.project))
