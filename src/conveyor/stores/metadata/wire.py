"""The JSON shapes the server and the REST store exchange (``/api/v1``).

Both sides import this module, so the request bodies are declared once.
JSON has no NaN or infinity: non-finite metric values travel as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. Every request struct forbids
unknown fields, so a typo is a 422 naming the field instead of being ignored.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

from conveyor.core.entities import ArtifactFile, MetricPoint, Run
from conveyor.core.errors import InvalidArgument
from conveyor.stores.metadata.monitors import NewResult

API = "/api/v1"

#: A metric value on the wire: a finite number, or one of the three strings below.
WireFloat = float | str
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def enc_float(value: float) -> WireFloat:
    """``value`` as JSON can carry it."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def dec_float(value: WireFloat | None, field: str = "value") -> float:
    """The float a wire value stands for; other strings are refused."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        try:
            return _NON_FINITE[value]
        except KeyError:
            raise InvalidArgument(
                f"{field} {value[:40]!r} is not a number (non-finite values are 'NaN', "
                "'Infinity', '-Infinity')",
                field=field,
            ) from None
    return float(value)


#: Milliseconds since the epoch (or a duration in ms): fits every database's BIGINT.
Millis = Annotated[int, msgspec.Meta(ge=0, le=2**62)]
#: A metric step: signed 64-bit.
Step = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: A page size; the store applies its own (smaller) maximum.
Count = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31)]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body."""


class ProjectIn(Body):
    name: str


class RunIn(Body):
    project: str
    name: str | None = None
    parent_id: str | None = None
    tags: dict[str, str] | None = None
    env: dict[str, Any] | None = None
    user: str = ""
    start_time: Millis | None = None
    idempotency_key: str | None = None
    params: dict[str, str] | None = None
    metrics: dict[str, WireFloat] | None = None
    status: str = "RUNNING"
    end_time: Millis | None = None
    inputs: list[tuple[str, str]] = []
    outputs: list[tuple[str, str]] = []


class StatusIn(Body):
    status: str
    end_time: Millis | None = None


class HeartbeatIn(Body):
    run_ids: list[str]
    at: Millis | None = None


class ReapIn(Body):
    timeout_ms: Millis
    now: Millis | None = None


class ParamsIn(Body):
    params: dict[str, str]


class TagsIn(Body):
    tags: dict[str, str]


#: (run_id, key, value, step, timestamp_ms)
WirePoint = tuple[str, str, WireFloat, Step, Millis]


class MetricBatchIn(Body):
    points: list[WirePoint]
    idempotency_key: str | None = None


class FinishIn(Body):
    """End a run: its last metric points, tags, lineage and status, applied together."""

    status: str
    end_time: Millis | None = None
    points: list[WirePoint] = []
    tags: dict[str, str] | None = None
    inputs: list[tuple[str, str]] = []
    outputs: list[tuple[str, str]] = []
    idempotency_key: str | None = None


class ArtifactsIn(Body):
    files: list[ArtifactFile]


#: The size of a blob: fits every database's BIGINT.
Size = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class BlobIn(Body):
    digest: str
    size: Size


class UploadsIn(Body):
    """Blobs a client wants to write straight to the artifact store (``POST /blobs/uploads``)."""

    blobs: Annotated[list[BlobIn], msgspec.Meta(max_length=1000)]


class UploadedIn(Body):
    digest: str
    size: Size
    upload_id: str


class UploadsDoneIn(Body):
    """Blobs written to the URLs ``POST /blobs/uploads`` gave, for the server to check and keep."""

    uploads: Annotated[list[UploadedIn], msgspec.Meta(max_length=1000)]


class SearchIn(Body):
    projects: list[str] | None = None
    filter: str | None = None
    order_by: list[str] | None = None
    max_results: Count = 100
    page_token: str | None = None


class RunsByTagIn(Body):
    """The newest run of ``project`` per value of tag ``key`` (the pipeline cache's look-up)."""

    project: str
    key: str
    values: list[str]
    status: str | None = None


class LineageIn(Body):
    src: tuple[str, str]
    dst: tuple[str, str]
    relation: str
    attributes: dict[str, Any] | None = None


class PrincipalIn(Body):
    name: str
    kind: str = "user"
    admin: bool = False


class TokenIn(Body):
    principal: str | None = None
    name: str = ""
    expires_in: Annotated[int, msgspec.Meta(ge=1, le=100 * 365 * 86400)] | None = None


class GrantIn(Body):
    project: str
    role: str | None = None


#: Set by the SDK on every request: who is acting (``acting_as``). Honoured only with auth
#: off (a loopback server trusts its callers as the embedded store would); with auth on the
#: token's principal is the actor, whatever the client claims.
ACTOR_HEADER = "X-Conveyor-Actor"

#: A JSON object a client sends as-is (reports, configs, signatures).
Json = dict[str, Any]


# ---------------------------------------------------------------- registry


class ModelIn(Body):
    name: str
    description: str = ""
    tags: dict[str, str] | None = None
    exist_ok: bool = False
    idempotency_key: str | None = None


class ModelPatch(Body):
    description: str | None = None
    tags: dict[str, str] | None = None
    gate: Json | None = None


class VersionIn(Body):
    flavour: str
    format: str
    package_digest: str
    signature: Json | None = None
    info: Json = {}
    run_id: str | None = None
    description: str = ""
    tags: dict[str, str] | None = None
    idempotency_key: str | None = None


class VersionPatch(Body):
    description: str | None = None
    tags: dict[str, str] | None = None


class VersionStatusIn(Body):
    status: str


class AliasIn(Body):
    """Move an alias by hand. Promotions and rollbacks have their own routes: a client
    cannot write an alias move that claims to be one (rollback replays those)."""

    version: int
    idempotency_key: str | None = None


class RollbackIn(Body):
    idempotency_key: str | None = None


class GateIn(Body):
    """A gate's verdict on a version; ``forced`` needs the owner role."""

    alias: str
    champion_version: int | None
    passed: bool
    forced: bool
    reason: str
    report: Json
    move_alias: bool
    against: str | None = None  # the alias whose holder was compared (default: ``alias``)
    idempotency_key: str | None = None


# ---------------------------------------------------------------- datasets


class DatasetVersionIn(Body):
    """A version to register under the dataset named in the path (the store numbers it)."""

    content_hash: str
    kind: str
    num_files: int
    size: int
    num_rows: int | None = None
    schema: Json | None = None
    profile: Json | None = None
    description: str = ""
    tags: dict[str, str] = {}
    creator: str = ""


class CheckIn(Body):
    version: int | None
    target: str
    suite: str
    ok: bool
    num_failures: int
    report: Json
    run_id: str | None = None
    idempotency_key: str | None = None


# ---------------------------------------------------------------- monitors


class MonitorIn(Body):
    name: str
    model: str
    config: Json
    reference: Json
    outliers: Json | None = None
    idempotency_key: str | None = None


class AutomationIn(Body):
    spec: Json
    cursors: Json = {}
    enabled: bool = True


class EnabledIn(Body):
    enabled: bool


class FiringIn(Body):
    trigger: str
    key: str
    reason: str
    evidence: Json = {}


class RebaseIn(Body):
    config: Json
    reference: Json
    outliers: Json | None = None


class ResultIn(NewResult, frozen=True, forbid_unknown_fields=True):
    """One evaluation of a monitor: a ``NewResult`` and the key that makes its retry harmless."""

    idempotency_key: str | None = None


class DeliveriesIn(Body):
    deliveries: list[Json]
    idempotency_key: str | None = None


# ------------------------------------------------------------- entity conversion


def run_out(run: Run) -> dict[str, Any]:
    """A run as JSON-ready builtins, non-finite metrics spelled out."""
    body: dict[str, Any] = msgspec.to_builtins(run)
    body["metrics"] = {k: enc_float(val) for k, val in run.metrics.items()}
    return body


def run_in(body: dict[str, Any]) -> Run:
    body = dict(body)
    body["metrics"] = {k: dec_float(val) for k, val in (body.get("metrics") or {}).items()}
    return msgspec.convert(body, Run)


def points_out(points: list[MetricPoint]) -> list[list[Any]]:
    return [[p.key, enc_float(p.value), p.step, p.timestamp] for p in points]


def points_in(rows: list[list[Any]]) -> list[MetricPoint]:
    return [MetricPoint(r[0], dec_float(r[1]), int(r[2]), int(r[3])) for r in rows]


def lineage_in(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "src": tuple(e["src"]), "dst": tuple(e["dst"])} for e in edges]
