"""A local Ray instance for the tests, started once per session.

Two CPUs, no dashboard. Workers get the test process's ``sys.path`` as
``PYTHONPATH`` so they import the source under test and the test modules.
Under ``CI`` Ray must start; elsewhere a machine that cannot start it skips
the Ray tests with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """The ``ray`` module, initialised against a fresh local instance."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Ray is not installed (pip install 'conveyor-mlops[ray]')")
    started = False
    if not ray.is_initialized():
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                runtime_env={"env_vars": env},
                log_to_driver=False,
            )
        except Exception as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"Ray could not start on this machine: {exc}")
        started = True
    yield ray
    if started:
        ray.shutdown()
