"""``conveyor data ...`` as a user runs it: output, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import conveyor as cv
from conveyor.cli.main import cli

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"
BIKES = DATA / "bike_sharing_hourly.csv"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="conveyor")


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def one_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def bikes(conveyor_home: Path) -> str:
    out = ok("data", "add", BIKES, "--name", "bikes-raw", "--tag", "source=uci")
    return out


def test_add_ls_and_show(bikes: str) -> None:
    first = bikes.splitlines()[0].split()
    assert first[0] == "bikes-raw@1" and first[1].startswith("blake3:") and "17379" in bikes
    assert "1 files, 1 hashed, 1 uploaded" in bikes
    listing = ok("data", "ls").splitlines()
    assert listing[0].split() == ["NAME", "LATEST", "VERSIONS", "CREATED"]
    assert listing[1].split()[:3] == ["bikes-raw", "bikes-raw@1", "1"]
    assert ok("data", "ls", "bikes-raw").splitlines()[1].split()[:3] == ["bikes-raw@1", "table", "17379"]
    show = ok("data", "show", "bikes-raw@1")
    assert "tags         source=uci" in show and "cnt" in show and "dteday" in show
    data = json.loads(ok("data", "show", "bikes-raw", "--json", "--files"))
    assert data["ref"] == "bikes-raw@1" and data["num_rows"] == 17379
    assert data["files"][0]["path"] == BIKES.name and "cnt" in data["profile"]["columns"]
    again = ok("data", "add", BIKES, "--name", "bikes-raw")
    assert again.startswith("bikes-raw@1 ") and "0 hashed, 0 uploaded" in again


def test_add_with_link_stores_the_file_itself_read_only(conveyor_home: Path, tmp_path: Path) -> None:
    import os

    source = tmp_path / "bikes.csv"
    source.write_bytes(BIKES.read_bytes())
    out = ok("data", "add", source, "--name", "bikes-linked", "--link")
    assert out.startswith("bikes-linked@1 ") and "1 hashed, 1 uploaded" in out
    files = json.loads(ok("data", "show", "bikes-linked@1", "--json", "--files"))["files"]
    hexdigest = files[0]["digest"].split(":", 1)[1]
    blob = conveyor_home / "artifacts" / "blobs" / hexdigest[:2] / hexdigest[2:]
    assert os.path.samefile(source, blob) and not source.stat().st_mode & 0o222


@pytest.mark.parametrize("name", ["../up", "a/b", "with space"])
def test_a_bad_name_is_one_line_and_exit_2(conveyor_home: Path, name: str) -> None:
    line = one_error(invoke("data", "add", BIKES, "--name", name), 2)
    assert "dataset name" in line
    assert ok("data", "ls").splitlines()[1:] == []


def test_a_bad_reference_is_one_line_and_exit_2(bikes: str) -> None:
    assert "the version after '@'" in one_error(invoke("data", "show", "bikes-raw@x"), 2)
    assert "does not exist" in one_error(invoke("data", "show", "nope@1"), 3)


def test_get_refuses_a_non_empty_folder_without_force(bikes: str, tmp_path: Path) -> None:
    dest = tmp_path / "work"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    assert "--force" in one_error(invoke("data", "get", "bikes-raw@1", "--to", dest), 2)
    assert not (dest / BIKES.name).exists()
    assert ok("data", "get", "bikes-raw@1", "--to", dest, "--force").strip() == str(dest)
    assert (dest / BIKES.name).read_bytes() == BIKES.read_bytes()


def test_validate_exits_1_with_the_report_and_records_it(bikes: str, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(BIKES.read_bytes())
    passed = invoke("data", "validate", good, "--against", "bikes-raw@1")
    assert passed.exit_code == 0 and passed.stdout.startswith("PASSED")
    tainted = pd.read_csv(BIKES)
    tainted["temp"] = tainted["temp"] * 5
    bad = tmp_path / "bad.parquet"
    tainted.to_parquet(bad)
    page = tmp_path / "report.html"
    failed = invoke("data", "validate", bad, "--against", "bikes-raw@1", "--html", page)
    assert failed.exit_code == 1
    assert failed.stdout.startswith("FAILED") and "temp: range" in failed.stdout
    assert "<!DOCTYPE html>" in page.read_text() and "temp" in page.read_text()
    as_json = invoke("data", "validate", bad, "--against", "bikes-raw@1", "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["ok"] is False
    checks = ok("data", "checks", "bikes-raw").splitlines()
    assert checks[0].split()[:3] == ["WHEN", "RESULT", "FAILED"]
    assert [row.split()[2] for row in checks[1:]] == ["FAILED", "FAILED", "ok"]
    assert len(json.loads(ok("data", "checks", "bikes-raw", "--json"))) == 3


def test_a_suite_can_be_exported_edited_and_used(bikes: str, tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    assert ok("data", "suite", "bikes-raw@1", "--tolerance", "relaxed", "--out", path).strip() == str(path)
    suite = cv.data.Suite.load(path)
    assert suite.source == "bikes-raw@1"
    suite.between("hr", 0, 5).save(path)  # an edit: only the night hours are acceptable
    result = invoke("data", "validate", BIKES, "--suite", path)
    assert result.exit_code == 1 and "hr: range" in result.stdout
    assert "exactly one of" in one_error(invoke("data", "validate", BIKES), 2)
    assert "ragged.csv" in one_error(_ragged(tmp_path, "--suite", path), 2)


def _ragged(tmp_path: Path, *args: str | Path) -> Result:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    return invoke("data", "validate", ragged, *args)


def test_diff_between_versions(bikes: str, tmp_path: Path) -> None:
    frame = pd.read_csv(BIKES).head(100)
    edited = tmp_path / BIKES.name
    frame.to_csv(edited, index=False)
    ok("data", "add", edited, "--name", "bikes-raw")
    out = ok("data", "diff", "bikes-raw@1", "bikes-raw@2")
    assert out.startswith("bikes-raw@1 -> bikes-raw@2") and f"~ {BIKES.name}" in out
    assert "rows: 17379 -> 100" in out
    data = json.loads(ok("data", "diff", "bikes-raw@1", "bikes-raw@2", "--json"))
    assert data["changed"] == [BIKES.name] and data["rows"] == [17379, 100]


def test_push_and_pull_between_local_stores(bikes: str, tmp_path: Path) -> None:
    remote = tmp_path / "remote-store"
    assert ok("data", "push", "--to", remote).startswith("2 of 2 blobs copied")
    assert ok("data", "push", "--to", remote).startswith("0 of 2 blobs copied")
    cv.configure(artifacts=str(tmp_path / "fresh-store"))
    assert "conveyor data pull bikes-raw@1" in one_error(invoke("data", "get", "bikes-raw@1", "--to", tmp_path / "x"), 3)
    assert ok("data", "pull", "bikes-raw@1", "--from", remote).startswith("2 of 2 blobs copied")
    ok("data", "get", "bikes-raw@1", "--to", tmp_path / "x")
    assert (tmp_path / "x" / BIKES.name).read_bytes() == BIKES.read_bytes()
