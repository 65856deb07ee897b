"""The public package: a cheap import, a sorted ``__all__`` that resolves, the version."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import conveyor

HEAVY = ("pandas", "numpy", "sqlalchemy", "pyarrow", "boto3")

# The time itself is measured in benchmarks/tracking_ingest.py (speed is never asserted in
# tests); what keeps the import cheap, and is asserted here, is that nothing heavy loads.
_MEASURE = f"""
import json, sys
import conveyor
print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _import_in_a_fresh_interpreter() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_import_loads_no_heavy_dependency() -> None:
    assert _import_in_a_fresh_interpreter()["heavy"] == []


def test_all_is_sorted_and_unique() -> None:
    assert conveyor.__all__ == sorted(conveyor.__all__)
    assert len(conveyor.__all__) == len(set(conveyor.__all__))
    assert "__version__" in conveyor.__all__
    assert dir(conveyor) == conveyor.__all__


@pytest.mark.parametrize("name", conveyor.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(conveyor, name)
    assert value is not None
    if name != "__version__":
        # the object itself, not a stand-in (a namespace module such as cv.models by its last part)
        assert getattr(value, "__name__", name).rsplit(".", 1)[-1] == name


def test_the_sdk_example_names_are_public() -> None:
    for name in ("set_project", "start_run", "log_params", "log_metric", "log_artifact", "flush"):
        assert callable(getattr(conveyor, name))
    assert issubclass(conveyor.ConveyorError, Exception)


def test_an_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'log_metrik'"):
        conveyor.log_metrik  # noqa: B018  # type: ignore[attr-defined]
    assert not hasattr(conveyor, "pandas")
    with pytest.raises(ImportError):
        exec("from conveyor import log_metrik", {})


def test_version_matches_the_installed_distribution() -> None:
    assert conveyor.__version__ == importlib.metadata.version("conveyor-mlops")
