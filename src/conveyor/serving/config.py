"""What a serving process serves and how: one value object, built by the CLI or by code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument

#: The model tag an automation sets to the canary's share during a trial; a deployment started
#: without ``--canary-weight`` follows it.
CANARY_WEIGHT_TAG = "conveyor.canary_weight"
#: How ``conveyor serve`` hands its configuration to each worker process.
CONFIG_ENV = "CONVEYOR_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``conveyor serve``.

    Attributes:
        model: the model URI to serve, ``models:/NAME@champion`` (followed) or ``models:/NAME/3``.
        canary: a second model URI that answers ``canary_weight`` of the requests.
        canary_weight: the canary's share of requests; ``None`` follows the served model's
            ``conveyor.canary_weight`` tag, which an automation sets while it runs a canary
            trial and clears after (0 while the tag is absent).
        shadow: a model URI that receives a copy of every request; its answers are only logged.
        max_batch_size: rows per model call when concurrent requests are grouped.
        max_wait_ms: extra wait for more rows before a model call (0: none; batches still form under load).
        max_queue_rows: rows allowed to wait for the model before requests get 503.
        max_rows: rows per request (413 beyond).
        max_body_bytes: request body size (413 beyond).
        timeout: seconds a request may wait for its prediction (503 beyond).
        rate_limit: requests per second per client (token or address); 0 turns it off.
        log_predictions: append requests and responses to the prediction log.
        poll: seconds between checks of the followed alias.
        auth: require a token of the tracking server (``viewer`` on the project to predict,
            ``editor`` to send feedback); ``conveyor serve`` turns it on for non-loopback binds.
        auth_cache_seconds: how long a token's check is reused (a revoked token stops working
            within this time); 0 checks the store on every request.
        outliers: score logged rows with the outlier detector of a stored monitor of the model
            (``_outlier_score``, ``_outlier`` columns of the prediction log).
        outlier_monitor: the monitor whose detector scores; ``None`` chooses one (see
            :mod:`conveyor.serving.outliers`).
    """

    model: str
    canary: str | None = None
    canary_weight: float | None = None
    shadow: str | None = None
    project: str | None = None
    max_batch_size: int = 64
    max_wait_ms: float = 0.0
    max_queue_rows: int = 65_536
    max_rows: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    timeout: float = 10.0
    rate_limit: float = 0.0
    rate_burst: float | None = None
    log_predictions: bool = True
    poll: float = 5.0
    auth: bool = False
    auth_cache_seconds: float = 5.0
    outliers: bool = True
    outlier_monitor: str | None = None

    def __post_init__(self) -> None:
        if self.canary_weight is not None and not 0.0 <= self.canary_weight <= 1.0:
            raise InvalidArgument("canary weight must be between 0 and 1", field="canary_weight")
        if self.canary_weight and not self.canary:
            raise InvalidArgument("a canary weight needs a canary model (--canary)", field="canary")
        if self.canary and self.shadow:
            raise InvalidArgument("serve a canary or a shadow, not both", field="shadow")
        for name in ("max_batch_size", "max_queue_rows", "max_rows", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be at least 1", field=name)
        for name in ("max_wait_ms", "rate_limit", "poll", "auth_cache_seconds"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"{name} must not be negative", field=name)
        if self.timeout <= 0:
            raise InvalidArgument("timeout must be positive", field="timeout")
        if self.outlier_monitor is not None:
            try:
                v.check_name(self.outlier_monitor, "outlier monitor")
            except InvalidArgument as exc:
                raise InvalidArgument(exc.message, field="outlier_monitor") from None
            if not self.outliers:
                raise InvalidArgument("give an outlier monitor or turn outliers off, not both", field="outlier_monitor")
            if not self.log_predictions:
                raise InvalidArgument("outlier flags are written to the prediction log: an outlier monitor "
                                      "needs it on", field="outlier_monitor")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
