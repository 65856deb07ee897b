"""Prometheus metrics of a serving process, in the text exposition format.

Counters and histograms are plain integers updated on the event loop thread
(or under a lock from the model thread), rendered on ``GET /metrics``.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def render(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        out.append(f"{name}_sum{{{labels}}} {self.total}")
        out.append(f"{name}_count{{{labels}}} {self.n}")
        return out


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()  # (model, route, status)
        self.answered_by: Counter[tuple[str, str]] = Counter()  # (model, version)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.live_version: dict[str, str] = {}
        self.outliers_scored: Counter[str] = Counter()  # logged rows scored, by model
        self.outliers_flagged: Counter[tuple[str, str]] = Counter()  # (model, monitor): rows over the threshold

    def request(self, model: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(model, route, status)] += 1
            self.latency.observe(seconds)

    def answered(self, model: str, version: int | str) -> None:
        with self._lock:
            self.answered_by[(model, str(version))] += 1

    def batch(self, rows: int, seconds: float) -> None:
        with self._lock:
            self.batch_rows.observe(rows)

    def outliers(self, model: str, monitor: str, scored: int, flagged: int) -> None:
        """Rows of the prediction log scored by ``monitor``'s detector (on the writer's thread)."""
        with self._lock:
            self.outliers_scored[model] += scored
            self.outliers_flagged[(model, monitor)] += flagged

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP conveyor_requests_total Requests answered, by model, route and HTTP status.",
                "# TYPE conveyor_requests_total counter",
            ]
            for (model, route, status), n in sorted(self.requests.items()):
                lines.append(f'conveyor_requests_total{{model="{model}",route="{route}",status="{status}"}} {n}')
            lines += ["# HELP conveyor_request_seconds Request latency.", "# TYPE conveyor_request_seconds histogram"]
            lines += self.latency.render("conveyor_request_seconds")
            lines += ["# HELP conveyor_batch_rows Rows per model call.", "# TYPE conveyor_batch_rows histogram"]
            lines += self.batch_rows.render("conveyor_batch_rows")
            lines += [
                "# HELP conveyor_predictions_total Requests answered per model version (canary split).",
                "# TYPE conveyor_predictions_total counter",
            ]
            for (model, version), n in sorted(self.answered_by.items()):
                lines.append(f'conveyor_predictions_total{{model="{model}",version="{version}"}} {n}')
            lines += [
                "# HELP conveyor_outlier_scored_rows_total Logged prediction rows scored by an outlier detector.",
                "# TYPE conveyor_outlier_scored_rows_total counter",
            ]
            for model, n in sorted(self.outliers_scored.items()):
                lines.append(f'conveyor_outlier_scored_rows_total{{model="{model}"}} {n}')
            lines += [
                "# HELP conveyor_outliers_total Logged prediction rows flagged as outliers, by the monitor that scored them.",
                "# TYPE conveyor_outliers_total counter",
            ]
            for (model, monitor), n in sorted(self.outliers_flagged.items()):
                lines.append(f'conveyor_outliers_total{{model="{model}",monitor="{monitor}"}} {n}')
            lines += ["# HELP conveyor_model_version The version being served.", "# TYPE conveyor_model_version gauge"]
            for model, version in sorted(self.live_version.items()):
                lines.append(f'conveyor_model_version{{model="{model}"}} {version}')
        return "\n".join(lines) + "\n"
