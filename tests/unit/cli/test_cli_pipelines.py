"""``conveyor pipelines``: run, runs, show, resume and graph, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import conveyor as cv
from conveyor.cli.main import cli

_PIPELINE_FILE = '''
from pathlib import Path

import conveyor as cv
from conveyor.pipelines import pipeline, step


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def checked(values: list, gate: str) -> int:
    if not Path(gate).exists():
        raise RuntimeError("the gate file is missing")
    cv.log_metric("total", sum(values))
    return sum(values)


@pipeline
def summing(gate: str, n: int = 4):
    return checked(numbers(n), gate)
'''


@pytest.fixture
def pipeline_file(tmp_path: Path, conveyor_home: Path) -> Path:
    path = tmp_path / "flows" / "sums.py"
    path.parent.mkdir()
    path.write_text(_PIPELINE_FILE)
    return path


def _cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_prints_each_step_and_a_rerun_hits_the_cache(pipeline_file: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    target = f"{pipeline_file}:summing"
    first = _cli("pipelines", "run", target, "-p", f"gate={gate}", "-p", "n=5", "-e", "inprocess")
    assert first.exit_code == 0, first.output
    assert "FINISHED" in first.output and "metrics: total=10" in first.output
    second = _cli("pipelines", "run", target, "-p", f"gate={gate}", "-p", "n=5", "-e", "inprocess", "--json")
    body = json.loads(second.output)
    assert [(s["name"], s["status"], s["cache_hit"]) for s in body["steps"]] == [
        ("numbers", "cached", True), ("checked", "cached", True)
    ]
    forced = _cli("pipelines", "run", target, "-p", f"gate={gate}", "-p", "n=5", "-e", "inprocess", "--no-cache", "--json")
    assert {s["status"] for s in json.loads(forced.output)["steps"]} == {"succeeded"}


def test_a_failed_run_exits_non_zero_and_resume_finishes_it(pipeline_file: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    failed = _cli("pipelines", "run", f"{pipeline_file}:summing", "-p", f"gate={gate}", "-e", "inprocess", "--json")
    assert failed.exit_code == 1
    run_id = json.loads(failed.output)["id"]
    shown = _cli("pipelines", "show", run_id)
    assert "checked" in shown.output and "failed" in shown.output
    gate.touch()
    resumed = _cli("pipelines", "resume", run_id, "-e", "inprocess", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert {s["name"]: s["status"] for s in json.loads(resumed.output)["steps"]} == {
        "numbers": "reused", "checked": "succeeded"
    }
    listed = _cli("pipelines", "runs", "--json")
    assert [r["id"] for r in json.loads(listed.output)["runs"]] == [run_id]
    assert cv.get_run(run_id).metrics["total"] == 6.0


@pytest.mark.parametrize(
    ("fmt", "line"),
    [("text", "  checked(values<-numbers, gate<-$gate)"), ("mermaid", "    numbers -->|values| checked"),
     ("dot", '    "numbers" -> "checked" [label="values"];')],
)
def test_graph_prints_the_dag(pipeline_file: Path, fmt: str, line: str) -> None:
    result = _cli("pipelines", "graph", f"{pipeline_file}:summing", "--format", fmt)
    assert result.exit_code == 0 and line in result.output.splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nowhere.py:summing"], "error: pipeline file 'nowhere.py' does not exist"),
        (["run", "{file}:missing"], "has no pipeline 'missing'; it has summing"),
        (["run", "{file}"], "does not name a pipeline; write FILE.py:NAME"),
        (["run", "{file}:summing", "-p", "n=four"], "error: -p n: 'four' is not JSON"),
        (["run", "{file}:summing", "-p", "gate=x", "-p", "m=1"], "has no parameter 'm'"),
        (["run", "{file}:summing", "-p", "gate=x", "-e", "quantum"], "unknown executor 'quantum'"),
        (["run", "{file}:summing", "-p", "gate=x", "-e", "ray://127.0.0.1:9"], "cannot reach the Ray cluster"),
        (["show", "0123456789abcdef0123456789abcdef"], "error: "),
        (["graph", "{file}:summing", "--format", "svg"], "Invalid value for '--format'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(pipeline_file: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["pipelines", *[a.format(file=pipeline_file) for a in args]])
    assert result.exit_code not in (0, 1) or "Invalid value" in result.output
    assert result.exit_code != 0
    assert message in result.output
    assert len(cv.search_runs("*")) == 0  # nothing was recorded
