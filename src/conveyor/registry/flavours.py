"""Model flavours: how each framework's model is saved into a package and loaded back.

A flavour is chosen from the model object (:func:`detect`), in this order:
ONNX ``ModelProto``, LightGBM, XGBoost, scikit-learn (pipelines included), and
finally any object with a ``predict`` method (the generic ``python`` flavour).

Formats and whether loading them can run code:

=========  ===========================  ==================
flavour    formats (default first)      runs code on load
=========  ===========================  ==================
sklearn    pickle, skops, onnx          pickle only
lightgbm   native, pickle, onnx         pickle only
xgboost    native, pickle               pickle only
onnx       onnx                         no
python     pickle                       yes
=========  ===========================  ==================

``format="onnx"`` converts scikit-learn and LightGBM models (skl2onnx /
onnxmltools) and stores them under the ``onnx`` flavour. Every loader imports
its framework lazily; a missing one raises :class:`MissingExtra` naming the pip
extra to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument, MissingExtra

MODEL_DIR = "model"


@dataclass(frozen=True)
class Saved:
    """What a flavour wrote: its name, format, and the facts the manifest records."""

    flavour: str
    format: str
    info: dict[str, Any]
    requirements: list[str]


def require(module: str, extra: str, what: str = "this model") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{what} needs the Python package {module!r}, which is not installed: "
            f"pip install 'conveyor-mlops[{extra}]'"
        ) from None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _from(model: Any, package: str) -> bool:
    return any(cls.__module__.split(".")[0] == package for cls in type(model).__mro__)


def detect(model: Any) -> str:
    """The flavour name of ``model``.

    Raises:
        InvalidArgument: the object is none of the known kinds and has no ``predict``.
    """
    if _from(model, "onnx") and type(model).__name__ == "ModelProto":
        return "onnx"
    if _from(model, "lightgbm"):
        return "lightgbm"
    if _from(model, "xgboost"):
        return "xgboost"
    if _from(model, "sklearn"):
        return "sklearn"
    if callable(getattr(model, "predict", None)):
        return "python"
    raise InvalidArgument(
        f"cannot package a {type(model).__name__}: it is not a scikit-learn, LightGBM, XGBoost or "
        "ONNX model and has no predict() method",
        field="model",
    )


FORMATS = {
    "sklearn": ("pickle", "skops", "onnx"),
    "lightgbm": ("native", "pickle", "onnx"),
    "xgboost": ("native", "pickle"),
    "onnx": ("onnx",),
    "python": ("pickle",),
}
EXTRAS = {"sklearn": "ml", "lightgbm": "ml", "xgboost": "xgboost", "onnx": "onnx", "python": "ml"}
#: Formats whose loading cannot execute code embedded in the file.
SAFE_FORMATS = frozenset({"native", "skops", "onnx"})


def save(model: Any, folder: Path, format: str | None, input_example: Any) -> Saved:
    """Write ``model`` under ``folder/model`` in ``format`` (default: the flavour's first)."""
    flavour = detect(model)
    fmt = format or FORMATS[flavour][0]
    if fmt not in FORMATS[flavour]:
        raise InvalidArgument(
            f"format {fmt!r} is not available for {flavour} models; choose one of {list(FORMATS[flavour])}",
            field="format",
        )
    out = folder / MODEL_DIR
    out.mkdir(parents=True)
    if fmt == "onnx" and flavour != "onnx":
        model = to_onnx(model, flavour, input_example)
        flavour = "onnx"
    if fmt == "pickle":
        with open(out / "model.pkl", "wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        dist = {"sklearn": "scikit-learn", "python": ""}.get(flavour, flavour)
        return Saved(flavour, fmt, {"class": _qualname(model)}, [f"{dist}=={_version(dist)}"] if dist else [])
    return _SAVERS[flavour](model, out, fmt)


def _qualname(model: Any) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def _save_sklearn(model: Any, out: Path, fmt: str) -> Saved:
    sio = require("skops.io", "skops", "the skops format")
    sio.dump(model, out / "model.skops")
    reqs = [f"scikit-learn=={_version('scikit-learn')}", f"skops=={_version('skops')}"]
    return Saved("sklearn", fmt, {"class": _qualname(model)}, reqs)


def _save_lightgbm(model: Any, out: Path, fmt: str) -> Saved:
    booster = getattr(model, "booster_", model)
    if not callable(getattr(booster, "save_model", None)):
        raise InvalidArgument("the LightGBM model is not fitted yet: fit it before logging it", field="model")
    booster.save_model(str(out / "model.lgb.txt"))
    kind = "booster"
    classes = None
    if hasattr(model, "booster_"):
        kind = "classifier" if hasattr(model, "classes_") else "regressor"
        if kind == "classifier":
            classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    info = {"class": _qualname(model), "kind": kind, "classes": classes}
    return Saved("lightgbm", fmt, info, [f"lightgbm=={_version('lightgbm')}"])


_XGB_CLASSES = ("XGBRegressor", "XGBClassifier", "XGBRanker", "XGBRFRegressor", "XGBRFClassifier", "Booster")


def _save_xgboost(model: Any, out: Path, fmt: str) -> Saved:
    kind = type(model).__name__
    if kind not in _XGB_CLASSES:
        raise InvalidArgument(f"XGBoost model class {kind} is not supported; use format='pickle'", field="format")
    model.save_model(str(out / "model.xgb.json"))
    return Saved("xgboost", fmt, {"class": _qualname(model), "kind": kind},
                 [f"xgboost=={_version('xgboost')}"])


def _save_onnx(model: Any, out: Path, fmt: str) -> Saved:
    (out / "model.onnx").write_bytes(model.SerializeToString())
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    reqs = [f"onnxruntime=={_version('onnxruntime')}"]
    return Saved("onnx", fmt, {"inputs": inputs, "outputs": outputs, "opset": model.opset_import[0].version}, reqs)


_SAVERS = {"sklearn": _save_sklearn, "lightgbm": _save_lightgbm, "xgboost": _save_xgboost, "onnx": _save_onnx}


def to_onnx(model: Any, flavour: str, input_example: Any) -> Any:
    """Convert a scikit-learn or LightGBM model to ONNX (numeric inputs, one float tensor)."""
    import numpy as np

    if input_example is None:
        raise InvalidArgument("format='onnx' needs an input_example to fix the input shape", field="input_example")
    try:
        sample = np.asarray(input_example, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidArgument(
            "format='onnx' converts models with numeric inputs only; this input example has "
            "non-numeric columns (use format='skops' instead)",
            field="input_example",
        ) from None
    if flavour == "sklearn":
        skl2onnx = require("skl2onnx", "onnx", "ONNX conversion")
        from sklearn.base import is_classifier

        # Probabilities as a plain tensor, not a list of dicts (what ZipMap would emit).
        options = {"zipmap": False} if is_classifier(model) else None
        return skl2onnx.to_onnx(model, sample[:1], options=options, target_opset=17)
    if flavour == "lightgbm":
        onnxmltools = require("onnxmltools", "onnx", "ONNX conversion")
        from onnxmltools.convert.common.data_types import FloatTensorType

        kwargs = {"zipmap": False} if hasattr(model, "classes_") else {}
        return onnxmltools.convert_lightgbm(
            model, initial_types=[("input", FloatTensorType([None, sample.shape[1]]))], target_opset=15, **kwargs
        )
    raise InvalidArgument(f"format='onnx' cannot convert {flavour} models", field="format")


# ----------------------------------------------------------------------- loading


def load(folder: Path, flavour: str, fmt: str, info: dict[str, Any], columns: list[str] | None) -> Any:
    """The model stored under ``folder/model``, as an object with ``predict``."""
    out = folder / MODEL_DIR
    what = f"a {flavour} model"
    if fmt == "pickle":
        if flavour in ("sklearn", "lightgbm", "xgboost"):
            require({"sklearn": "sklearn"}.get(flavour, flavour), EXTRAS[flavour], what)
        with open(out / "model.pkl", "rb") as handle:
            return pickle.load(handle)
    if flavour == "sklearn":
        sio = require("skops.io", "skops", what + " in skops format")
        path = out / "model.skops"
        untrusted = sio.get_untrusted_types(file=path)
        # Types from these libraries are data containers and estimators, not user code.
        trusted = [t for t in untrusted if t.split(".")[0] in ("sklearn", "numpy", "scipy", "builtins")]
        refused = sorted(set(untrusted) - set(trusted))
        if refused:
            raise InvalidArgument(f"the skops file names types outside scikit-learn: {refused}", field="model")
        return sio.load(path, trusted=trusted)
    if flavour == "lightgbm":
        lgb = require("lightgbm", "ml", what)
        return LightGBMModel(lgb.Booster(model_file=str(out / "model.lgb.txt")), info)
    if flavour == "xgboost":
        xgb = require("xgboost", "xgboost", what)
        kind = info.get("kind")
        if kind not in _XGB_CLASSES:
            raise InvalidArgument(f"unknown XGBoost model class {kind!r} in the package", field="model")
        model = getattr(xgb, str(kind))()
        model.load_model(str(out / "model.xgb.json"))
        return model
    if flavour == "onnx":
        ort = require("onnxruntime", "onnx", what)
        session = ort.InferenceSession((out / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"])
        return OnnxModel(session, columns)
    raise InvalidArgument(f"unknown flavour {flavour!r} in the package", field="flavour")


class LightGBMModel:
    """A LightGBM booster loaded from its text format, with the sklearn wrapper's predict."""

    def __init__(self, booster: Any, info: dict[str, Any]) -> None:
        self.booster = booster
        self.kind = info.get("kind", "booster")
        self.classes = info.get("classes")

    def predict_proba(self, data: Any) -> Any:
        import numpy as np

        raw = np.asarray(self.booster.predict(data))
        return np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, data: Any) -> Any:
        import numpy as np

        if self.kind != "classifier" or not self.classes:
            return np.asarray(self.booster.predict(data))
        return np.asarray(self.classes)[np.argmax(self.predict_proba(data), axis=1)]


class OnnxModel:
    """An ONNX graph run by onnxruntime: a DataFrame becomes one float32 tensor."""

    def __init__(self, session: Any, columns: list[str] | None) -> None:
        self.session = session
        self.columns = columns
        self.input_name = session.get_inputs()[0].name

    def _run(self, data: Any) -> list[Any]:
        import numpy as np
        import pandas as pd

        if isinstance(data, pd.DataFrame) and self.columns:
            data = data[self.columns]
        array = np.asarray(data, dtype=np.float32)
        return list(self.session.run(None, {self.input_name: array}))

    def predict(self, data: Any) -> Any:
        first = self._run(data)[0]
        return first.ravel() if first.ndim == 2 and first.shape[1] == 1 else first

    def predict_proba(self, data: Any) -> Any:
        outputs = self._run(data)
        if len(outputs) < 2:
            raise InvalidArgument("this ONNX model has no probability output", field="model")
        return outputs[1]


def describe(fmt: str) -> str:
    """One line for the docs and the CLI: does loading this format run code?"""
    return "does not run code when loaded" if fmt in SAFE_FORMATS else "can run code when loaded (pickle)"

