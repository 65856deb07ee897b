"""Outlier flags on the prediction log: a stored monitor's detector scores what serving logs.

A monitor keeps the outlier detector it fitted on its reference
(:class:`~conveyor.monitoring.outliers.OutlierDetector`, stored as data). The
serving process loads the detector of a monitor of the model it serves and
scores every answered row of the prediction log with it: ``_outlier_score``,
``_outlier`` (over the detector's threshold), ``_outlier_monitor`` (the
monitor's id) and ``_outlier_detector`` (the detector's fingerprint, so
monitoring knows whose verdict it reads, before and after a rebase).

The scoring happens on the log writer's thread, vectorised over the rows of a
segment, never on the request path: a request costs nothing more, and a
detector that fails leaves null scores and one log line, never a failed request.

Which monitor: ``--outlier-monitor NAME`` when given; otherwise, among the
project's monitors of the served model whose detector reads only columns the
served version takes, the one on the served alias first (``bike@champion`` for
``models:/bike@champion``), then one on the bare model name, then the newest.
The choice is made again every ``poll`` seconds on a daemon thread, so a
monitor created or rebased later, or a new version with other inputs, is picked up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conveyor.registry.service import parse_model_uri
from conveyor.serving.live import LiveModel, Loaded, Poller
from conveyor.stores.predictions import (
    ERROR,
    OUTLIER,
    OUTLIER_DETECTOR,
    OUTLIER_MONITOR,
    OUTLIER_SCORE,
)

log = logging.getLogger(__name__)

Counted = Callable[[str, str, int, int], None]  # (model, monitor, rows scored, rows flagged)


@dataclass(frozen=True)
class Scorer:
    """The detector in use: whose it is and what it reads."""

    monitor_id: str
    monitor: str
    detector: Any  # OutlierDetector
    columns: list[str]
    fingerprint: str

    def describe(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "monitor_id": self.monitor_id, "detector": self.fingerprint,
                "method": self.detector.method, "threshold": self.detector.threshold, "columns": self.columns}


def input_names(loaded: Loaded | None) -> list[str] | None:
    """The served version's input columns; ``None`` when it has no column signature (nothing to check)."""
    signature = loaded.model.signature if loaded is not None else None
    if signature is None or not signature.inputs.columns:
        return None
    return [c.name for c in signature.inputs.columns]


def choose(records: Sequence[Any], model: str, alias: str | None, inputs: Sequence[str] | None,
           named: str | None = None) -> tuple[Any | None, str | None]:
    """The monitor record whose detector scores ``model``'s rows, or ``None`` and why (``None``: nothing to say)."""
    if named is not None:
        found = [r for r in records if r.name == named]
        if not found:
            return None, f"no monitor named {named!r}: outliers are not scored until it exists"
        record = found[0]
        if record.model.partition("@")[0] != model:
            return None, f"monitor {named!r} watches {record.model!r}, not {model!r}: outliers are not scored"
        if record.outliers is None:
            return None, f"monitor {named!r} has no outlier detector: outliers are not scored"
        missing = _missing(record, inputs)
        if missing:
            return None, (f"the detector of monitor {named!r} reads {', '.join(map(repr, missing))}, which {model!r} does "
                          "not take: outliers are not scored")
        return record, None
    mine = [r for r in records if r.model.partition("@")[0] == model and r.outliers is not None]
    fitting = [r for r in mine if not _missing(r, inputs)]
    if not fitting:
        if not mine:
            return None, None
        first = mine[0]
        return None, (f"the detector of monitor {first.name!r} reads {', '.join(map(repr, _missing(first, inputs)))}, "
                      f"which {model!r} does not take: outliers are not scored")
    served = f"{model}@{alias}" if alias else model

    def rank(r: Any) -> tuple[int, int, str]:
        return (0 if r.model == served else 1 if r.model == model else 2, -r.created_at, r.name)

    return min(fitting, key=rank), None


def _missing(record: Any, inputs: Sequence[str] | None) -> list[str]:
    if inputs is None:
        return []
    data = record.outliers or {}
    wanted = [*data.get("centre", {}), *data.get("seen", {})]
    return [c for c in wanted if c not in set(inputs)]


class OutlierWatch:
    """The detectors of one served model name, per version, chosen again every ``poll`` seconds.

    Each version gets the detector that fits its inputs (a canary and the primary
    may differ), and keeps it after it stops serving, so rows it answered that
    are still waiting to be written are scored as they would have been.
    ``annotate(columns)`` adds the outlier columns to a segment of log rows; it is
    what the writer's thread calls. Problems are said once each (not once per
    poll or per segment).
    """

    def __init__(self, registry: Any, lives: Sequence[LiveModel], *, monitor: str | None = None,
                 counted: Counted | None = None) -> None:
        self.registry = registry
        self.lives = list(lives)
        self.model = self.lives[0].name
        self.named = monitor
        self.counted = counted
        self.scorers: dict[int, Scorer | None] = {}  # by version; replaced whole, never changed in place
        #: the last problem choosing a detector, and scoring with one; each said once
        self._errors: dict[str, str | None] = {"choose": None, "score": None}
        self._lock = threading.Lock()

    @property
    def last_error(self) -> str | None:
        return self._errors["choose"] or self._errors["score"]

    @property
    def current(self) -> Scorer | None:
        """The scorer of the version the first variant serves now."""
        loaded = self.lives[0].current
        return self.scorers.get(loaded.version) if loaded is not None else None

    def refresh(self) -> bool:
        """Choose each served version's monitor again; True when a detector in use changed."""
        with self._lock:
            try:
                records = self.registry.store.monitors.list_monitors(self.registry.project, with_reference=False)
            except Exception as exc:  # the store is away: keep what we have
                self._say("choose", f"cannot read the monitors of project {self.registry.project!r}: {exc}")
                return False
            scorers = dict(self.scorers)
            problems: list[str] = []
            for live in self.lives:
                loaded = live.current
                if loaded is None:
                    continue
                _, ref = parse_model_uri(live.uri)
                alias = None if ref.isdigit() or ref == "latest" else ref
                record, why = choose(records, self.model, alias, input_names(loaded), self.named)
                scorers[loaded.version] = self._scorer(record, scorers.get(loaded.version), problems)
                if why is not None:
                    problems.append(why)
            changed = {v: s for v, s in scorers.items() if s is not self.scorers.get(v)}
            self.scorers = scorers
            self._say("choose", problems[0] if problems else None)
            if changed:
                self._errors["score"] = None  # another detector: its failures are its own
        for version, scorer in sorted(changed.items()):
            if scorer is not None:
                log.warning("outliers of %s version %d are scored by monitor %s (%s, threshold %g, detector %s)",
                            self.model, version, scorer.monitor, scorer.detector.method, scorer.detector.threshold,
                            scorer.fingerprint)
            elif not problems:
                log.warning("no monitor of %s has an outlier detector now: version %d is not scored", self.model,
                            version)
        return bool(changed)

    @staticmethod
    def _scorer(record: Any, previous: Scorer | None, problems: list[str]) -> Scorer | None:
        from conveyor.monitoring.outliers import OutlierDetector

        if record is None:
            return None
        try:
            detector = OutlierDetector.from_dict(record.outliers)
            fingerprint = detector.fingerprint
            if previous is not None and (previous.monitor_id, previous.fingerprint) == (record.id, fingerprint):
                return previous  # the same detector (a rebased monitor keeps its id, not its detector)
            return Scorer(record.id, record.name, detector, detector.columns, fingerprint)
        except Exception as exc:
            problems.append(f"the detector of monitor {record.name!r} cannot be read "
                            f"({type(exc).__name__}: {exc}): outliers are not scored")
            return None

    def annotate(self, columns: dict[str, Any]) -> dict[str, Any]:
        """``columns`` plus the outlier columns of the rows a detector scores (the others get nulls).

        Rows are grouped by version, each scored in one call by its version's
        detector; error rows and rows of a version without one stay null.
        """
        import pyarrow as pa

        scorers = self.scorers
        if not any(scorers.values()):
            return columns
        rows = len(columns["_ts"])
        answered = np.ones(rows, dtype=bool)
        if ERROR in columns:
            answered = np.array([x is None for x in columns[ERROR]], dtype=bool)
        versions = np.array([-1 if x is None else x for x in columns["_version"]], dtype=np.int64) \
            if isinstance(columns["_version"], list) else np.asarray(columns["_version"], dtype=np.int64)
        scores = np.full(rows, np.nan)
        flags = np.zeros(rows, dtype=bool)
        scored = np.zeros(rows, dtype=bool)
        by_scorer = np.zeros(rows, dtype=np.int64)  # index into ``used``: no Python object per row
        used: list[Scorer] = []
        failed = False
        for version in np.unique(versions[answered]):
            scorer = scorers.get(int(version))
            if scorer is None:
                continue
            take = answered & (versions == version)
            try:
                part = np.asarray(scorer.detector.score(_frame(columns, scorer.columns, take)), dtype=float)
                if part.shape != (int(take.sum()),):
                    raise ValueError(f"{part.shape[0]} scores for {int(take.sum())} rows")
            except Exception as exc:
                self._say("score", f"the detector of monitor {scorer.monitor!r} failed on logged rows of "
                                   f"{self.model} ({type(exc).__name__}: {exc}): their outlier columns are null")
                failed = True
                continue
            if scorer not in used:
                used.append(scorer)
            scores[take], scored[take], by_scorer[take] = part, True, used.index(scorer)
            flags[take] = part > scorer.detector.threshold
            if self.counted is not None:
                self.counted(self.model, scorer.monitor, int(take.sum()), int(flags[take].sum()))
        if not scored.any() and not failed:
            return columns  # no detector for these versions: no outlier columns, as without a monitor
        missing = ~scored
        which = pa.array(by_scorer, mask=missing)

        def text(values: list[str]) -> Any:
            return pa.DictionaryArray.from_arrays(which, pa.array(values, pa.string())).cast(pa.string())

        return {**columns, OUTLIER_SCORE: pa.array(scores, mask=missing), OUTLIER: pa.array(flags, mask=missing),
                OUTLIER_MONITOR: text([s.monitor_id for s in used]),
                OUTLIER_DETECTOR: text([s.fingerprint for s in used])}

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models/{name}`` shows: the detector in use and the last problem."""
        scorer = self.current
        return {**(scorer.describe() if scorer else {"monitor": None}), "error": self.last_error}

    def _say(self, kind: str, message: str | None) -> None:
        if message != self._errors[kind]:
            self._errors[kind] = message
            if message is not None:
                log.warning("%s", message)


def _frame(columns: dict[str, Any], names: Sequence[str], take: np.ndarray) -> Any:
    """The rows ``take`` of the columns a detector reads, as a DataFrame."""
    import pandas as pd

    missing = [n for n in names if n not in columns]
    if missing:
        raise KeyError(f"the logged rows have no column(s) {', '.join(map(repr, missing))}")
    frame = pd.DataFrame({n: columns[n] for n in names}, copy=False)
    return frame if take.all() else frame[take].reset_index(drop=True)


class Outliers(Poller):
    """The watches of a serving process, one per served model name, and the thread that refreshes them."""

    thread_name = "conveyor-outliers"

    def __init__(self, watches: dict[str, OutlierWatch], poll: float) -> None:
        super().__init__()
        self.watches = watches
        self.poll = poll

    @classmethod
    def of(cls, registry: Any, lives: Sequence[LiveModel], *, monitor: str | None, poll: float,
           counted: Counted | None = None) -> Outliers:
        """One watch per model name; ``monitor`` names the detector of the first (the primary's) model."""
        by_name: dict[str, list[LiveModel]] = {}
        for live in lives:
            by_name.setdefault(live.name, []).append(live)
        watches = {name: OutlierWatch(registry, same, monitor=monitor if same[0] is lives[0] else None,
                                      counted=counted) for name, same in by_name.items()}
        return cls(watches, poll)

    def annotate(self, model: str, columns: dict[str, Any]) -> dict[str, Any]:
        watch = self.watches.get(model)
        return columns if watch is None else watch.annotate(columns)

    def refresh(self) -> None:
        for watch in self.watches.values():
            watch.refresh()
