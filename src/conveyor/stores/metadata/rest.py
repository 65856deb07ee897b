"""The metadata store over HTTP: the same Protocol, answered by a Conveyor server.

``RestMetadataStore("http://127.0.0.1:7007")`` (or ``CONVEYOR_URI=http://…``)
makes the SDK talk to a server instead of a database. Errors come back as the
same :class:`~conveyor.core.errors.ConveyorError` classes the server raised.

Connection errors and 5xx answers are retried with jittered exponential
backoff for up to ``retry_for`` seconds. Retrying is safe: creates and metric
batches carry an idempotency key the server records in the same transaction as
the write, so a retry after a lost response changes nothing; the other writes
are idempotent by nature (a delete retried after it happened counts as done).
``registry``, ``datasets`` and ``monitors`` are the same sub-stores as the SQL
store's (``rest_registry.py``, ``rest_datasets.py``, ``rest_monitors.py``),
sharing this store's session and the same rules.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import msgspec

from conveyor.core import errors
from conveyor.core import validation as v
from conveyor.core.context import current_actor
from conveyor.core.entities import ArtifactFile, MetricPoint, Page, Project, Run, RunStatus
from conveyor.core.errors import BackendUnavailable, ConveyorError
from conveyor.stores.metadata import wire
from conveyor.stores.metadata.base import PointRow
from conveyor.stores.metadata.rest_datasets import RestDatasetStore
from conveyor.stores.metadata.rest_monitors import RestMonitorStore
from conveyor.stores.metadata.rest_registry import RestRegistryStore

#: Points per request; bigger flushes are split.
CHUNK_POINTS = 50_000
#: Tag values per ``find_runs_by_tag`` request (the server takes up to 5,000).
CHUNK_TAG_VALUES = 1_000
_FALLBACK = {
    400: errors.InvalidArgument, 401: errors.Unauthenticated, 403: errors.PermissionDenied,
    404: errors.NotFound, 409: errors.InvalidState, 413: errors.PayloadTooLarge,
    421: errors.InvalidArgument, 422: errors.InvalidArgument, 503: errors.BackendUnavailable,
}
#: Server errors that another attempt will not fix.
_FINAL = {"ARTIFACT_CORRUPTED", "SCHEMA_OUT_OF_DATE", "MISSING_EXTRA"}


def _error_classes() -> dict[str, type[ConveyorError]]:
    found: dict[str, type[ConveyorError]] = {}
    todo: list[type[ConveyorError]] = [ConveyorError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def error_from_response(status: int, body: bytes) -> ConveyorError:
    """The exception a server error body stands for (the same class the server raised)."""
    try:
        err = msgspec.json.decode(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except Exception:
        cls = _FALLBACK.get(status, ConveyorError)
        return cls(f"the server answered {status}: {body[:200].decode(errors='replace')}")
    cls = _error_classes().get(code) or _FALLBACK.get(status, ConveyorError)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.message = message
    exc.field = err.get("field")
    for extra in ("position", "text", "report"):  # what ConveyorError.details() put in the body
        if extra in err:
            setattr(exc, extra, err[extra])
    return exc


def _builtin(value: Any) -> Any:
    """NumPy scalars and arrays in a body (a drift report's statistics) as plain numbers and lists."""
    for method in ("item", "tolist"):
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    raise TypeError(f"cannot send a {type(value).__name__} to the server")


class HttpSession:
    """One pooled HTTP client with the token, timeouts and the retry policy; shared by the stores."""

    def __init__(self, uri: str, *, token: str | None = None, timeout: float | None = None,
                 retry_for: float | None = None) -> None:
        import httpx

        from conveyor.core.settings import get_settings

        settings = get_settings()
        self.uri = uri.rstrip("/")
        token = token if token is not None else settings.token
        headers = {"User-Agent": "conveyor-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout if timeout is not None else settings.http_timeout
        self.retry_for = retry_for if retry_for is not None else settings.http_retry_seconds
        self.client = httpx.Client(
            base_url=self.uri + wire.API, headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self._httpx = httpx

    def close(self) -> None:
        self.client.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Any = None,
        done_if_missing: bool = False,
        ok_missing: bool = False,
        stream_to: Any = None,
    ) -> Any:
        """Send with retries; the ``httpx.Response`` of the first answer below 400.

        ``content`` may be a callable returning a fresh body per attempt (a file's chunks).
        ``done_if_missing``: a 404 on a retry means an earlier attempt succeeded.
        ``ok_missing``: return ``None`` on 404 instead of raising.
        ``stream_to``: a callable given the open streaming response (downloads).
        """
        body = msgspec.json.encode(json, enc_hook=_builtin) if json is not None else None
        headers = {wire.ACTOR_HEADER: quote(current_actor(), safe="")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            payload = content() if callable(content) else (body if content is None else content)
            try:
                request = self.client.build_request(method, path, content=payload, params=params, headers=headers)
                resp = self.client.send(request, stream=stream_to is not None)
                try:
                    status = resp.status_code
                    if status < 400:
                        if stream_to is not None:
                            stream_to(resp)
                        return resp
                    resp.read()
                finally:
                    resp.close()
            except self._httpx.TransportError as exc:
                if time.monotonic() >= deadline:
                    raise BackendUnavailable(
                        f"cannot reach the Conveyor server at {self.uri} ({type(exc).__name__}: {exc}); "
                        "is `conveyor server` running?"
                    ) from None
            else:
                if status == 404 and (ok_missing or (done_if_missing and attempt > 0)):
                    return None
                error = error_from_response(status, resp.content)
                if status < 500 or getattr(error, "code", "") in _FINAL or time.monotonic() >= deadline:
                    raise error
            attempt += 1
            time.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)) * (0.5 + random.random() / 2))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`send`, then the decoded JSON answer (``None`` when empty)."""
        resp = self.send(method, path, **kwargs)
        if resp is None or not resp.content:
            return None
        return msgspec.json.decode(resp.content)


def _lineage_body(inputs: Sequence[tuple[str, str]], outputs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The lineage fields of a create or finish, only when there are edges (older servers lack them)."""
    body: dict[str, Any] = {}
    if inputs:
        body["inputs"] = [list(n) for n in inputs]
    if outputs:
        body["outputs"] = [list(n) for n in outputs]
    return body


def _seg(value: object) -> str:
    return quote(str(value), safe="")


class RestMetadataStore:
    """A :class:`~conveyor.stores.metadata.base.MetadataStore` that calls a Conveyor server.

    Args:
        uri: the server, ``http(s)://host:port``.
        token: API token (default ``CONVEYOR_TOKEN``).
        timeout: seconds per request (default ``CONVEYOR_HTTP_TIMEOUT``).
        retry_for: seconds to keep retrying a failed request (default ``CONVEYOR_HTTP_RETRY_SECONDS``).
    """

    def __init__(self, uri: str, *, token: str | None = None, timeout: float | None = None,
                 retry_for: float | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.session = HttpSession(uri, token=token, timeout=timeout, retry_for=retry_for)
        self._governance: Any = None
        #: the same sub-stores as ``SqlMetadataStore``, answered by the server's routes
        self.registry = RestRegistryStore(self.session)
        self.datasets = RestDatasetStore(self.session)
        self.monitors = RestMonitorStore(self.session)
        # Keys of metric batches that failed: the buffer sends the same batch again, and
        # reusing its key makes the server drop it if the first attempt did land.
        self._unsure: dict[bytes, str] = {}
        self._unsure_lock = threading.Lock()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.request(method, path, **kwargs)

    @property
    def automation(self) -> Any:
        """Applying, firing by hand and history; the agent's own work needs the database."""
        from conveyor.stores.metadata.rest_automation import RestAutomationStore

        return RestAutomationStore(self.session)

    @property
    def governance(self) -> Any:
        if self._governance is None:
            from conveyor.stores.metadata.rest_governance import RestGovernanceStore

            self._governance = RestGovernanceStore(self.session)
        return self._governance

    def close(self) -> None:
        self.session.close()

    # ---------------------------------------------------------------- projects

    def get_or_create_project(self, name: str) -> Project:
        """Creating needs ``editor``; a viewer of an existing project gets it as it is."""
        try:
            return msgspec.convert(self._call("POST", "/projects", json={"name": name}), Project)
        except errors.PermissionDenied:
            try:
                return self.get_project(name)
            except (errors.PermissionDenied, errors.NotFound):
                pass
            raise

    def get_project(self, name: str) -> Project:
        return msgspec.convert(self._call("GET", f"/projects/{_seg(name)}"), Project)

    def list_projects(self) -> list[Project]:
        return msgspec.convert(self._call("GET", "/projects"), list[Project])

    # -------------------------------------------------------------------- runs

    def create_run(
        self,
        *,
        project: str,
        name: str | None = None,
        parent_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        env: Mapping[str, Any] | None = None,
        user: str = "",
        start_time: int | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        status: RunStatus | str = RunStatus.RUNNING,
        end_time: int | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
    ) -> Run:
        body: dict[str, Any] = {
            "project": project, "name": name, "parent_id": parent_id, "tags": v.check_tags(tags or {}),
            "env": dict(env or {}), "user": user, "start_time": start_time,
            "idempotency_key": uuid.uuid4().hex,
        }
        # Sent only when used, so an older server still understands a plain create.
        if params:
            body["params"] = v.check_params(params)
        if metrics:
            body["metrics"] = {k: wire.enc_float(v.metric_value(k, val)) for k, val in metrics.items()}
        state = RunStatus.parse(status)
        if state is not RunStatus.RUNNING or end_time is not None:
            body["status"], body["end_time"] = state.value, end_time
        body.update(_lineage_body(inputs, outputs))
        return wire.run_in(self._call("POST", "/runs", json=body))

    def get_run(self, run_id: str, *, with_artifacts: bool = True) -> Run:
        params = None if with_artifacts else {"with_artifacts": "false"}
        return wire.run_in(self._call("GET", f"/runs/{_seg(run_id)}", params=params))

    def set_run_status(self, run_id: str, status: RunStatus, end_time: int | None = None) -> Run:
        value = status.value if isinstance(status, RunStatus) else status
        body = {"status": value, "end_time": end_time}
        return wire.run_in(self._call("POST", f"/runs/{_seg(run_id)}/status", json=body))

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int | None = None,
        points: Sequence[PointRow] = (),
        *,
        tags: Mapping[str, Any] | None = None,
        inputs: Sequence[tuple[str, str]] = (),
        outputs: Sequence[tuple[str, str]] = (),
    ) -> None:
        """The last points, tags, lineage and status in one request, applied in one transaction.

        The points carry an idempotency key derived like a metric batch's, so a
        retry after a lost answer writes them once. More points than one request
        holds go ahead as ordinary batches; the last ones travel with the status.
        """
        points = list(points)
        if len(points) > CHUNK_POINTS:
            self.log_metric_points(points[:-CHUNK_POINTS])
            points = points[-CHUNK_POINTS:]
        value = status.value if isinstance(status, RunStatus) else status
        body: dict[str, Any] = {"status": value, "end_time": end_time}
        if tags:
            body["tags"] = v.check_tags(tags)
        body.update(_lineage_body(inputs, outputs))
        if not points:
            self._call("POST", f"/runs/{_seg(run_id)}/finish", json=body)
            return
        encoded = msgspec.json.encode([(r, k, wire.enc_float(val), s, t) for r, k, val, s, t in points])
        self._send_points(f"/runs/{_seg(run_id)}/finish", body, encoded)

    def heartbeat(self, run_ids: Sequence[str], at: int | None = None) -> None:
        if run_ids:
            self._call("POST", "/runs/heartbeat", json={"run_ids": list(run_ids), "at": at})

    def reap_stale_runs(self, timeout_ms: int, now: int | None = None) -> list[str]:
        answer = self._call("POST", "/runs/reap", json={"timeout_ms": int(timeout_ms), "now": now})
        return list(answer["run_ids"])

    def delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"/runs/{_seg(run_id)}", done_if_missing=True)

    # ------------------------------------------------------ params, tags, metrics

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        values = v.check_params(params)
        if values:
            self._call("POST", f"/runs/{_seg(run_id)}/params", json={"params": values})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        values = v.check_tags(tags)
        if values:
            self._call("POST", f"/runs/{_seg(run_id)}/tags", json={"tags": values})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("DELETE", f"/runs/{_seg(run_id)}/tags", params={"key": key}, done_if_missing=True)

    def log_metric_points(self, points: Sequence[PointRow]) -> None:
        """Send the points in one request per 50,000; each request carries an idempotency key."""
        for start in range(0, len(points), CHUNK_POINTS):
            chunk = [
                (r, k, wire.enc_float(val), s, t) for r, k, val, s, t in points[start : start + CHUNK_POINTS]
            ]
            self._send_points("/metrics/batch", {}, msgspec.json.encode(chunk))

    def _send_points(self, path: str, body: dict[str, Any], encoded: bytes) -> None:
        """POST points under an idempotency key; the same points sent again reuse their key.

        The key of a batch whose answer was lost is kept by the batch's fingerprint,
        so when the buffer retries it unchanged the server recognises it.
        """
        fingerprint = hashlib.blake2b(encoded, digest_size=16).digest()
        with self._unsure_lock:
            key = self._unsure.get(fingerprint) or uuid.uuid4().hex
        try:
            self._call("POST", path, json={**body, "points": msgspec.Raw(encoded), "idempotency_key": key})
        except BaseException:
            with self._unsure_lock:
                self._unsure[fingerprint] = key
            raise
        with self._unsure_lock:
            self._unsure.pop(fingerprint, None)

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        rows = self._call("GET", f"/runs/{_seg(run_id)}/metrics/history", params={"key": key})
        return wire.points_in(rows)

    # --------------------------------------------------------------- artifacts

    def record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        if files:
            self._call("POST", f"/runs/{_seg(run_id)}/artifacts", json={"files": list(files)})

    def list_artifacts(self, run_id: str, prefix: str | None = None) -> list[ArtifactFile]:
        params = {"prefix": prefix} if prefix else None
        return msgspec.convert(self._call("GET", f"/runs/{_seg(run_id)}/artifacts", params=params), list[ArtifactFile])

    # ------------------------------------------------------------------ search

    def search_runs(
        self,
        projects: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page:
        body = {
            "projects": None if projects is None else list(projects),
            "filter": filter,
            "order_by": [order_by] if isinstance(order_by, str) else (None if order_by is None else list(order_by)),
            "max_results": max_results,
            "page_token": page_token,
        }
        answer = self._call("POST", "/runs/search", json=body)
        return Page([wire.run_in(r) for r in answer["runs"]], answer["next_page_token"])

    def find_runs_by_tag(
        self, project: str, key: str, values: Sequence[str], *, status: RunStatus | str | None = None
    ) -> dict[str, Run]:
        wanted = sorted({v.tag_value(key, value) for value in values})
        if not wanted:
            return {}
        state = None if status is None else RunStatus.parse(status).value
        found: dict[str, Run] = {}
        for start in range(0, len(wanted), CHUNK_TAG_VALUES):
            body = {"project": project, "key": key, "values": wanted[start : start + CHUNK_TAG_VALUES], "status": state}
            answer = self._call("POST", "/runs/by-tag", json=body)
            found.update((value, wire.run_in(run)) for value, run in answer["runs"].items())
        return found

    # ----------------------------------------------------------------- lineage

    def add_lineage(
        self,
        src: tuple[str, str],
        dst: tuple[str, str],
        relation: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        body = {"src": list(src), "dst": list(dst), "relation": relation,
                "attributes": None if attributes is None else dict(attributes)}
        self._call("POST", "/lineage", json=body)

    def list_lineage(self, node: tuple[str, str], direction: str = "both") -> list[dict[str, Any]]:
        params = {"kind": node[0], "id": node[1], "direction": direction}
        return wire.lineage_in(self._call("GET", "/lineage", params=params))
