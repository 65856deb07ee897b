"""The ``conveyor`` command as a user runs it: output, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import conveyor as cv
from conveyor.cli.main import cli
from conveyor.stores.metadata.sql.schema import SCHEMA_REVISION, metadata

MISSING_RUN = "0123456789abcdef0123456789abcdef"
MODEL_BYTES = bytes(range(256)) * 40 + b"\x00\r\n tail"


@dataclass(frozen=True)
class Seeded:
    slow: str  # lr 0.1, rmse 40
    fast: str  # lr 0.05, rmse 30
    wide: str  # lr 0.05, rmse 50
    files: Path  # what was logged: model.bin and plots/{a.txt, sub/b.txt}

    @property
    def newest_first(self) -> list[str]:
        return [self.wide, self.fast, self.slow]


@pytest.fixture
def seeded(conveyor_home: Path, tmp_path: Path) -> Seeded:
    files = tmp_path / "files"
    (files / "plots" / "sub").mkdir(parents=True)
    (files / "model.bin").write_bytes(MODEL_BYTES)
    (files / "plots" / "a.txt").write_text("residuals\n")
    (files / "plots" / "sub" / "b.txt").write_bytes(b"\xffbinary\x00")
    cv.set_project("bikes")
    ids = []
    for name, lr, rmse in (("slow", 0.1, 40.0), ("fast", 0.05, 30.0), ("wide", 0.05, 50.0)):
        with cv.start_run(name=name, tags={"team": "forecast"}) as run:
            cv.log_params({"lr": lr, "num_leaves": 31})
            cv.log_metric("rmse", rmse)
            cv.log_metric("mae", rmse / 2)
            cv.log_artifact(files / "model.bin")
            cv.log_artifact(files / "plots")
        ids.append(run.id)
    cv.flush()
    return Seeded(*ids, files=files)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="conveyor")


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr == ""
    return result.stdout


def error_line(result: Result, code: int | None) -> str:
    """The single ``error:`` line of a failed command (exit ``code``, or any non-zero if None)."""
    expected = code is None and result.exit_code != 0 or result.exit_code == code
    assert expected, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


def fails(*args: str, code: int | None) -> str:
    return error_line(invoke(*args), code)


def table_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def run_ids_in(listing: str) -> list[str]:
    return [row[0] for row in table_rows(listing)[1:] if len(row[0]) == 32]


# --- the installed command, end to end ---------------------------------------------------


def conveyor_process(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a fresh interpreter, on the test's CONVEYOR_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CONVEYOR_HOME": str(home)},
    )


def test_the_command_prints_its_version(conveyor_home: Path) -> None:
    done = conveyor_process(conveyor_home, "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"conveyor, version {cv.__version__}"


def test_the_command_lists_runs_logged_by_another_process(
    seeded: Seeded, conveyor_home: Path
) -> None:
    done = conveyor_process(conveyor_home, "runs", "list", "--project", "bikes")
    assert done.returncode == 0, done.stderr
    assert table_rows(done.stdout)[0] == ["ID", "NAME", "STATUS", "STARTED", "mae", "rmse"]
    assert run_ids_in(done.stdout) == seeded.newest_first


def test_the_command_downloads_identical_bytes(
    seeded: Seeded, conveyor_home: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "download"
    done = conveyor_process(
        conveyor_home, "artifacts", "get", seeded.fast, "model.bin", "--to", str(dest)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest / "model.bin")
    assert (dest / "model.bin").read_bytes() == MODEL_BYTES


def test_the_command_reports_a_missing_run_in_one_line(seeded: Seeded, conveyor_home: Path) -> None:
    done = conveyor_process(conveyor_home, "runs", "show", MISSING_RUN)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr == f"error: run {MISSING_RUN} does not exist\n"


# --- projects ---------------------------------------------------------------------------


def test_projects_list(seeded: Seeded) -> None:
    rows = table_rows(ok("projects", "list"))
    assert rows[0] == ["NAME", "CREATED", "ID"]
    assert [row[0] for row in rows[1:]] == ["bikes"]
    listed = json.loads(ok("projects", "list", "--json"))
    assert [p["name"] for p in listed] == ["bikes"]
    assert listed[0]["id"] == rows[1][-1] and listed[0]["created_at"] > 0


def test_projects_list_on_a_new_home_is_an_empty_table(conveyor_home: Path) -> None:
    assert table_rows(ok("projects", "list")) == [["NAME", "CREATED", "ID"]]
    assert json.loads(ok("projects", "list", "--json")) == []


# --- runs list --------------------------------------------------------------------------


def test_runs_list_shows_the_metric_columns(seeded: Seeded) -> None:
    rows = table_rows(ok("runs", "list", "-p", "bikes"))
    header, body = rows[0], rows[1:]
    assert header == ["ID", "NAME", "STATUS", "STARTED", "mae", "rmse"]
    by_name = {row[1]: row for row in body}
    assert set(by_name) == {"slow", "fast", "wide"}
    # STARTED is two words (date and time); then mae, rmse
    assert by_name["fast"][0] == seeded.fast and by_name["fast"][2] == "FINISHED"
    assert by_name["fast"][-2:] == ["15", "30"]
    assert by_name["wide"][-2:] == ["25", "50"]


def test_runs_list_json(seeded: Seeded) -> None:
    page = json.loads(ok("runs", "list", "-p", "bikes", "--json"))
    assert set(page) == {"runs", "next_page_token"}
    assert page["next_page_token"] is None
    assert [r["id"] for r in page["runs"]] == seeded.newest_first
    fast = page["runs"][1]
    assert fast["params"] == {"lr": "0.05", "num_leaves": "31"}
    assert fast["metrics"] == {"mae": 15.0, "rmse": 30.0}
    assert fast["tags"] == {"team": "forecast"}
    assert fast["status"] == "FINISHED" and fast["project"] == "bikes"


def test_runs_list_filters_and_orders(seeded: Seeded) -> None:
    listing = ok(
        "runs",
        "list",
        "-p",
        "bikes",
        "--filter",
        "params.lr = '0.05'",
        "--order-by",
        "metrics.rmse ASC",
    )
    assert run_ids_in(listing) == [seeded.fast, seeded.wide]
    listing = ok(
        "runs", "list", "-p", "bikes", "-f", "metrics.rmse < 45", "-o", "metrics.rmse DESC"
    )
    assert run_ids_in(listing) == [seeded.slow, seeded.fast]
    assert run_ids_in(ok("runs", "list", "-p", "bikes", "-f", "metrics.rmse > 100")) == []


def test_runs_list_pages_with_the_printed_token(seeded: Seeded) -> None:
    seen: list[str] = []
    args = ["runs", "list", "-p", "bikes", "-n", "1"]
    for _ in range(5):
        out = ok(*args)
        page = run_ids_in(out)
        assert len(page) == 1
        seen += page
        more = [line for line in out.splitlines() if line.startswith("more: --page-token ")]
        if not more:
            break
        args = ["runs", "list", "-p", "bikes", "-n", "1", "--page-token", more[0].split()[-1]]
    assert seen == seeded.newest_first


def test_runs_list_refuses_a_token_from_another_query(seeded: Seeded) -> None:
    out = ok("runs", "list", "-p", "bikes", "-n", "1")
    token = out.strip().splitlines()[-1].split()[-1]
    line = fails(
        "runs",
        "list",
        "-p",
        "bikes",
        "-n",
        "1",
        "-f",
        "metrics.rmse > 1",
        "--page-token",
        token,
        code=2,
    )
    assert "page_token" in line


def test_runs_list_reports_a_bad_filter_with_its_position(seeded: Seeded) -> None:
    result = invoke("runs", "list", "-p", "bikes", "--filter", "metrics.rmse << 5")
    assert "position 14" in error_line(result, 2)
    echoed, caret = result.stderr.splitlines()[1:3]
    assert echoed.strip() == "metrics.rmse << 5"
    assert echoed[caret.index("^")] == "<"


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_runs_list_refuses_a_page_size_out_of_range(seeded: Seeded, bad: str) -> None:
    assert "max_results" in fails("runs", "list", "-p", "bikes", "-n", bad, code=2)


# --- runs show / compare ------------------------------------------------------------------


def test_runs_show(seeded: Seeded) -> None:
    out = ok("runs", "show", seeded.slow)
    fields = {row[0]: row[1:] for row in table_rows(out)}
    assert fields["id"] == [seeded.slow]
    assert fields["name"] == ["slow"] and fields["project"] == ["bikes"]
    assert fields["status"] == ["FINISHED"]
    assert fields["python"][0] == platform.python_version()
    assert fields["lr"] == ["0.1"] and fields["num_leaves"] == ["31"]
    assert fields["rmse"] == ["40"] and fields["mae"] == ["20"]
    assert fields["team"] == ["forecast"]
    assert fields["model.bin"][0] == str(len(MODEL_BYTES))
    for section in ("params:", "metrics:", "tags:", "artifacts:"):
        assert section in out.splitlines()


def test_runs_show_json(seeded: Seeded) -> None:
    run = json.loads(ok("runs", "show", seeded.slow, "--json"))
    assert run["id"] == seeded.slow and run["name"] == "slow"
    assert run["params"] == {"lr": "0.1", "num_leaves": "31"}
    assert run["metrics"] == {"mae": 20.0, "rmse": 40.0}
    assert run["tags"] == {"team": "forecast"}
    assert run["env"]["python"] == platform.python_version()
    assert sorted(a["path"] for a in run["artifacts"]) == [
        "model.bin",
        "plots/a.txt",
        "plots/sub/b.txt",
    ]


def test_runs_compare_marks_what_differs(seeded: Seeded) -> None:
    rows = {
        " ".join(row[:-2]): row[-2:]
        for row in table_rows(ok("runs", "compare", seeded.slow, seeded.fast))[1:]
    }
    assert rows == {
        "params.num_leaves": ["31", "31"],
        "* params.lr": ["0.1", "0.05"],
        "* metrics.mae": ["20", "15"],
        "* metrics.rmse": ["40", "30"],
    }


def test_runs_compare_header_names_the_runs(seeded: Seeded) -> None:
    header = ok("runs", "compare", seeded.slow, seeded.fast).splitlines()[0]
    assert f"slow ({seeded.slow[-6:]})" in header and f"fast ({seeded.fast[-6:]})" in header


def test_runs_compare_json(seeded: Seeded) -> None:
    compared = json.loads(ok("runs", "compare", seeded.fast, seeded.wide, "--json"))
    assert list(compared) == [seeded.fast, seeded.wide]
    assert compared[seeded.fast] == {
        "name": "fast",
        "params": {"lr": "0.05", "num_leaves": "31"},
        "metrics": {"mae": 15.0, "rmse": 30.0},
        "tags": {"team": "forecast"},
    }
    assert compared[seeded.wide]["metrics"] == {"mae": 25.0, "rmse": 50.0}


def test_runs_compare_needs_two_runs(seeded: Seeded) -> None:
    result = invoke("runs", "compare", seeded.slow)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "at least two run ids" in result.stderr


def test_runs_compare_names_the_missing_run(seeded: Seeded) -> None:
    assert (
        fails("runs", "compare", seeded.slow, MISSING_RUN, code=3)
        == f"error: run {MISSING_RUN} does not exist"
    )


@pytest.mark.parametrize("command", [("runs", "show"), ("artifacts", "list")])
def test_an_unknown_run_id_exits_3(seeded: Seeded, command: tuple[str, str]) -> None:
    assert fails(*command, MISSING_RUN, code=3) == f"error: run {MISSING_RUN} does not exist"


@pytest.mark.parametrize("command", [("runs", "show"), ("artifacts", "list"), ("artifacts", "get")])
@pytest.mark.parametrize("bad_id", ["nothex", "0123456789ABCDEF0123456789ABCDEF", "0123"])
def test_a_malformed_run_id_exits_2(seeded: Seeded, command: tuple[str, str], bad_id: str) -> None:
    line = fails(*command, bad_id, code=2)
    assert "run_id must be 32 lowercase hex characters" in line and repr(bad_id) in line


# --- artifacts --------------------------------------------------------------------------


def test_artifacts_list(seeded: Seeded) -> None:
    rows = table_rows(ok("artifacts", "list", seeded.slow))
    assert rows[0] == ["PATH", "SIZE", "DIGEST"]
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("model.bin", str(len(MODEL_BYTES))),
        ("plots/a.txt", "10"),
        ("plots/sub/b.txt", "8"),
    ]
    assert all(r[2].startswith("blake3:") for r in rows[1:])
    under = json.loads(ok("artifacts", "list", seeded.slow, "plots", "--json"))
    assert [f["path"] for f in under] == ["plots/a.txt", "plots/sub/b.txt"]
    assert {f["digest"] for f in under} == {r[2] for r in rows[2:]}


def test_artifacts_get_a_folder_writes_identical_bytes(seeded: Seeded, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert ok("artifacts", "get", seeded.wide, "plots", "--to", str(dest)).strip() == str(
        dest / "plots"
    )
    got = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert got == ["plots/a.txt", "plots/sub/b.txt"]
    for rel in got:
        assert (dest / rel).read_bytes() == (seeded.files / rel).read_bytes()


def test_artifacts_get_everything_by_default(seeded: Seeded, tmp_path: Path) -> None:
    dest = tmp_path / "all"
    assert ok("artifacts", "get", seeded.fast, "--to", str(dest)).strip() == str(dest)
    assert (dest / "model.bin").read_bytes() == MODEL_BYTES
    assert (dest / "plots" / "sub" / "b.txt").read_bytes() == b"\xffbinary\x00"


def test_artifacts_get_of_a_missing_path_exits_3(seeded: Seeded, tmp_path: Path) -> None:
    dest = tmp_path / "nothing"
    line = fails("artifacts", "get", seeded.fast, "model", "--to", str(dest), code=3)
    assert "no artifacts" in line and "'model'" in line  # a prefix of model.bin is not a match
    assert not dest.exists()


def test_artifacts_get_refuses_a_path_out_of_the_run(seeded: Seeded, tmp_path: Path) -> None:
    line = fails(
        "artifacts", "get", seeded.fast, "../model.bin", "--to", str(tmp_path / "x"), code=2
    )
    assert "'..'" in line


# --- db -----------------------------------------------------------------------------------


def test_db_current_on_the_default_database(seeded: Seeded) -> None:
    out = ok("db", "current")
    assert f"current: {SCHEMA_REVISION}" in out and "up to date" in out


def test_db_current_says_when_an_upgrade_is_needed(tmp_path: Path, conveyor_home: Path) -> None:
    out = ok("db", "current", "--uri", f"sqlite:///{tmp_path / 'empty.db'}")
    assert "current: none" in out and "conveyor db upgrade" in out


def test_db_upgrade_creates_the_schema_once(tmp_path: Path, conveyor_home: Path) -> None:
    path = tmp_path / "new.db"
    path.touch()
    uri = f"sqlite:///{path}"
    assert ok("db", "upgrade", "--uri", uri).strip() == f"{uri}: empty -> {SCHEMA_REVISION}"
    with closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%'")}  # SQLite's own
    assert tables == {t.name for t in metadata.sorted_tables} | {"alembic_version"}
    assert (
        ok("db", "upgrade", "--uri", uri).strip()
        == f"{uri} is already at revision {SCHEMA_REVISION}"
    )
    assert "up to date" in ok("db", "current", "--uri", uri)


def test_db_commands_refuse_a_string_that_is_not_a_uri(conveyor_home: Path) -> None:
    assert "not a database URI" in fails("db", "current", "--uri", "not a uri", code=2)


# --- known bugs -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["current", "upgrade"])
def test_db_commands_report_an_unreachable_server_in_one_line(
    conveyor_home: Path, command: str
) -> None:
    line = fails("db", command, "--uri", "postgresql://conveyor@127.0.0.1:1/conveyor", code=7)
    assert "127.0.0.1" in line


@pytest.mark.parametrize("case", ["unknown --revision", "database at unknown revision"])
def test_db_upgrade_reports_an_unknown_revision_in_one_line(
    tmp_path: Path, conveyor_home: Path, case: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'conveyor.db'}"
    ok("db", "upgrade", "--uri", uri)
    if case == "unknown --revision":
        line = fails("db", "upgrade", "--uri", uri, "--revision", "nope", code=None)
        assert "'nope'" in line
    else:
        with closing(sqlite3.connect(tmp_path / "conveyor.db")) as conn:
            conn.execute("UPDATE alembic_version SET version_num = 'zz99'")
            conn.commit()
        line = fails("db", "upgrade", "--uri", uri, code=None)
        assert "zz99" in line


def test_db_upgrade_refuses_a_foreign_database(tmp_path: Path, conveyor_home: Path) -> None:
    path = tmp_path / "shop.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE projects (code TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO projects VALUES ('shop-1')")
        conn.commit()
    line = fails("db", "upgrade", "--uri", f"sqlite:///{path}", code=5)
    assert "not a Conveyor database" in line
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT code FROM projects").fetchall() == [("shop-1",)]


def test_a_database_path_below_a_file_is_reported_in_one_line(
    tmp_path: Path, conveyor_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("CONVEYOR_URI", f"sqlite:///{tmp_path / 'not-a-folder' / 'conveyor.db'}")
    cv.configure()
    line = fails("runs", "list", code=None)
    assert "not-a-folder" in line
