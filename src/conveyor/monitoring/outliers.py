"""Per-row outlier scores, learnt from the reference data.

Two methods:

- ``robust_z`` (default): per numeric column, the distance from the reference
  median in units of the scaled median absolute deviation; a row's score is its
  largest such distance, and a category the reference never saw scores
  infinity. Cheap, explainable, and stored as a few numbers per column.
- ``isolation_forest``: scikit-learn's IsolationForest on the numeric columns,
  with the threshold set at a quantile of the reference's own scores.

A row is an outlier when its score exceeds ``threshold``. ``rate(df)`` is the
share of outlier rows in a window, what a monitor tracks over time.

Categories are compared as text, and a float column whose values are all whole
numbers is read as integers first: a category column that came back from the
prediction log with a null in it (Parquet gives such integers as floats) still
says ``"2"``, not ``"2.0"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from conveyor.core.errors import InvalidArgument, InvalidState
from conveyor.monitoring.profile import as_pandas, infer_kind

_MAD_TO_STD = 1.4826  # MAD of a normal distribution, scaled to its standard deviation
METHODS = ("robust_z", "isolation_forest")


class OutlierDetector:
    """Score rows against what the reference looked like.

    Example::

        detector = OutlierDetector.fit(train_df, columns=["temp", "hum", "windspeed"])
        detector.rate(todays_requests)       # share of rows that look like nothing seen in training
    """

    def __init__(self, method: str, threshold: float, state: dict[str, Any]) -> None:
        self.method = method
        self.threshold = threshold
        self._state = state

    @classmethod
    def fit(
        cls,
        reference: Any,
        *,
        columns: Sequence[str] | None = None,
        method: str = "robust_z",
        threshold: float | None = None,
        quantile: float = 0.99,
        seed: int = 0,
    ) -> OutlierDetector:
        if method not in METHODS:
            raise InvalidArgument(f"method must be one of {', '.join(METHODS)}, not {method!r}", field="method")
        df = as_pandas(reference, "reference")
        if len(df) == 0:
            raise InvalidArgument("the reference has no rows", field="reference")
        names = list(columns) if columns is not None else [str(c) for c in df.columns]
        missing = [n for n in names if n not in df.columns]
        if missing:
            raise InvalidArgument(f"the reference has no column(s) {', '.join(missing)}", field="columns")
        numeric = [n for n in names if infer_kind(df[n]) == "numeric"]
        categorical = [n for n in names if n not in numeric]
        if method == "robust_z":
            centre, scale = {}, {}
            for n in numeric:
                values = df[n].to_numpy(dtype=float, na_value=np.nan)
                med = float(np.nanmedian(values))
                mad = float(np.nanmedian(np.abs(values - med))) * _MAD_TO_STD
                centre[n] = med
                # A column with no spread around its median: fall back to its std, then to 1.
                scale[n] = mad or float(np.nanstd(values)) or 1.0
            seen = {n: sorted(_as_text(df[n].dropna()).unique().tolist()) for n in categorical}
            state: dict[str, Any] = {"centre": centre, "scale": scale, "seen": seen}
            return cls(method, 6.0 if threshold is None else threshold, state)
        if not numeric:
            raise InvalidArgument("isolation_forest needs at least one numeric column", field="columns")
        from sklearn.ensemble import IsolationForest

        x = df[numeric].to_numpy(dtype=float, na_value=np.nan)
        fill = np.nanmedian(x, axis=0)
        x = np.where(np.isnan(x), fill, x)
        forest = IsolationForest(n_estimators=100, random_state=seed).fit(x)
        ref_scores = -forest.score_samples(x)
        cut = float(np.quantile(ref_scores, quantile)) if threshold is None else threshold
        return cls(method, cut, {"forest": forest, "columns": numeric, "fill": fill})

    def score(self, frame: Any) -> np.ndarray:
        """One score per row; higher is stranger."""
        df = as_pandas(frame, "data")
        if self.method == "isolation_forest":
            cols = self._state["columns"]
            self._require(df, cols)
            x = df[cols].to_numpy(dtype=float, na_value=np.nan)
            x = np.where(np.isnan(x), self._state["fill"], x)
            return np.asarray(-self._state["forest"].score_samples(x))
        centre, scale, seen = self._state["centre"], self._state["scale"], self._state["seen"]
        self._require(df, [*centre, *seen])
        scores = np.zeros(len(df))
        for n in centre:  # in place: serving scores every logged row with this
            z = np.subtract(df[n].to_numpy(dtype=float, na_value=np.nan), centre[n])
            np.abs(z, out=z)
            z *= 1.0 / scale[n]
            np.fmax(scores, z, out=scores)  # fmax skips NaN: a missing value adds nothing
        for n, known in seen.items():
            values = df[n]
            seen_now = _as_text(values).isin(known)
            if values.dtype.kind == "f":  # detectors fitted before whole floats were read as integers said "2.0"
                seen_now |= values.astype(str).isin(known)
            unseen = values.notna().to_numpy() & ~seen_now.to_numpy()
            scores[unseen] = np.inf
        return scores

    @property
    def columns(self) -> list[str]:
        """The columns a row must have to be scored."""
        if self.method == "isolation_forest":
            return list(self._state["columns"])
        return [*self._state["centre"], *self._state["seen"]]

    @property
    def fingerprint(self) -> str:
        """A short hash of the fitted state: equal fingerprints give equal verdicts (``robust_z`` only)."""
        import hashlib
        import json

        data = self.to_dict()
        canonical = {**data, "threshold": _number(data["threshold"]),  # 1 and 1.0 are the same detector
                     "centre": {k: _number(x) for k, x in data["centre"].items()},
                     "scale": {k: _number(x) for k, x in data["scale"].items()}}
        text = json.dumps(canonical, sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def flags(self, frame: Any) -> np.ndarray:
        return self.score(frame) > self.threshold

    def rate(self, frame: Any) -> float:
        flags = self.flags(frame)
        if not len(flags):
            raise InvalidArgument("the window has no rows", field="data")
        return float(flags.mean())

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-ready data (``robust_z`` only)."""
        if self.method != "robust_z":
            raise InvalidState("only robust_z detectors are stored as data; keep the forest as an artifact")
        return {"method": self.method, "threshold": self.threshold, **self._state}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutlierDetector:
        state = {k: data[k] for k in ("centre", "scale", "seen")}
        return cls(str(data["method"]), float(data["threshold"]), state)

    @staticmethod
    def _require(df: Any, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise InvalidArgument(f"the data has no column(s) {', '.join(missing)}", field="columns")


def _as_text(values: Any) -> Any:
    """Categories as text; whole floats as integers first (``2.0`` is the category ``"2"``)."""
    if values.dtype.kind == "f":
        numbers = values.to_numpy()
        present = numbers[~np.isnan(numbers)]
        if np.all(np.abs(present) < 2**53) and np.array_equal(present, np.round(present)):
            values = values.astype("Int64")
    return values.astype(str)


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value  # not a number: scoring will say so, not the fingerprint
