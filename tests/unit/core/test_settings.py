"""Settings: defaults under CONVEYOR_HOME, environment overrides, built once."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.core import settings as settings_module
from conveyor.core.errors import InvalidArgument
from conveyor.core.settings import ENVIRONMENT, get_settings, reset_settings, set_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Only CONVEYOR_HOME set (to a fresh folder); settings re-read before and after."""
    for name in [*ENVIRONMENT, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    reset_settings()
    yield home
    reset_settings()


def test_defaults_live_under_conveyor_home(clean_environment: Path) -> None:
    home = clean_environment
    s = get_settings()
    assert s.home == home
    assert s.metadata_uri == f"sqlite:///{home / 'conveyor.db'}"
    assert s.metadata_uri.startswith("sqlite:////")  # an absolute path, four slashes
    assert Path(s.artifacts_uri) == home / "artifacts"
    assert s.project == "default"
    assert s.s3_endpoint_url is None
    assert (s.flush_interval, s.flush_size) == (1.0, 20_000)
    assert (s.heartbeat_interval, s.heartbeat_timeout) == (10.0, 60.0)
    assert s.system_metrics is False


def test_home_defaults_to_dot_conveyor_and_expands_the_tilde(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONVEYOR_HOME")
    reset_settings()
    assert get_settings().home == Path.home() / ".conveyor"
    monkeypatch.setenv("CONVEYOR_HOME", "~/elsewhere")
    reset_settings()
    assert get_settings().home == Path.home() / "elsewhere"


def test_environment_variables_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CONVEYOR_URI": "postgresql://conveyor@db:5432/conveyor",
        "CONVEYOR_ARTIFACTS": "s3://bucket/artifacts",
        "CONVEYOR_PROJECT": "bikes",
        "CONVEYOR_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "CONVEYOR_FLUSH_INTERVAL": "0.25",
        "CONVEYOR_FLUSH_SIZE": "500",
        "CONVEYOR_HEARTBEAT_INTERVAL": "2",
        "CONVEYOR_HEARTBEAT_TIMEOUT": "30",
        "CONVEYOR_SYSTEM_METRICS": "yes",
        "CONVEYOR_SYSTEM_METRICS_INTERVAL": "5",
    }.items():
        monkeypatch.setenv(name, value)
    s = get_settings()
    assert s.metadata_uri == "postgresql://conveyor@db:5432/conveyor"
    assert s.artifacts_uri == "s3://bucket/artifacts"
    assert s.project == "bikes"
    assert s.s3_endpoint_url == "http://127.0.0.1:9000"
    assert s.flush_interval == 0.25
    assert s.flush_size == 500 and type(s.flush_size) is int
    assert (s.heartbeat_interval, s.heartbeat_timeout) == (2.0, 30.0)
    assert s.system_metrics is True and s.system_metrics_interval == 5.0


def test_empty_variables_mean_the_default(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    for name in ("CONVEYOR_URI", "CONVEYOR_ARTIFACTS", "CONVEYOR_PROJECT", "CONVEYOR_FLUSH_SIZE"):
        monkeypatch.setenv(name, "")
    s = get_settings()
    assert s.metadata_uri == f"sqlite:///{clean_environment / 'conveyor.db'}"
    assert Path(s.artifacts_uri) == clean_environment / "artifacts"
    assert s.project == "default" and s.flush_size == 20_000


def test_the_s3_endpoint_falls_back_to_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    assert get_settings().s3_endpoint_url == "http://generic:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-specific:2")
    reset_settings()
    assert get_settings().s3_endpoint_url == "http://s3-specific:2"
    monkeypatch.setenv("CONVEYOR_S3_ENDPOINT_URL", "http://ours:3")
    reset_settings()
    assert get_settings().s3_endpoint_url == "http://ours:3"


@pytest.mark.parametrize("value", ["0", "false", "no", "off", "maybe"])
def test_system_metrics_flag_is_off_unless_truthy(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CONVEYOR_SYSTEM_METRICS", value)
    assert get_settings().system_metrics is False


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("CONVEYOR_FLUSH_SIZE", "lots", "is not a number"),
        ("CONVEYOR_FLUSH_INTERVAL", "1s", "is not a number"),
        ("CONVEYOR_HEARTBEAT_TIMEOUT", "-5", "must be at least"),
        ("CONVEYOR_FLUSH_SIZE", "0", "must be at least 1"),
    ],
)
def test_a_bad_number_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgument) as info:
        get_settings()
    assert str(info.value).startswith(f"{name}={value!r}")
    assert problem in str(info.value)
    assert info.value.field == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONVEYOR_FLUSH_SIZE", "inf"),
        ("CONVEYOR_FLUSH_SIZE", "nan"),
        ("CONVEYOR_HEARTBEAT_INTERVAL", "nan"),
        ("CONVEYOR_FLUSH_INTERVAL", "inf"),
    ],
)
def test_a_non_finite_number_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgument, match=name):
        get_settings()


def test_settings_are_built_once_and_reset_re_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("CONVEYOR_PROJECT", "later")
    assert get_settings() is first and first.project == "default"
    reset_settings()
    again = get_settings()
    assert again is not first and again.project == "later"


def test_set_settings_replaces_them_for_the_process() -> None:
    chosen = get_settings().with_overrides(project="chosen")
    set_settings(chosen)
    assert get_settings() is chosen


def test_with_overrides_returns_a_changed_copy() -> None:
    base = get_settings()
    changed = base.with_overrides(project="bikes", flush_interval=0.5)
    assert (changed.project, changed.flush_interval) == ("bikes", 0.5)
    assert (base.project, base.flush_interval) == ("default", 1.0)
    assert changed.metadata_uri == base.metadata_uri


def test_with_overrides_refuses_unknown_fields() -> None:
    with pytest.raises(InvalidArgument, match="unknown setting\\(s\\): colour, flush_sise"):
        get_settings().with_overrides(flush_sise=10, colour="red")


def test_every_variable_the_settings_read_is_catalogued() -> None:
    source = Path(settings_module.__file__).read_text()
    read = set(re.findall(r"[\"'](CONVEYOR_[A-Z0-9_]+)[\"']", source))
    assert read == set(ENVIRONMENT)
    assert all(text.strip() for text in ENVIRONMENT.values())


def test_nothing_is_read_at_import(tmp_path: Path) -> None:
    # A broken variable must not break `import conveyor`; it fails when settings are first used.
    env = {"CONVEYOR_HOME": str(tmp_path), "CONVEYOR_FLUSH_SIZE": "lots", "PATH": ""}
    code = (
        "import conveyor, conveyor.core.settings as s\n"
        "try:\n"
        "    s.get_settings()\n"
        "except conveyor.ConveyorError as exc:\n"
        "    print(type(exc).__name__, exc.field)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "InvalidArgument CONVEYOR_FLUSH_SIZE"
