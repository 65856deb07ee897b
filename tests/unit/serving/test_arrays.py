"""The array fast path: built once per version, used only where it is proven to answer like the DataFrame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.registry.package import LoadedModel
from conveyor.registry.signature import infer_signature
from conveyor.serving.arrays import array_predictor
from conveyor.serving.frames import FramePlan
from conveyor.serving.inputs import Batchable


@pytest.fixture
def data() -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"hr": rng.integers(0, 24, 200), "temp": rng.random(200), "hum": rng.random(200)})
    return frame, (frame["temp"] + frame["hr"] / 24 > 1).astype(int)


def _loaded(model: Any, example: pd.DataFrame | None, flavour: str = "sklearn") -> LoadedModel:
    sig = infer_signature(example if example is not None else pd.DataFrame({"hr": [1], "temp": [0.1], "hum": [0.2]}))
    return LoadedModel(model, {"signature": sig.to_dict(), "flavour": flavour, "model_format": "pickle"}, example)


def test_a_plain_estimator_predicts_from_the_batch_array_like_from_the_frame(data: tuple[pd.DataFrame, Any]) -> None:
    frame, y = data
    model = LogisticRegression().fit(frame, y)
    loaded = _loaded(model, frame.head(5))
    plan = FramePlan(loaded.signature)
    predict = array_predictor(loaded, plan.names, plan.to_array)
    assert predict is not None
    rows = frame.head(50)
    batch = plan.frame([Batchable(records=rows.to_dict(orient="records")[:20]),
                        Batchable(columns=["temp", "hr", "hum"], data=rows[["temp", "hr", "hum"]].values[20:].tolist())])
    assert batch is not None and batch.array.dtype == np.float64
    assert np.array_equal(predict(batch.array), model.predict(rows))
    assert np.array_equal(model.predict(batch.frame), model.predict(rows))
    assert batch.frame["hr"].dtype == np.int64 and batch.columns["hr"].dtype == np.int64
    assert hasattr(model, "feature_names_in_")  # the served model itself is untouched


def test_pipelines_custom_models_and_models_without_an_example_keep_the_frame(data: tuple[pd.DataFrame, Any]) -> None:
    frame, y = data
    names = ["hr", "temp", "hum"]
    pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(frame, y)
    plan = FramePlan(_loaded(pipeline, frame.head(5)).signature)
    assert array_predictor(_loaded(pipeline, frame.head(5)), names, plan.to_array) is None
    assert array_predictor(_loaded(LinearRegression().fit(frame, y), None), names, plan.to_array) is None
    reordered = LinearRegression().fit(frame[["temp", "hr", "hum"]], y)  # fitted in another column order
    assert array_predictor(_loaded(reordered, frame.head(5)), names, plan.to_array) is None

    class ByName:
        def predict(self, df: pd.DataFrame) -> Any:
            return df["temp"].to_numpy()

    assert array_predictor(_loaded(ByName(), frame.head(5), flavour="python"), names, plan.to_array) is None


def test_rows_that_are_not_clean_numbers_leave_the_fast_path(data: tuple[pd.DataFrame, Any]) -> None:
    frame, _ = data
    plan = FramePlan(infer_signature(frame.head(5)))
    record = frame.head(1).to_dict(orient="records")[0]
    assert plan.frame([Batchable(records=[{**record, "hr": 1.5}])]) is None  # lossy for an integer column
    assert plan.frame([Batchable(records=[{**record, "temp": None}])]) is None
    assert plan.frame([Batchable(records=[{**record, "extra": 1}])]) is None
    assert plan.frame([Batchable(records=[{**record, "hr": "8"}])]) is None
    assert plan.frame([Batchable(records=[{**record, "temp": float("inf")}])]) is None  # the model decides
    whole = plan.frame([Batchable(records=[{**record, "hr": 8.0}])])
    assert whole is not None and whole.columns["hr"].tolist() == [8]


def test_infinity_leaves_the_fast_path_so_the_model_still_refuses_it(data: tuple[pd.DataFrame, Any]) -> None:
    frame, y = data
    model = LogisticRegression().fit(frame, y)
    loaded = _loaded(model, frame.head(5))
    plan = FramePlan(loaded.signature)
    predict = array_predictor(loaded, plan.names, plan.to_array)
    assert predict is not None
    bad = frame.head(2).astype(float)
    bad.loc[0, "temp"] = np.inf
    with pytest.raises(ValueError, match="infinity"):  # what the served model says on the DataFrame path
        model.predict(bad)
    # The fast path never sends it (above); the frame path it takes answers as the model does.
    assert plan.frame([Batchable(records=bad.to_dict(orient="records"))]) is None
