"""Outputs become bytes by type: Parquet, .npy, JSON, a registered format, pickle with a warning."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import ConveyorWarning, InvalidArgument
from conveyor.pipelines import Serializer, register_serializer
from conveyor.pipelines.serializers import by_name, dump, serializers


def _roundtrip(value: Any) -> tuple[str, Any]:
    name, data = dump(value, "output of step 'x'")
    return name, by_name(name).load(data)


def test_a_dataframe_is_parquet() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[10, 20])
    name, back = _roundtrip(df)
    assert name == "parquet"
    pd.testing.assert_frame_equal(back, df)


def test_an_array_is_npy_without_pickle() -> None:
    name, back = _roundtrip(np.eye(3))
    assert name == "npy"
    np.testing.assert_array_equal(back, np.eye(3))


@pytest.mark.parametrize("value", [{"rmse": 1.5, "n": [1, 2]}, [1, "a", None], "text", 3, 2.5, True, None])
def test_plain_values_are_json(value: Any) -> None:
    assert _roundtrip(value) == ("json", value)


def test_a_tuple_is_not_json_because_it_would_come_back_a_list() -> None:
    with pytest.warns(ConveyorWarning, match="stored with pickle"):
        assert _roundtrip((1, 2)) == ("pickle", (1, 2))


def test_an_unserialisable_value_is_an_error_naming_the_output() -> None:
    with pytest.raises(InvalidArgument, match="output of step 'x' cannot be stored") as info:
        dump(threading.Lock(), "output of step 'x'")
    assert info.value.field == "output of step 'x'"


class Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


def test_a_registered_format_is_used_before_the_built_ins() -> None:
    fmt = Serializer(
        name="celsius-test",
        accepts=lambda v: isinstance(v, Celsius),
        dump=lambda v: str(v.degrees).encode(),
        load=lambda data: Celsius(float(data)),
    )
    register_serializer(fmt)
    try:
        name, back = _roundtrip(Celsius(21.5))
        assert name == "celsius-test" and back.degrees == 21.5
        assert serializers()[0] is fmt
    finally:
        register_serializer(Serializer("celsius-test", lambda v: False, fmt.dump, fmt.load), first=False)


def test_an_unknown_format_name_says_what_to_do() -> None:
    with pytest.raises(InvalidArgument, match="no serializer 'onnx-model' is registered"):
        by_name("onnx-model")
