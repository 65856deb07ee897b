"""Predicting from one NumPy array instead of a DataFrame, where that is proven to give the same answer.

scikit-learn spends about a millisecond per ``predict`` call checking a
DataFrame (dtypes, sparse columns, feature names) before a dot product of a few
microseconds, and LightGBM and ONNX convert the frame to an array anyway. For a
clean numeric batch already in the signature's column order, a plain array is
the same input without that cost, so a served version gets an *array
predictor* when:

- its framework is known to read arrays by position: a plain scikit-learn
  estimator (not a pipeline or meta-estimator, whose steps may select columns
  by name) fitted on exactly the signature's columns in that order, a LightGBM
  booster with those feature names in that order, or an ONNX graph fed in
  signature order; and
- on the version's own input example, the array gives exactly the answer the
  DataFrame gives.

Everything else (custom python models, pipelines, a model without an input
example) keeps the DataFrame path, unchanged.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ArrayPredict = Callable[[Any], Any]  # 2-D array in signature order -> predictions


def _sklearn(model: Any, names: list[str]) -> ArrayPredict | None:
    names_in = vars(model).get("feature_names_in_")  # set by fit; a property on pipelines
    if names_in is None or list(names_in) != names or not hasattr(model, "get_params"):
        return None
    if len(model.get_params(deep=True)) != len(model.get_params(deep=False)):
        return None  # a pipeline or meta-estimator: its inner estimators may need the names
    bare = copy.copy(model)  # shares the fitted arrays; only the name check goes
    del bare.feature_names_in_
    import sklearn

    def predict(array: Any) -> Any:
        # The fast path only sends finite numbers (frames.FramePlan), so the model's own scan
        # for NaN and infinity, a tenth of a small call, is skipped; other input keeps it.
        with sklearn.config_context(assume_finite=True):
            return bare.predict(array)

    return predict


def _lightgbm(model: Any, names: list[str]) -> ArrayPredict | None:
    booster = getattr(model, "booster", None)
    if booster is None or list(booster.feature_name()) != names:
        return None
    return model.predict


def _onnx(model: Any, names: list[str]) -> ArrayPredict | None:
    return model.predict if getattr(model, "columns", None) == names else None


_MAKERS = {"sklearn": _sklearn, "lightgbm": _lightgbm, "onnx": _onnx}


def array_predictor(loaded: Any, names: list[str], to_array: Callable[[Any], Any]) -> ArrayPredict | None:
    """A predict taking the batch as one array, or None when the DataFrame path must stay.

    Args:
        loaded: the registry's ``LoadedModel``.
        names: the signature's column names, the order the array's columns come in.
        to_array: turns a DataFrame of those columns into the array the hot path would build.
    """
    maker = _MAKERS.get(getattr(loaded, "flavour", ""))
    example = getattr(loaded, "input_example", None)
    if maker is None or example is None or not hasattr(example, "columns") or len(example) == 0:
        return None
    try:
        predict = maker(loaded.model, names)
        if predict is None:
            return None
        frame = example[names]
        want = np.asarray(loaded.predict(frame))
        got = np.asarray(predict(to_array(frame)))
    except Exception as exc:  # any doubt: keep the DataFrame path
        log.info("%s: predicting from arrays was not proven (%s); using DataFrames", loaded, type(exc).__name__)
        return None
    if want.shape != got.shape or want.dtype != got.dtype or not np.array_equal(want, got):
        log.info("%s: arrays and DataFrames disagree on the input example; using DataFrames", loaded)
        return None
    return predict
