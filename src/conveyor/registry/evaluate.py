"""Standard metrics for a model on a labelled frame, overall and per slice.

Regression: ``rmse``, ``mae``, ``r2``, ``mape`` (rows whose target is 0 are left
out of MAPE). Classification: ``accuracy``, ``precision``, ``recall``, ``f1``
(binary: the positive class is the larger label; multiclass: macro average),
and, when the model gives probabilities, ``roc_auc``, ``log_loss`` and ``ece``
(expected calibration error over 10 equal-width bins of the top probability).
A metric that cannot be computed on a slice (ROC-AUC on one class) is NaN.

The promotion gate reuses :func:`score` so candidate and champion are judged
by exactly the same code on exactly the same rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.errors import InvalidArgument

TASKS = ("regression", "classification")
#: Metrics where a smaller value is better; every other metric is better larger.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape", "log_loss", "ece", "latency_p95_ms"})
_KEY_SAFE = re.compile(r"[^A-Za-z0-9_\-. :]")


@dataclass(frozen=True)
class Evaluation:
    """Metrics overall and per slice (``slices[column][value][metric]``)."""

    task: str
    rows: int
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "rows": self.rows, "metrics": self.metrics, "slices": self.slices}

    def flat(self) -> dict[str, float]:
        """Metric keys as logged to a run: ``rmse``, ``slice/season/1/rmse``..."""
        out = dict(self.metrics)
        for column, groups in self.slices.items():
            for value, metrics in groups.items():
                for name, number in metrics.items():
                    out[f"slice/{_KEY_SAFE.sub('_', column)}/{_KEY_SAFE.sub('_', value)}/{name}"] = number
        return out


def feature_columns(model: Any, data: Any, target: str) -> list[str]:
    """The columns the model takes: its signature, else what it was fitted on, else all but the target."""
    signature = getattr(model, "signature", None)
    if signature is not None and signature.inputs.columns:
        return signature.inputs.names
    fitted = getattr(getattr(model, "model", model), "feature_names_in_", None)
    if fitted is not None:
        return [str(c) for c in fitted]
    return [str(c) for c in data.columns if c != target]


def has_proba(model: Any) -> bool:
    """Whether ``model`` gives class probabilities (a LoadedModel says so itself)."""
    flag = getattr(model, "has_proba", None)
    if isinstance(flag, bool):
        return flag
    return callable(getattr(model, "predict_proba", None))


def model_classes(model: Any) -> list[Any]:
    """The labels the model was fitted on, in its probability-column order, if it tells."""
    inner = getattr(model, "model", model)
    for found in (getattr(inner, "classes_", None), getattr(inner, "classes", None)):
        if found is not None and not callable(found):
            return [c.item() if hasattr(c, "item") else c for c in found]
    return []


def _regression(y: Any, pred: Any) -> dict[str, float]:
    import numpy as np

    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float).ravel()
    err = pred - y
    nonzero = y != 0
    total = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float((err**2).sum()) / total if total > 0 else math.nan,
        "mape": float(np.mean(np.abs(err[nonzero] / y[nonzero]))) if nonzero.any() else math.nan,
    }


def _ece(correct: Any, confidence: Any, bins: int = 10) -> float:
    import numpy as np

    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def _classification(y: Any, pred: Any, proba: Any | None, classes: Sequence[Any]) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as skm

    y = np.asarray(y)
    pred = np.asarray(pred).ravel()
    binary = len(classes) == 2
    kwargs: dict[str, Any] = {"pos_label": classes[-1], "average": "binary"} if binary else {"average": "macro"}
    out = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0, **kwargs)),
        "recall": float(skm.recall_score(y, pred, zero_division=0, **kwargs)),
        "f1": float(skm.f1_score(y, pred, zero_division=0, **kwargs)),
    }
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if proba.ndim == 1:
            proba = np.column_stack([1 - proba, proba])
        present = len(np.unique(y)) > 1
        try:
            if not present:
                out["roc_auc"] = math.nan
            elif binary:
                out["roc_auc"] = float(skm.roc_auc_score(y == classes[-1], proba[:, -1]))
            else:
                out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=list(classes)))
        except ValueError:
            out["roc_auc"] = math.nan
        out["log_loss"] = float(skm.log_loss(y, proba, labels=list(classes)))
        top = proba.argmax(axis=1)
        out["ece"] = _ece(np.asarray(classes)[top] == y, proba.max(axis=1))
    return out


def score(
    model: Any, data: Any, *, target: str, task: str, slices: Sequence[str] = ()
) -> Evaluation:
    """Score ``model`` (anything with ``predict``) on the labelled frame ``data``."""
    import numpy as np

    if task not in TASKS:
        raise InvalidArgument(f"task must be one of {list(TASKS)}, got {task!r}", field="task")
    if not hasattr(data, "columns"):
        raise InvalidArgument("data must be a DataFrame (or a dataset that loads as one)", field="data")
    if target not in data.columns:
        raise InvalidArgument(f"target column {target!r} is not in the data", field="target")
    for column in slices:
        if column not in data.columns:
            raise InvalidArgument(f"slice column {column!r} is not in the data", field="slices")
    if len(data) == 0:
        raise InvalidArgument("data has no rows to evaluate on", field="data")
    columns = feature_columns(model, data, target)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise InvalidArgument(f"data lacks the model's input column(s) {missing}", field="data")
    X = data[columns]
    y = data[target].to_numpy()
    pred = np.asarray(model.predict(X))
    proba = None
    if task == "classification" and has_proba(model):
        proba = np.asarray(model.predict_proba(X), dtype=float)
    classes = model_classes(model) if task == "classification" else []
    if task == "classification" and (not classes or (proba is not None and proba.shape[1] != len(classes))):
        classes = sorted(np.unique(np.concatenate([y, pred.ravel()])).tolist())

    def compute(mask: Any) -> dict[str, float]:
        if task == "regression":
            return _regression(y[mask], pred[mask])
        return _classification(y[mask], pred[mask], None if proba is None else proba[mask], classes)

    everything = np.ones(len(y), dtype=bool)
    per_slice: dict[str, dict[str, dict[str, float]]] = {}
    for column in slices:
        keys = data[column].astype(str).to_numpy()
        per_slice[column] = {str(value): compute(keys == value) for value in np.unique(keys)}
    return Evaluation(task, len(y), compute(everything), per_slice)


def prediction_metrics(task: str, y: Any, pred: Any) -> dict[str, float]:
    """The task's metrics from labels and predictions already made (the prediction log's case).

    No probabilities are available there, so classification gets accuracy,
    precision, recall and F1 only.
    """
    import numpy as np

    if task not in TASKS:
        raise InvalidArgument(f"task must be one of {list(TASKS)}, got {task!r}", field="task")
    if task == "regression":
        return _regression(y, pred)
    classes = sorted(np.unique(np.concatenate([np.asarray(y), np.asarray(pred).ravel()])).tolist())
    return _classification(y, pred, None, classes)
