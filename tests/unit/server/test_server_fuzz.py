"""The OpenAPI document fed to a property-based fuzzer (schemathesis): no input earns a 5xx."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from conveyor.server.config import ServerConfig
from conveyor.testing.server import serve


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    config = ServerConfig(backend=f"sqlite:///{tmp / 'db.sqlite'}", artifacts=str(tmp / "artifacts"), max_body=65536)
    with serve(config) as url:
        yield url


def test_no_input_makes_the_server_fail(live: str) -> None:
    api = schemathesis.openapi.from_url(live + "/api/v1/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=int(os.environ.get("CONVEYOR_FUZZ_EXAMPLES", "10")), deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_5xx(case: Any) -> None:
            case.call_and_validate(base_url=live, checks=[not_a_server_error])

        no_5xx()
