"""``conveyor monitor ...`` as a user runs it: output, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import conveyor as cv
from conveyor.cli.main import cli
from conveyor.monitoring.monitor_report import report_from_dict

DATA = Path(__file__).resolve().parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"
FEATURES = ["season", "mnth", "hr", "weathersit", "temp", "hum"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="conveyor")


def one_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def reference(conveyor_home: Path, tmp_path: Path) -> str:
    from sklearn.linear_model import LinearRegression

    bikes = pd.read_csv(DATA)
    winter = bikes[bikes["season"] == 1].head(2000)
    winter.to_csv(tmp_path / "winter.csv", index=False)
    cv.set_project("cli")
    with cv.start_run():
        cv.log_model(LinearRegression().fit(winter[FEATURES], winter["cnt"]), name="bike-demand",
                     input_example=winter[FEATURES].head(3))
    return cv.data.add(tmp_path / "winter.csv", name="bikes-winter").ref


def test_create_list_run_status_delete(reference: str, tmp_path: Path) -> None:
    created = invoke("monitor", "create", "bike-demand", "--reference", reference, "--window", "6h", "--json")
    assert created.exit_code == 0, created.output
    made = json.loads(created.stdout)
    assert made["model"] == "bike-demand" and made["features"] == FEATURES and made["window"] == "6h"
    listing = invoke("monitor", "list").stdout.splitlines()
    assert listing[0].split()[:3] == ["NAME", "MODEL", "REFERENCE"] and listing[1].split()[:3] == [
        "bike-demand", "bike-demand", reference]
    ran = invoke("monitor", "run", "bike-demand")
    assert ran.exit_code == 0 and ran.stdout.startswith("no-data: 0 rows"), ran.output
    status = invoke("monitor", "status", "bike-demand", "--json")
    body = json.loads(status.stdout)
    assert body["open_incident"] is None and [r["status"] for r in body["results"]] == ["no-data"]
    page = tmp_path / "r.html"
    assert invoke("monitor", "report", "bike-demand", "--html", page).exit_code == 0
    assert "No window with data yet" in page.read_text()
    assert invoke("monitor", "delete", "bike-demand").exit_code == 0
    assert "bike-demand" not in invoke("monitor", "list").stdout


def test_errors_are_one_line_with_the_exit_code(reference: str) -> None:
    line = one_error(invoke("monitor", "create", "m", "--model", "bike-demand", "--reference", reference,
                            "--window", "soon"), 2)
    assert "window" in line
    line = one_error(invoke("monitor", "create", "m", "--model", "bike-demand", "--reference", reference,
                            "--alert", "webhook=http://10.0.0.7/hook"), 2)
    assert "internal address" in line
    one_error(invoke("monitor", "create", "m", "--model", "bike-demand", "--reference", "nothing@1"), 3)
    one_error(invoke("monitor", "run", "nope"), 3)
    one_error(invoke("monitor", "status", "nope"), 3)
    assert invoke("monitor", "list", "--json").stdout.strip() == "[]"


def test_a_stored_report_reads_back_as_the_same_drift_report() -> None:
    bikes = pd.read_csv(DATA)
    report = cv.monitoring.drift(bikes[bikes["season"] == 1][FEATURES], bikes[bikes["season"] == 3][FEATURES])
    again = report_from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.to_dict() == report.to_dict() and again.drifted_columns == report.drifted_columns
    assert "temp" in again.drifted_columns
