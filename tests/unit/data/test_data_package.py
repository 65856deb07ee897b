"""``cv.data`` is reachable from the SDK and cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys

import conveyor
import conveyor.data

HEAVY = ("pandas", "polars", "pyarrow", "numpy", "sqlalchemy", "boto3", "yaml")


def test_importing_the_data_service_loads_nothing_heavy() -> None:
    code = (
        "import json, sys, conveyor as cv; cv.data.Suite; cv.log_input; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == []


def test_the_sdk_exposes_the_data_service() -> None:
    assert conveyor.data.__name__ == "conveyor.data"  # the subpackage itself
    assert "data" in conveyor.__all__ and "log_input" in conveyor.__all__
    assert conveyor.log_input is conveyor.data.log_input
    assert sorted(conveyor.data.__all__) == conveyor.data.__all__
    for name in conveyor.data.__all__:
        assert getattr(conveyor.data, name) is not None
    for name in ("add", "log", "get", "diff", "validate", "checks"):
        assert callable(getattr(conveyor.data, name)), name  # no submodule shadows a function
