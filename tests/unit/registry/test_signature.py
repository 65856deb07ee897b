"""Signatures: inferred from examples, enforced column by column, compared between versions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import InvalidArgument
from conveyor.registry.signature import Signature, SignatureMismatch, infer_signature


@pytest.fixture
def frame(adult: dict[str, Any]) -> pd.DataFrame:
    return adult["raw"][["age", "hours_per_week", "workclass", "sex"]].head(50).reset_index(drop=True)


def test_inferred_from_a_frame_with_dtypes_and_nullability(frame: pd.DataFrame) -> None:
    sig = infer_signature(frame, np.zeros(len(frame)))
    cols = {c.name: (c.dtype, c.nullable) for c in sig.inputs.columns}
    assert cols["age"] == ("integer", False)
    assert cols["sex"] == ("string", False)
    assert cols["workclass"] == ("string", bool(frame["workclass"].isna().any()))
    assert sig.outputs is not None and sig.outputs.tensor is not None
    assert sig.outputs.tensor.shape == (None,) and sig.outputs.tensor.dtype == "float"
    assert Signature.from_dict(sig.to_dict()) == sig


def test_validate_lists_every_bad_column(frame: pd.DataFrame) -> None:
    sig = infer_signature(frame.dropna())
    sig.validate(frame.dropna())  # the example itself fits
    bad = frame.dropna().drop(columns=["sex"]).assign(age=lambda f: f["age"].astype(str), extra=1)
    bad.loc[bad.index[0], "hours_per_week"] = np.nan
    with pytest.raises(SignatureMismatch) as info:
        sig.validate(bad)
    problems = dict(info.value.problems)
    assert set(problems) == {"age", "hours_per_week", "sex", "extra"}
    assert "expected integer, got string" in problems["age"]
    assert "missing value" in problems["hours_per_week"]
    assert "missing column" in problems["sex"]
    assert "unexpected column" in problems["extra"]
    assert isinstance(info.value, InvalidArgument) and info.value.field in problems
    assert "4 problem(s)" in str(info.value)


def test_integers_fit_where_floats_are_expected_not_the_reverse(bikes: dict[str, Any]) -> None:
    X = bikes["X"].head(10)
    sig = infer_signature(X)
    sig.validate(X.astype({"temp": "float32"}))
    assert sig.problems(X.assign(hr=X["hr"] + 0.5))[0][0] == "hr"
    assert sig.problems(X.assign(temp=X["hr"])) == []


def test_tensor_signatures_check_shape_and_dtype() -> None:
    sig = infer_signature(np.zeros((4, 3), dtype=np.float32))
    assert sig.inputs.tensor is not None and sig.inputs.tensor.shape == (None, 3)
    sig.validate(np.ones((10, 3)))
    assert "dimension 1 must be 3" in sig.problems(np.ones((10, 4)))[0][1]
    assert "expected float" in sig.problems(np.array([["a", "b", "c"]]))[0][1]


def test_compatibility_between_candidate_and_champion(bikes: dict[str, Any]) -> None:
    X = bikes["X"].head(10)
    champion = infer_signature(X, np.zeros(10))
    assert infer_signature(X, np.zeros(10)).compatibility(champion) == []
    fewer = infer_signature(X.drop(columns=["hum"]), np.zeros(10))
    assert fewer.compatibility(champion) == []  # uses a subset of what callers send
    more = infer_signature(X.assign(rain=1.0), np.zeros(10))
    assert more.compatibility(champion) == ["input column 'rain' is not among the champion's inputs"]
    two = infer_signature(X, np.zeros((10, 2)))
    assert "output shape" in two.compatibility(champion)[0]
