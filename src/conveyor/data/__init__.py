"""Data: dataset versions, profiles and validation that stops tainted data.

    >>> import conveyor as cv
    >>> ds = cv.data.add("examples/data/bike_sharing_hourly.csv", name="bikes-raw")
    >>> df = cv.data.get("bikes-raw@latest").to_pandas()
    >>> suite = cv.data.Suite.from_profile(ds, tolerance="strict")
    >>> cv.data.validate(new_df, suite).ok

Heavy libraries (pandas, Polars, PyArrow) load only when a call needs them.
"""

from __future__ import annotations

from conveyor.data.api import (
    add,
    checkout,
    checks,
    diff,
    get,
    list_datasets,
    list_versions,
    log,
    log_input,
    pull,
    push,
    service,
)
from conveyor.data.profile import infer_schema, profile_frame
from conveyor.data.refs import Ref, parse_ref
from conveyor.data.report import Failure, ValidationReport
from conveyor.data.suite import Check, Suite
from conveyor.data.validation import validate, validate_or_raise
from conveyor.data.versions import DatasetVersion

__all__ = [
    "Check",
    "DatasetVersion",
    "Failure",
    "Ref",
    "Suite",
    "ValidationReport",
    "add",
    "checkout",
    "checks",
    "diff",
    "get",
    "infer_schema",
    "list_datasets",
    "list_versions",
    "log",
    "log_input",
    "parse_ref",
    "profile_frame",
    "pull",
    "push",
    "service",
    "validate",
    "validate_or_raise",
    "validate_step",
]


def __getattr__(name: str) -> object:
    # The pipeline step loads the pipelines service only when asked for.
    if name == "validate_step":
        from conveyor.data.steps import validate_step

        return validate_step
    raise AttributeError(f"module 'conveyor.data' has no attribute {name!r}")
