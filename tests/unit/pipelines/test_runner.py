"""Running pipelines in-process: caching, invalidation, failures, retries, resume, tracking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.core.errors import ConveyorWarning, InvalidArgument, InvalidState
from conveyor.pipelines import StepStatus, load_pipeline_run, pipeline, resume, step


def _note(log: str, name: str) -> None:
    with open(log, "a") as f:
        f.write(name + "\n")


def _calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@step
def source(n: int, log: str) -> pd.DataFrame:
    _note(log, "source")
    return pd.DataFrame({"x": np.arange(n, dtype=float)})


@step
def double(df: pd.DataFrame, log: str) -> pd.DataFrame:
    _note(log, "double")
    return df * 2


@step
def total(df: pd.DataFrame, log: str, scale: float = 1.0) -> float:
    _note(log, "total")
    value = float(df["x"].sum()) * scale
    cv.log_metric("total", value)
    print(f"total is {value}")
    return value


@step
def width(df: pd.DataFrame, log: str) -> int:
    _note(log, "width")
    return int(df.shape[1])


@pipeline
def chain(n: int, log: str, scale: float = 1.0):
    df = source(n, log)
    t = total(double(df, log), log, scale=scale)
    return t, width(df, log)


def _statuses(run: Any) -> dict[str, str]:
    return {name: s.status.value for name, s in run.steps.items()}


@pytest.fixture
def log(tmp_path: Path, conveyor_home: Path) -> Path:
    return tmp_path / "calls.log"


def test_a_run_returns_outputs_and_a_rerun_is_served_from_the_cache(log: Path) -> None:
    first = chain.run(n=4, log=str(log), executor="inprocess")
    assert first.status is RunStatus.FINISHED
    assert _statuses(first) == dict.fromkeys(["source", "double", "total", "width"], "succeeded")
    assert first.output(0) == 12.0 and first.output(1) == 1
    pd.testing.assert_frame_equal(first["double"].load(), pd.DataFrame({"x": [0.0, 2.0, 4.0, 6.0]}))

    second = chain.run(n=4, log=str(log), executor="inprocess")
    assert _statuses(second) == dict.fromkeys(["source", "double", "total", "width"], "cached")
    assert all(s.cache_hit for s in second.steps.values())
    assert sorted(_calls(log)) == ["double", "source", "total", "width"]  # nothing ran again
    assert second.output(0) == 12.0
    assert second["total"].cache_key == first["total"].cache_key
    assert second.metrics["total"] == 12.0  # a hit carries the metrics it was computed with


def test_a_changed_parameter_invalidates_exactly_the_affected_steps(log: Path) -> None:
    chain.run(n=4, log=str(log), executor="inprocess")
    run = chain.run(n=4, log=str(log), scale=3.0, executor="inprocess")
    assert _statuses(run) == {"source": "cached", "double": "cached", "total": "succeeded", "width": "cached"}
    assert run.output(0) == 36.0
    upstream = chain.run(n=5, log=str(log), executor="inprocess")
    assert set(_statuses(upstream).values()) == {"succeeded"}  # everything depends on n


def test_no_cache_runs_everything_and_cache_false_opts_a_step_out(log: Path) -> None:
    chain.run(n=2, log=str(log), executor="inprocess")
    run = chain.run(n=2, log=str(log), executor="inprocess", no_cache=True)
    assert set(_statuses(run).values()) == {"succeeded"}
    assert _calls(log).count("source") == 2

    uncached = step(cache=False)(source.fn)

    @pipeline
    def fresh(n: int, log: str):
        uncached(n, log)

    fresh.run(n=2, log=str(log), executor="inprocess")
    assert _statuses(fresh.run(n=2, log=str(log), executor="inprocess")) == {"source": "succeeded"}


@step(files=("path",))
def read_file(path: str) -> str:
    return Path(path).read_text()


@pipeline
def reading(path: str):
    return read_file(path)


def test_a_declared_file_is_part_of_the_key(tmp_path: Path, conveyor_home: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")
    assert reading.run(path=str(data), executor="inprocess").output() == "one"
    assert _statuses(reading.run(path=str(data), executor="inprocess")) == {"read_file": "cached"}
    data.write_text("two")
    run = reading.run(path=str(data), executor="inprocess")
    assert _statuses(run) == {"read_file": "succeeded"} and run.output() == "two"


def test_a_missing_declared_file_fails_the_step_with_its_name(tmp_path: Path, conveyor_home: Path) -> None:
    run = reading.run(path=str(tmp_path / "nope.txt"), executor="inprocess")
    assert run.status is RunStatus.FAILED
    assert "read_file.path" in run["read_file"].error and "is not a file" in run["read_file"].error
    child = cv.get_run(run["read_file"].run_id or "")
    assert child.status is RunStatus.FAILED and "is not a file" in child.tags["conveyor.step.error"]


@step
def boom(df: pd.DataFrame, log: str) -> float:
    _note(log, "boom")
    raise RuntimeError("the data is wrong")


@step
def after(value: float, log: str) -> float:
    _note(log, "after")
    return value


@pipeline
def fragile(n: int, log: str):
    df = source(n, log)
    after(boom(df, log), log)
    width(df, log)


def test_a_failed_step_stops_its_descendants_but_not_other_branches(log: Path) -> None:
    run = fragile.run(n=3, log=str(log), executor="inprocess")
    assert run.status is RunStatus.FAILED
    assert _statuses(run) == {"source": "succeeded", "boom": "failed", "after": "skipped", "width": "succeeded"}
    assert "RuntimeError: the data is wrong" in run["boom"].error
    child = cv.get_run(run["boom"].run_id)
    assert child.status is RunStatus.FAILED
    assert "conveyor.cache.entry" not in child.tags and "conveyor.step.outputs" not in child.tags
    assert any(a.path == "logs/traceback-attempt1.txt" for a in child.artifacts)
    assert cv.get_run(run.id).status is RunStatus.FAILED
    stored = load_pipeline_run(run.id)
    assert _statuses(stored) == _statuses(run)


@step(retries=2, retry_delay=0)
def flaky(marker: str) -> int:
    count = int(Path(marker).read_text()) + 1 if Path(marker).exists() else 1
    Path(marker).write_text(str(count))
    cv.log_metric("attempt", count)
    if count < 3:
        raise ConnectionError(f"attempt {count} failed")
    return count


@pipeline
def retrying(marker: str):
    return flaky(marker)


def test_a_failing_step_is_retried_until_it_succeeds(tmp_path: Path, conveyor_home: Path) -> None:
    run = retrying.run(marker=str(tmp_path / "count"), executor="inprocess")
    assert run.status is RunStatus.FINISHED
    assert run["flaky"].attempts == 3 and run.output() == 3
    child = cv.get_run(run["flaky"].run_id)
    assert child.status is RunStatus.FINISHED and child.tags["conveyor.step.attempts"] == "3"


def test_retries_that_run_out_leave_the_step_failed(tmp_path: Path, conveyor_home: Path) -> None:
    once = step(retries=1, retry_delay=0)(flaky.fn)

    @pipeline
    def short(marker: str):
        once(marker)

    run = short.run(marker=str(tmp_path / "count"), executor="inprocess")
    assert run["flaky"].status is StepStatus.FAILED and run["flaky"].attempts == 2
    assert "ConnectionError: attempt 2 failed" in run["flaky"].error


@step(timeout=0.3)
def sleepy() -> int:
    import time

    time.sleep(60)
    return 1


@pipeline
def sleeping():
    sleepy()


def test_a_step_over_its_timeout_fails(conveyor_home: Path) -> None:
    run = sleeping.run(executor="inprocess")
    assert run["sleepy"].status is StepStatus.FAILED
    assert "StepTimeout" in run["sleepy"].error and "0.3s" in run["sleepy"].error


@step
def gate(df: pd.DataFrame, marker: str, log: str) -> pd.DataFrame:
    _note(log, "gate")
    if not Path(marker).exists():
        raise RuntimeError("gate closed")
    return df


@pipeline
def gated(n: int, marker: str, log: str):
    return total(gate(source(n, log), marker, log), log)


def test_resume_reruns_only_failed_and_not_run_steps(tmp_path: Path, log: Path) -> None:
    marker = tmp_path / "open"
    run = gated.run(n=3, marker=str(marker), log=str(log), executor="inprocess")
    assert _statuses(run) == {"source": "succeeded", "gate": "failed", "total": "skipped"}
    marker.touch()
    resumed = resume(run.id, executor="inprocess")
    assert resumed.id == run.id and resumed.status is RunStatus.FINISHED
    assert _statuses(resumed) == {"source": "reused", "gate": "succeeded", "total": "succeeded"}
    assert _calls(log) == ["source", "gate", "gate", "total"]
    assert resumed.output() == 3.0
    assert cv.get_run(run.id).status is RunStatus.FINISHED
    with pytest.raises(InvalidArgument, match="is not a pipeline run"):
        resume(resumed["gate"].run_id or "")


def test_resume_of_a_running_run_is_refused(conveyor_home: Path) -> None:
    with cv.start_run() as active:
        cv.set_tag("conveyor.pipeline", "fake")
        with pytest.raises(InvalidState, match="still running"):
            resume(active.id)


def test_steps_are_child_runs_with_params_metrics_logs_and_lineage(log: Path) -> None:
    run = chain.run(n=4, log=str(log), executor="inprocess")
    parent = cv.get_run(run.id)
    assert parent.tags["conveyor.pipeline"] == "chain"
    assert parent.params == {"n": "4", "log": str(log), "scale": "1.0"}
    assert parent.metrics["total"] == 12.0
    child = cv.get_run(run["total"].run_id)
    assert child.parent_id == run.id and child.name == "total"
    assert child.params == {"log": str(log), "scale": "1.0"}
    assert child.metrics["total"] == 12.0
    assert child.tags["conveyor.cache.key"] == run["total"].cache_key
    assert child.tags["conveyor.cache.hit"] == "false"
    (stdout,) = [a for a in child.artifacts if a.path == "logs/stdout-attempt1.txt"]
    assert cv.client().content.get_bytes(stdout.digest) == b"total is 12.0\n"
    edges = cv.client().store.list_lineage(("run", run["total"].run_id))
    double_out = run["double"].outputs[0].digest
    total_out = run["total"].outputs[0].digest
    assert {(e["src"], e["relation"], e["dst"]) for e in edges} == {
        (("artifact", double_out), "input", ("run", run["total"].run_id)),
        (("run", run["total"].run_id), "output", ("artifact", total_out)),
    }


def test_a_step_run_is_never_resumed_and_a_hit_is_born_finished(log: Path) -> None:
    first = chain.run(n=4, log=str(log), executor="inprocess")
    second = chain.run(n=4, log=str(log), executor="inprocess")
    events = cv.client().store.governance.list_audit(limit=10_000)

    def actions(run_id: str) -> list[tuple[str, Any, Any]]:
        return [(e.action, e.before, e.after) for e in events if e.object_id == run_id and e.action not in ("lineage.add", "run.artifacts")]

    fresh = first["total"].run_id
    assert [a for a, _, _ in actions(fresh)] == ["run.create", "run.params", "run.tags", "run.status"]
    assert actions(fresh)[-1][1:] == ({"status": "RUNNING"}, {"status": "FINISHED"})  # no RUNNING -> RUNNING
    hit = second["total"]
    (create, params) = actions(hit.run_id)
    assert create[0] == "run.create" and create[2]["status"] == "FINISHED"
    assert params[0] == "run.params" and params[2] == {"log": str(log), "scale": "1.0"}
    child = cv.get_run(hit.run_id)
    assert child.status is RunStatus.FINISHED and child.end_time is not None
    assert child.tags["conveyor.cache.hit"] == "true" and child.tags["conveyor.cache.key"] == hit.cache_key
    assert child.tags["conveyor.cache.source_run"] == first["total"].run_id
    assert child.metrics["total"] == 12.0 and child.params == {"log": str(log), "scale": "1.0"}
    edges = cv.client().store.list_lineage(("run", hit.run_id))
    assert {e["relation"] for e in edges} == {"input", "output"}
    assert cv.client().store.governance.verify_audit().ok


def test_a_pipeline_run_nests_under_the_active_run(log: Path) -> None:
    with cv.start_run() as outer:
        run = chain.run(n=1, log=str(log), executor="inprocess")
    assert cv.get_run(run.id).parent_id == outer.id


@step
def liar() -> int:
    return "not a number"  # type: ignore[return-value]


@pipeline
def lying():
    liar()


def test_a_return_value_not_matching_the_annotation_fails_and_is_not_cached(conveyor_home: Path) -> None:
    run = lying.run(executor="inprocess")
    assert "liar output expects int, got str 'not a number'" in run["liar"].error
    again = lying.run(executor="inprocess")
    assert again["liar"].status is StepStatus.FAILED and not again["liar"].cache_hit


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


@step
def opaque() -> Opaque:
    return Opaque(7)


@step
def unwrap(o: Opaque) -> int:
    return o.value


@pipeline
def wrapping():
    return unwrap(opaque())


def test_a_type_without_a_format_is_pickled_with_a_warning(conveyor_home: Path) -> None:
    with pytest.warns(ConveyorWarning, match="stored with pickle"):
        run = wrapping.run(executor="inprocess")
    assert run.output() == 7
    assert run["opaque"].outputs[0].serializer == "pickle"


def test_bad_run_arguments_change_nothing(log: Path) -> None:
    before = len(cv.search_runs())
    with pytest.raises(InvalidArgument, match="unknown executor 'gpu-farm'"):
        chain.run(n=1, log=str(log), executor="gpu-farm")
    with pytest.raises(InvalidArgument, match="needs parameter 'log'"):
        chain.run(n=1, executor="inprocess")
    assert len(cv.search_runs()) == before


@step
def power(x: float, p: int) -> float:
    cv.log_metric("value", x**p)
    return x**p


@step
def base(x: float) -> float:
    return x


@pipeline
def powers(x: float = 2.0, p: int = 1):
    return power(base(x), p)


def test_a_sweep_runs_the_grid_shares_upstream_steps_and_orders_by_a_metric(conveyor_home: Path) -> None:
    runs = powers.sweep(x=[2.0, 3.0], p=[1, 2], order_by="metrics.value DESC", executor="inprocess")
    assert [r.metrics["value"] for r in runs] == [9.0, 4.0, 3.0, 2.0]
    assert [json.dumps(r.params, sort_keys=True) for r in runs][0] == '{"p": 2, "x": 3.0}'
    base_hits = sorted(r["base"].status.value for r in runs)
    assert base_hits == ["cached", "cached", "succeeded", "succeeded"]  # one base per x
    with pytest.raises(InvalidArgument, match="order_by 'rmse'"):
        powers.sweep(x=[1.0], order_by="rmse")


@step
def interrupted() -> int:
    raise KeyboardInterrupt


@pipeline
def stopping():
    interrupted()


def test_an_interrupted_driver_leaves_no_run_running(conveyor_home: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        stopping.run(executor="inprocess")
    runs = cv.search_runs()
    assert len(runs) == 2 and {r.status for r in runs} == {RunStatus.KILLED}


@step
def shared_boom(x: float) -> float:
    raise ValueError(f"cannot use {x}")


@pipeline
def shared_failure(x: float = 1.0, p: int = 1):
    return power(shared_boom(x), p)


def test_a_sweep_whose_shared_step_fails_fails_every_trial_and_ends(conveyor_home: Path) -> None:
    runs = shared_failure.sweep(p=[1, 2, 3], executor="inprocess")
    assert [r.status for r in runs] == [RunStatus.FAILED] * 3
    for run in runs:
        assert _statuses(run) == {"shared_boom": "failed", "power": "skipped"}
        assert "ValueError: cannot use 1.0" in run["shared_boom"].error
