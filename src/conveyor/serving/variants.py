"""A served model version and the micro-batcher in front of it; how requests pick one.

The primary variant answers every request unless a canary takes its share: a
request goes to the canary when a hash of its client key (``X-Client-Key``, else
the request id) falls under the canary weight, so one client keeps seeing the
same version. A shadow variant gets a copy of the request after the answer has
been sent; what it says is logged, never returned.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from conveyor.core.ids import now_ms
from conveyor.registry.signature import SignatureMismatch
from conveyor.serving.arrays import ArrayPredict, array_predictor
from conveyor.serving.batching import MicroBatcher
from conveyor.serving.frames import FramePlan
from conveyor.serving.inputs import Batchable
from conveyor.serving.live import LiveModel, Loaded


@dataclass
class Job:
    """One request waiting for the model: its rows and what its log rows need.

    ``abandoned`` (the request timed out) and ``logged`` (its answer is in the
    prediction log) are settled under the variant's lock, so a request ends up in
    the log once: as answered rows or as an error row, never both.
    """

    rows: Batchable
    request_id: str
    arrived: float  # time.perf_counter() when the request came in
    abandoned: bool = False
    logged: bool = False

    @property
    def count(self) -> int:
        return self.rows.rows


def _assemble(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if hasattr(parts[0], "columns"):
        import pandas as pd

        return pd.concat(parts, ignore_index=True, copy=False)
    return np.concatenate(parts)


def _split(output: Any, sizes: list[int]) -> list[Any]:
    out, start = [], 0
    for size in sizes:
        part = output.iloc[start : start + size] if hasattr(output, "iloc") else output[start : start + size]
        out.append(part)
        start += size
    return out


def _rows_of(frame: Any, features: dict[str, Any] | None, output: Any, sizes: list[int],
             keep: list[bool]) -> tuple[Any, dict[str, Any] | None, Any]:
    """The batch's input and output restricted to the requests in ``keep``."""
    starts = np.cumsum([0, *sizes[:-1]])
    take = np.concatenate([np.arange(s, s + n) for s, n, k in zip(starts, sizes, keep, strict=True) if k] or
                          [np.zeros(0, dtype=np.int64)])
    if features is not None:
        features = {k: v[take] for k, v in features.items()}
    elif hasattr(frame, "iloc"):
        frame = frame.iloc[take]
    output = output.iloc[take] if hasattr(output, "iloc") else np.asarray(output)[take]
    return frame, features, output


LogSink = Callable[[str, Any], None]  # (role, columns of log rows)


class PredictionFailed(Exception):
    """The model raised on one request's rows: the original error and the version that raised it."""

    def __init__(self, version: int, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.version = version
        self.error = error


class Variant:
    """One model URI being served: its live version and its batcher.

    Everything heavy happens on the model thread, once per batch: building the
    input frame, checking it against the signature, predicting, and preparing
    the prediction log rows. The event loop only parses JSON and waits.
    """

    def __init__(self, role: str, live: LiveModel, *, max_batch_size: int, max_wait_ms: float,
                 max_queue_rows: int, on_batch: Callable[[int, float], None] | None = None,
                 log: LogSink | None = None) -> None:
        self.role = role  # primary | canary | shadow
        self.live = live
        self._log = log
        self._plan: tuple[Loaded, FramePlan, ArrayPredict | None] | None = None
        self._outcome = threading.Lock()  # settles Job.abandoned against Job.logged
        self.batcher = MicroBatcher(self._predict, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                                    max_queue=max_queue_rows, on_batch=on_batch, size=lambda job: job.count)

    @property
    def loaded(self) -> Loaded | None:
        return self.live.current

    def _frame_plan(self, loaded: Loaded) -> tuple[FramePlan, ArrayPredict | None]:
        """The version's frame plan and array predictor, made on its first batch (on the model thread)."""
        plan = self._plan
        if plan is None or plan[0] is not loaded:  # a new version: its own signature
            frames = FramePlan(loaded.model.signature)
            fast = array_predictor(loaded.model, frames.names, frames.to_array) if frames.usable else None
            plan = (loaded, frames, fast)
            self._plan = plan
        return plan[1], plan[2]

    def _predict(self, jobs: list[Job]) -> list[Any]:
        """Runs on the model thread: one call for the whole batch, split back per request.

        Returns, per job, ``(version, output)`` or the exception that job must raise.
        When the model raises on a batch of several requests the exception goes up
        (the batcher retries them one by one); on a single request it comes back as
        :class:`PredictionFailed`, carrying the version that raised.
        """
        loaded = self.live.current
        assert loaded is not None
        signature = loaded.model.signature
        results: list[Any] = [None] * len(jobs)
        plan, by_array = self._frame_plan(loaded)
        fast = plan.frame([j.rows for j in jobs])
        features: dict[str, Any] | None = None
        if fast is not None:
            frame, features = fast, fast.columns
            good = list(range(len(jobs)))
        else:  # the careful way, request by request, so each gets its own report
            parts, good = [], []
            for i, job in enumerate(jobs):
                try:
                    parts.append(self._checked(job.rows, signature))
                    good.append(i)
                except SignatureMismatch as exc:
                    results[i] = exc
            if not parts:
                return results
            frame = _assemble(parts)
        try:
            if by_array is not None and fast is not None:
                output = np.asarray(by_array(fast.array))
            else:
                output = loaded.model.predict(fast.frame if fast is not None else frame)
        except Exception as exc:
            if len(good) > 1:
                raise
            results[good[0]] = PredictionFailed(loaded.version, exc)
            return results
        sizes = [jobs[i].count for i in good]
        for i, part in zip(good, _split(output, sizes), strict=True):
            results[i] = (loaded.version, part)
        if self._log is not None:
            with self._outcome:
                kept = [i for i in good if not jobs[i].abandoned]
                for i in kept:
                    jobs[i].logged = True
            if len(kept) < len(good):  # some timed out meanwhile: they are logged as errors instead
                frame, features, output = _rows_of(frame, features, output, [jobs[i].count for i in good],
                                                   [i in set(kept) for i in good])
            if kept:
                self._log(self.role, self._log_rows(frame, features, output, [jobs[i] for i in kept],
                                                    loaded.version))
        return results

    def abandon(self, job: Job) -> bool:
        """Mark a timed-out request; True unless its answer was already logged (then it has its record)."""
        with self._outcome:
            job.abandoned = True
            return not job.logged

    @staticmethod
    def _checked(rows: Batchable, signature: Any) -> Any:
        data = rows.array if rows.array is not None else rows.frame()
        if signature is not None:
            if hasattr(data, "columns"):
                data = conform(data, signature)
            signature.validate(data)
        return data

    def _log_rows(self, frame: Any, features: dict[str, Any] | None, output: Any, jobs: list[Job],
                  version: int) -> dict[str, Any]:
        """The batch's log rows as columns: the model input's own arrays plus the reserved ones.

        Features come from the fast path's arrays (views, no copy) or from the batch
        frame (NumPy arrays, no per-value Python work); tensor inputs log only the
        reserved columns.
        """

        now = time.perf_counter()
        if all(job.count == 1 for job in jobs):
            ids: list[str] = [job.request_id for job in jobs]
            latency = np.array([now - job.arrived for job in jobs]) * 1000
            row = np.zeros(len(jobs), dtype=np.int32)
        else:
            ids, spans, rows_of = [], [], []
            for job in jobs:
                n = job.count
                ids.extend([job.request_id] if n == 1 else [f"{job.request_id}:{k}" for k in range(n)])
                spans.append(now - job.arrived)
                rows_of.append(n)
            counts = np.array(rows_of)
            latency = np.repeat(np.array(spans) * 1000, counts)
            row = (np.arange(len(ids)) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32)
        rows = len(ids)
        columns: dict[str, Any] = {}
        if features is not None:
            columns = dict(features)
        elif hasattr(frame, "columns") and hasattr(frame, "iloc"):
            columns = {str(c): frame[c].to_numpy() for c in frame.columns}
        if hasattr(output, "columns"):
            predictions: Any = [str(r) for r in output.to_dict(orient="records")]
        else:
            out = np.asarray(output)
            predictions = out if out.ndim == 1 else [str(r) for r in out.tolist()]
        return {**columns, "_request_id": ids, "_ts": np.full(rows, now_ms(), dtype=np.int64),
                "_version": np.full(rows, version, dtype=np.int64), "_latency_ms": latency,
                "_variant": [self.role] * rows, "_row": row, "_prediction": predictions}

    def error_columns(self, request_id: str, error: BaseException, arrived: float,
                      version: int | None) -> dict[str, Any]:
        """One error row: a request that failed inside the service (the model raised, timeout, queue full)."""
        message = str(error).replace("\n", " ")
        if len(message) > 200:
            message = message[:197] + "..."
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
        return {"_request_id": [request_id], "_ts": [now_ms()], "_version": [version],
                "_latency_ms": [(time.perf_counter() - arrived) * 1000], "_variant": [self.role],
                "_row": [0], "_error": [text]}


def conform(frame: Any, signature: Any) -> Any:
    """Meet JSON halfway: signature column order, and whole floats where integers are expected.

    JSON has one number type, so ``1.0`` for an integer column is accepted when every
    value is whole; anything lossy is left for validation to report.
    """

    names = [c.name for c in signature.inputs.columns]
    if not names:
        return frame
    if set(names) <= set(frame.columns):
        frame = frame[names + [c for c in frame.columns if c not in set(names)]]
    for spec in signature.inputs.columns:
        if spec.dtype != "integer" or spec.name not in frame.columns:
            continue
        column = frame[spec.name]
        if column.dtype.kind == "f" and not column.isna().any():
            values = column.to_numpy()
            if np.all(values == np.round(values)):
                frame[spec.name] = values.astype(np.int64)
    return frame


def pick_canary(key: str, weight: float) -> bool:
    """Sticky weighted choice: the same key always lands on the same side."""
    if weight <= 0:
        return False
    bucket = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64
    return bucket < weight
