"""Validation as a pipeline step: tainted data stops the pipeline here.

``validate_step(df, suite="suite.yaml")`` passes ``df`` through unchanged when it
satisfies the suite. When it does not, the step fails with
:class:`~conveyor.core.errors.DataValidationFailed` and nothing downstream runs.
Either way the report is stored with the step's run (the artifact
``data-checks/<id>.json``) and linked in lineage. The suite file is part of the
step's cache key, so editing the suite re-runs the check.

Example::

    from conveyor.data import validate_step

    @pipeline
    def training(path: str):
        raw = load(path)
        clean = validate_step(raw, suite="examples/bikes/suite.yaml")
        ...
"""

from __future__ import annotations

from typing import Any

from conveyor.pipelines import step


@step(files=("suite",))
def validate_step(data: Any, suite: str) -> Any:
    """Check ``data`` against the suite file ``suite`` (YAML or JSON); return it unchanged."""
    from conveyor.data.suite import Suite
    from conveyor.data.validation import validate_or_raise

    report = validate_or_raise(data, Suite.load(suite))
    from conveyor.tracking import fluent

    if fluent.active_run() is not None:
        fluent.log_metrics({"checks": len(report.results), "failed_checks": len(report.failures)})
    return data
