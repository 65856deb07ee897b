"""Packages round-trip every flavour with the same predictions, and refuse tampered files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conveyor.core.errors import ArtifactCorrupted, InvalidArgument, MissingExtra
from conveyor.registry import flavours
from conveyor.registry.package import build, load, read_manifest
from conveyor.stores.artifacts.cas import ContentStore, blob_key, open_content_store


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return open_content_store(str(tmp_path / "artifacts"))


def roundtrip(model: Any, content: ContentStore, X: Any, **kwargs: Any) -> Any:
    package = build(model, content, input_example=X.head(5), **kwargs)
    return package, load(content, package.digest)


def test_lightgbm_regressor_round_trips_in_its_native_text_format(
    content: ContentStore, bikes: dict[str, Any], lgbm_regressor: Any
) -> None:
    package, loaded = roundtrip(lgbm_regressor, content, bikes["X"])
    assert loaded.flavour == "lightgbm" and loaded.format == "native"
    np.testing.assert_allclose(loaded.predict(bikes["X"]), lgbm_regressor.predict(bikes["X"]))
    manifest = package.manifest
    assert manifest["runs_code_when_loaded"] is False
    assert any(r.startswith("lightgbm==") for r in manifest["requirements"])
    assert manifest["python"].count(".") == 2
    assert set(manifest["files"]) == {"model/model.lgb.txt", "input_example.parquet"}
    assert all(d.startswith("blake3:") for d in manifest["files"].values())
    assert [c["name"] for c in manifest["signature"]["inputs"]["columns"]] == list(bikes["X"].columns)
    assert loaded.input_example.equals(bikes["X"].head(5).reset_index(drop=True))


def test_lightgbm_classifier_keeps_its_labels(content: ContentStore, adult: dict[str, Any]) -> None:
    import lightgbm as lgb

    model = lgb.LGBMClassifier(n_estimators=15, verbose=-1, random_state=0).fit(adult["X"], adult["y"])
    _, loaded = roundtrip(model, content, adult["X"])
    np.testing.assert_array_equal(loaded.predict(adult["X"]), model.predict(adult["X"]))
    np.testing.assert_allclose(loaded.predict_proba(adult["X"]), model.predict_proba(adult["X"]))


@pytest.mark.parametrize("fmt", ["pickle", "skops"])
def test_sklearn_pipeline_round_trips(content: ContentStore, adult: dict[str, Any], fmt: str) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = adult["raw"][["age", "hours_per_week", "workclass", "sex"]].fillna("unknown")
    pipe = Pipeline([
        ("prep", ColumnTransformer([("num", StandardScaler(), ["age", "hours_per_week"]),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass", "sex"])])),
        ("clf", LogisticRegression(max_iter=200)),
    ]).fit(X, adult["y"])
    package, loaded = roundtrip(pipe, content, X, format=fmt)
    assert loaded.flavour == "sklearn" and package.manifest["runs_code_when_loaded"] is (fmt == "pickle")
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), pipe.predict_proba(X))


def test_xgboost_round_trips_natively(content: ContentStore, bikes: dict[str, Any]) -> None:
    import xgboost as xgb

    model = xgb.XGBRegressor(n_estimators=15, max_depth=4).fit(bikes["X"], bikes["y"])
    _, loaded = roundtrip(model, content, bikes["X"])
    assert (loaded.flavour, loaded.format) == ("xgboost", "native")
    np.testing.assert_allclose(loaded.predict(bikes["X"]), model.predict(bikes["X"]), rtol=1e-6)


def test_onnx_conversion_of_sklearn_and_lightgbm(
    content: ContentStore, bikes: dict[str, Any], lgbm_regressor: Any
) -> None:
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=5, max_depth=6, random_state=0).fit(bikes["X"], bikes["y"])
    for model in (forest, lgbm_regressor):
        package, loaded = roundtrip(model, content, bikes["X"], format="onnx")
        assert loaded.flavour == "onnx" and not package.manifest["runs_code_when_loaded"]
        np.testing.assert_allclose(loaded.predict(bikes["X"]), model.predict(bikes["X"]), rtol=1e-3, atol=1e-2)


def test_an_onnx_model_object_is_its_own_flavour(content: ContentStore, bikes: dict[str, Any]) -> None:
    from sklearn.linear_model import Ridge

    ridge = Ridge().fit(bikes["X"], bikes["y"])
    proto = flavours.to_onnx(ridge, "sklearn", bikes["X"].head(5))
    assert flavours.detect(proto) == "onnx"
    _, loaded = roundtrip(proto, content, bikes["X"])
    np.testing.assert_allclose(loaded.predict(bikes["X"]), ridge.predict(bikes["X"]), rtol=1e-3, atol=1e-2)


class Clipped:
    """A custom model: a fitted regressor with post-processing (no negative demand)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, frame: Any) -> Any:
        return np.clip(self.inner.predict(frame), 0, None)


def test_a_python_model_with_predict_round_trips(
    content: ContentStore, bikes: dict[str, Any], lgbm_regressor: Any
) -> None:
    model = Clipped(lgbm_regressor)
    package, loaded = roundtrip(model, content, bikes["X"])
    assert loaded.flavour == "python" and package.manifest["runs_code_when_loaded"]
    np.testing.assert_allclose(loaded.predict(bikes["X"]), model.predict(bikes["X"]))


def test_objects_without_predict_and_bad_formats_are_refused(content: ContentStore, lgbm_regressor: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        flavours.detect(object())
    assert info.value.field == "model"
    with pytest.raises(InvalidArgument, match="format 'skops' is not available for lightgbm") as info:
        build(lgbm_regressor, content, format="skops")
    assert info.value.field == "format"


def test_a_tampered_file_is_refused_before_loading(
    content: ContentStore, bikes: dict[str, Any], lgbm_regressor: Any
) -> None:
    package = build(lgbm_regressor, content, input_example=bikes["X"].head(5))
    digest = package.manifest["files"]["model/model.lgb.txt"]
    stored = content.backend.local_path(blob_key(digest))
    assert stored is not None
    text = stored.read_text()
    stored.chmod(0o644)
    stored.write_text(text.replace("shrinkage=", "shrinkage=9", 1))
    with pytest.raises(ArtifactCorrupted, match="was not loaded: a file of its package was modified"):
        load(content, package.digest, label="bike-demand v1")


def test_identical_models_are_stored_once(content: ContentStore, bikes: dict[str, Any], lgbm_regressor: Any) -> None:
    root = Path(content.uri)
    first = build(lgbm_regressor, content, input_example=bikes["X"].head(5))
    blobs = sorted(p for p in root.rglob("*") if p.is_file())
    second = build(lgbm_regressor, content, input_example=bikes["X"].head(5))
    assert second.digest == first.digest
    assert sorted(p for p in root.rglob("*") if p.is_file()) == blobs
    manifest, files = read_manifest(content, first.digest)
    assert manifest == first.manifest and len(files) == 3


def test_a_missing_framework_names_the_extra(
    content: ContentStore, bikes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import xgboost as xgb

    model = xgb.XGBRegressor(n_estimators=3, max_depth=2).fit(bikes["X"], bikes["y"])
    package = build(model, content, input_example=bikes["X"].head(5))
    monkeypatch.setitem(sys.modules, "xgboost", None)  # what an environment without xgboost sees
    with pytest.raises(MissingExtra, match=r"pip install 'conveyor-mlops\[xgboost\]'"):
        load(content, package.digest)
