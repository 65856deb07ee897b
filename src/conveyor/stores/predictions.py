"""The prediction log: every served request and response, and the labels that come later.

Serving appends; monitoring reads. The log is Parquet segments under the
artifact store's byte backend (a local folder or S3), partitioned by model and
day::

    predictions/<model>/day=2026-11-23/<first-ms>-<id>.parquet     requests and responses
    feedback/<model>/day=2026-11-23/<first-ms>-<id>.parquet        labels, by request id

A segment is written atomically (the backends guarantee it), so a reader sees
whole segments or nothing. Each prediction row holds the input features as
their own columns (so drift reads them without parsing), plus reserved columns
that start with an underscore: ``_request_id``, ``_ts`` (ms since the epoch),
``_model``, ``_version``, ``_latency_ms``, ``_prediction``, and from the serving
layer ``_variant`` and ``_row`` (the row's index in its request). When the
serving process has an outlier detector (a stored monitor's), answered rows also
carry ``_outlier_score`` (float), ``_outlier`` (the score is over the detector's
threshold), ``_outlier_monitor`` (the id of the monitor whose detector scored it)
and ``_outlier_detector`` (that detector's fingerprint: a rebased monitor has a new
one); a row the detector could not score has nulls there. Feedback rows hold
``_request_id``, ``_ts`` and ``_label``; the newest label for a request wins,
and labels may arrive days after the prediction (they are joined by request id
over whatever window is read).

A request that failed inside the service (the model raised, it timed out, the
queue was full) is one *error row*: ``_request_id``, ``_ts``, ``_model``,
``_version`` and ``_error`` (``"ValueError: hour 99 does not exist"``), no
features and no prediction. :meth:`PredictionLog.read` leaves error rows out
unless asked (monitoring sees answered predictions only), and
:meth:`PredictionLog.error_rate` gives failed / (answered + failed) requests of a
version over a window, which is what the automation agent watches, and
:meth:`PredictionLog.error_rates` the counts per version.

:class:`PredictionLogWriter` batches appends in memory and writes from a
background thread, so the request path only pays for a list append; its
``annotate`` hook adds columns to each merged batch on that thread (the serving
layer scores outliers there, off the request path).

Example::

    log = PredictionLog(open_byte_backend(settings.artifacts_uri))
    log.append("bike-demand", [{"_request_id": "r1", "_ts": now_ms(), "_version": 3,
                                "_latency_ms": 1.2, "_prediction": 118.0, "temp": 0.24, "hr": 8}])
    log.add_feedback("bike-demand", [("r1", 121.0)])
    window = log.read("bike-demand", start_ms=..., end_ms=...)   # pandas, labels joined
    log.error_rate("bike-demand", start_ms, end_ms, version=3)   # 0.0013: failed / (answered + failed)
    log.error_rates("bike-demand", start_ms, end_ms)              # {3: ErrorRate(answered=.., failed=..)}
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument
from conveyor.core.ids import new_id, now_ms
from conveyor.stores.artifacts.base import ByteBackend

log = logging.getLogger(__name__)

RESERVED = ("_request_id", "_ts", "_model", "_version", "_latency_ms", "_prediction")
ERROR = "_error"  # set on error rows only
ROW = "_row"  # a row's index within its request: 0 marks one answered request
#: Set by serving when a stored monitor's outlier detector scored the row.
OUTLIER_SCORE, OUTLIER = "_outlier_score", "_outlier"
OUTLIER_MONITOR, OUTLIER_DETECTOR = "_outlier_monitor", "_outlier_detector"
DAY = 86_400_000


@dataclass(frozen=True)
class ErrorRate:
    """Requests of one version in a window: answered, failed, and the share that failed."""

    answered: int
    failed: int

    @property
    def requests(self) -> int:
        return self.answered + self.failed

    @property
    def rate(self) -> float:
        """failed / (answered + failed); 0.0 when there were no requests."""
        return self.failed / self.requests if self.requests else 0.0


def _uniform(values: Any) -> Any:
    """A column whose values have several types (a number here, text there) becomes text."""
    if not isinstance(values, list):
        return values  # an array has one type
    kinds = {type(x) for x in values if x is not None}
    if len(kinds) <= 1 or kinds <= {int, float}:
        return values
    return [None if x is None else str(x) for x in values]


def _table(columns: dict[str, Any]) -> Any:
    """An Arrow table; a column with mixed types in one batch is kept as text, not lost."""
    import pyarrow as pa

    try:
        return pa.Table.from_pydict(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.Table.from_pydict({k: _uniform(vals) for k, vals in columns.items()})


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _days(start_ms: int, end_ms: int) -> list[str]:
    first = datetime.fromtimestamp(start_ms / 1000, tz=UTC).date()
    last = datetime.fromtimestamp(end_ms / 1000, tz=UTC).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


class PredictionLog:
    """Append-only prediction and feedback segments over a byte backend."""

    def __init__(self, backend: ByteBackend, prefix: str = "") -> None:
        self.backend = backend
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def open(cls, uri: str | None = None) -> PredictionLog:
        """The log in the artifact store at ``uri`` (default: ``CONVEYOR_ARTIFACTS``)."""
        from conveyor.stores.artifacts.cas import open_content_store

        return cls(open_content_store(uri).backend)

    # ------------------------------------------------------------------ writing

    def append(self, model: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        """Write one segment of prediction rows; returns its key (``None`` for no rows)."""
        v.check_name(model, "model")
        if not rows:
            return None
        for i, row in enumerate(rows):
            for key in ("_request_id", "_ts"):
                if key not in row:
                    raise InvalidArgument(f"prediction row {i} has no {key}", field=key)
        return self.append_columns(model, _merge([{k: [x] for k, x in r.items()} for r in rows]))

    def append_columns(self, model: str, columns: dict[str, Any]) -> str | None:
        """Write one segment from equal-length columns (what the writer gathers)."""
        import numpy as np

        v.check_name(model, "model")
        for key in ("_request_id", "_ts"):
            if key not in columns:
                raise InvalidArgument(f"prediction rows have no {key} column", field=key)
        n = len(columns["_ts"])
        if n == 0:
            return None
        table = _table({**columns, "_model": [model] * n})
        return self._write("predictions", model, table, int(np.min(columns["_ts"])))

    def add_feedback(self, model: str, labels: Iterable[tuple[str, Any] | tuple[str, Any, int]]) -> str | None:
        """Record ground-truth labels by request id (``(request_id, label[, ts_ms])``)."""
        v.check_name(model, "model")
        now = now_ms()
        rows = []
        for i, item in enumerate(labels):
            if not isinstance(item[0], str) or not item[0]:
                raise InvalidArgument(f"feedback {i}: request_id must be a non-empty string", field="request_id")
            rows.append({"_request_id": item[0], "_label": item[1], "_ts": int(item[2]) if len(item) > 2 else now})
        if not rows:
            return None
        table = _table(_merge([{k: [x] for k, x in r.items()} for r in rows]))
        return self._write("feedback", model, table, min(r["_ts"] for r in rows))

    def _write(self, kind: str, model: str, table: Any, first_ms: int) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Dictionary-encode text that repeats (model, variant, categories), never the request ids or the
        # numbers: trying a dictionary on every float column cost most of the write.
        repeats = [f.name for f in table.schema if f.name != "_request_id"
                   and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        buffer = io.BytesIO()
        # Snappy, Parquet's usual default: the log is written inside the serving process, and zstd
        # cost three times the CPU (41 against 14 us per 100 rows of 26 columns) for 12% fewer bytes.
        pq.write_table(table, buffer, compression="snappy", use_dictionary=repeats)
        key = f"{self._prefix}{kind}/{model}/day={_day(first_ms)}/{first_ms:013d}-{new_id()}.parquet"
        self.backend.put_bytes(key, buffer.getvalue())
        return key

    # ------------------------------------------------------------------ reading

    def _segments(self, kind: str, model: str, start_ms: int | None, end_ms: int | None) -> Iterator[str]:
        base = f"{self._prefix}{kind}/{model}/"
        if start_ms is None or end_ms is None or end_ms - start_ms > 366 * DAY:
            yield from self.backend.list(base)
            return
        for day in _days(start_ms, end_ms):
            yield from self.backend.list(f"{base}day={day}/")

    def _read(self, kind: str, model: str, start_ms: int | None, end_ms: int | None,
              columns: Sequence[str] | None = None) -> Any:
        """The segments as one Arrow table; ``columns`` reads only those a segment has."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for key in self._segments(kind, model, start_ms, end_ms):
            source = pq.ParquetFile(io.BytesIO(self.backend.get_bytes(key)))
            if columns is None:
                tables.append(source.read())
            else:
                present = set(source.schema_arrow.names)
                tables.append(source.read(columns=[c for c in columns if c in present]))
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="permissive")

    def read(
        self,
        model: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        version: int | None = None,
        with_labels: bool = True,
        include_errors: bool = False,
    ) -> Any:
        """Predictions in ``[start_ms, end_ms)`` as a pandas DataFrame, labels joined as ``_label``.

        Error rows (requests that failed in the service) are left out unless
        ``include_errors``; then they come with their ``_error`` text and no prediction.
        """
        import pandas as pd

        v.check_name(model, "model")
        table = self._read("predictions", model, start_ms, end_ms)
        if table is None:
            return pd.DataFrame(columns=[*RESERVED, "_label"])
        df = table.to_pandas()
        keep = pd.Series(True, index=df.index)
        if start_ms is not None:
            keep &= df["_ts"] >= start_ms
        if end_ms is not None:
            keep &= df["_ts"] < end_ms
        if version is not None:
            keep &= df["_version"] == version
        if ERROR in df.columns and not include_errors:
            keep &= df[ERROR].isna()
        df = df[keep].sort_values("_ts", kind="stable").reset_index(drop=True)
        if ERROR in df.columns and not include_errors:
            df = df.drop(columns=[ERROR])
        if with_labels:
            labels = self.labels(model)
            df = df.merge(labels, on="_request_id", how="left") if len(labels) else df.assign(_label=None)
        return df

    def error_rate(
        self, model: str, start_ms: int | None = None, end_ms: int | None = None, version: int | None = None
    ) -> float:
        """Failed / (answered + failed) requests of ``version`` (every version: None) in ``[start_ms, end_ms)``.

        0.0 when there were no requests. What the automation agent's ``error_rate`` rule reads;
        :meth:`error_rates` gives the counts per version.
        """
        rates = self.error_rates(model, start_ms, end_ms, version=version)
        return ErrorRate(sum(r.answered for r in rates.values()), sum(r.failed for r in rates.values())).rate

    def error_rates(
        self, model: str, start_ms: int | None = None, end_ms: int | None = None, *, version: int | None = None
    ) -> dict[int | None, ErrorRate]:
        """Answered and failed requests per version in ``[start_ms, end_ms)``.

        A multi-row request counts once (its row 0). Error rows of requests that
        failed before any version was loaded are under ``None``. Shadow answers and
        failures count for their own version, as the challenger's record.
        """
        import numpy as np

        v.check_name(model, "model")
        table = self._read("predictions", model, start_ms, end_ms, columns=["_ts", "_version", ROW, ERROR])
        if table is None or table.num_rows == 0:
            return {}
        ts = table.column("_ts").to_numpy()
        keep = np.ones(len(ts), dtype=bool)
        if start_ms is not None:
            keep &= ts >= start_ms
        if end_ms is not None:
            keep &= ts < end_ms
        names = table.column_names
        versions = table.column("_version").to_pandas().to_numpy(dtype=float, na_value=np.nan)
        if version is not None:
            keep &= versions == version
        failed = table.column(ERROR).is_valid().to_numpy(zero_copy_only=False) if ERROR in names else \
            np.zeros(len(ts), dtype=bool)
        if ROW in names:  # rows 1.. of a multi-row request are not requests of their own
            row = table.column(ROW).to_pandas().to_numpy(dtype=float, na_value=0.0)
            first = row == 0
        else:
            first = np.ones(len(ts), dtype=bool)
        out: dict[int | None, ErrorRate] = {}
        for value in np.unique(versions[keep]):
            this = keep & (np.isnan(versions) if np.isnan(value) else versions == value)
            bad = int((this & failed).sum())
            good = int((this & ~failed & first).sum())
            out[None if np.isnan(value) else int(value)] = ErrorRate(answered=good, failed=bad)
        return out

    def labels(self, model: str) -> Any:
        """The newest label per request id (labels can arrive any time after the prediction)."""
        import pandas as pd

        table = self._read("feedback", model, None, None)
        if table is None:
            return pd.DataFrame(columns=["_request_id", "_label"])
        fb = table.to_pandas().sort_values("_ts", kind="stable")
        return fb.drop_duplicates("_request_id", keep="last")[["_request_id", "_label"]]


def _length(part: dict[str, Any]) -> int:
    return len(next(iter(part.values()), []))


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate column batches (lists or NumPy arrays); a column missing from a batch is null there.

    Columns that are arrays in every batch are joined with one ``np.concatenate``;
    the others become lists, padded with ``None`` where a batch lacks them.
    """
    import numpy as np

    first = parts[0].keys()
    if all(part.keys() == first for part in parts):  # the usual case: every batch has the same columns
        names: dict[str, None] = dict.fromkeys(first)
    else:
        names = {}
        for part in parts:
            names.update(dict.fromkeys(part))
    merged: dict[str, Any] = {}
    for name in names:
        chunks = [part.get(name) for part in parts]
        if set(map(type, chunks)) == {np.ndarray}:
            merged[name] = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]  # type: ignore[arg-type]
            continue
        values: list[Any] = []
        for part, chunk in zip(parts, chunks, strict=True):
            if chunk is None:
                values.extend([None] * _length(part))
            else:
                values.extend(chunk.tolist() if isinstance(chunk, np.ndarray) else chunk)
        merged[name] = values
    return merged


class PredictionLogWriter:
    """Buffers prediction rows and writes a segment per model every ``interval`` or ``max_rows``.

    ``add`` is what the request path calls: one lock and one append. ``flush``
    writes what is buffered and returns when it is stored; ``close`` flushes and
    stops the thread. A failed write keeps the rows for the next attempt.

    ``annotate(model, columns)``, when set, returns the merged columns of a
    segment with more added (it must not change the ones given); it runs on the
    writer's thread, and if it raises the rows are written without its columns.
    """

    def __init__(self, log_: PredictionLog, *, interval: float = 2.0, max_rows: int = 100_000,
                 annotate: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._log = log_
        self.annotate = annotate
        self._interval = interval
        self._max_rows = max_rows
        self._items: dict[str, list[Any]] = {}  # rows (dicts) and frames, per model
        self._count = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="conveyor-prediction-log", daemon=True)
        self._thread.start()

    def add(self, model: str, row: dict[str, Any]) -> None:
        """Buffer one prediction row (the reserved columns and the features)."""
        self.add_columns(model, {k: [x] for k, x in row.items()})

    def add_columns(self, model: str, columns: dict[str, Any]) -> None:
        """Buffer rows given as equal-length columns (what a serving batch produces)."""
        rows = len(columns["_ts"]) if "_ts" in columns else _length(columns)
        with self._lock:
            self._items.setdefault(model, []).append(columns)
            self._count += rows
            full = self._count >= self._max_rows
        if full:
            self._wake.set()

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                batches, self._items, self._count = self._items, {}, 0
            failed: dict[str, list[Any]] = {}
            for model, items in batches.items():
                try:
                    self._log.append_columns(model, self._annotated(model, _merge(items)))
                except Exception as exc:  # keep them for the next attempt
                    log.warning("could not write prediction rows for %s: %s", model, exc)
                    failed[model] = items
            if failed:
                with self._lock:
                    for model, items in failed.items():
                        self._items[model] = items + self._items.get(model, [])
                        self._count += sum(_length(c) for c in items)

    def _annotated(self, model: str, columns: dict[str, Any]) -> dict[str, Any]:
        if self.annotate is None:
            return columns
        try:
            return self.annotate(model, columns)
        except Exception as exc:  # extra columns are never worth losing the rows
            log.warning("prediction rows of %s written without their extra columns: %s: %s",
                        model, type(exc).__name__, exc)
            return columns

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        import pyarrow.parquet  # noqa: F401  (imported now, not in the first flush while requests wait)

        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            started = time.monotonic()
            self.flush()
            if time.monotonic() - started > self._interval:
                log.warning("writing the prediction log takes longer than its interval")
