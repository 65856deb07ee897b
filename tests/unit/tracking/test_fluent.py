"""The fluent SDK as a user drives it: runs, params, metrics, tags, artifacts, search."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.core.errors import (
    ArtifactCorrupted,
    ImmutableValue,
    InvalidArgument,
    InvalidState,
    NotFound,
    UnsafePath,
)

pytestmark = pytest.mark.usefixtures("conveyor_home")


def test_the_issue_example(tmp_path: Path) -> None:
    plot = tmp_path / "plots" / "residuals.png"
    plot.parent.mkdir()
    plot.write_bytes(b"\x89PNG fake image bytes")
    cv.set_project("bikes")
    with cv.start_run(name="lgbm-baseline", tags={"team": "forecast"}) as run:
        cv.log_params({"num_leaves": 31, "lr": 0.05})
        for epoch in range(1000):
            cv.log_metric("rmse", 1000.0 / (epoch + 1), step=epoch)
        cv.log_metrics({"mae": 12.3, "r2": 0.91})
        cv.set_tag("stage", "exploration")
        cv.log_artifact(str(plot))
        cv.log_artifact(str(plot.parent), artifact_path="all")
    r = cv.get_run(run.id)
    assert r.status is RunStatus.FINISHED and r.end_time is not None
    assert r.project == "bikes" and r.name == "lgbm-baseline"
    assert r.params == {"num_leaves": "31", "lr": "0.05"}
    assert r.metrics == {"mae": 12.3, "r2": 0.91, "rmse": 1.0}
    assert r.tags == {"team": "forecast", "stage": "exploration"}
    assert [a.path for a in r.artifacts] == ["all/plots/residuals.png", "residuals.png"]
    assert r.env["python"] and r.env["packages_count"] > 10 and r.env["packages_digest"].startswith("blake3:")
    history = cv.get_metric_history(run.id, "rmse")
    assert [p.step for p in history] == list(range(1000))
    assert history[0].value == 1000.0
    found = cv.search_runs(
        project="bikes",
        filter="metrics.rmse < 50 and params.lr = '0.05' and tags.team = 'forecast'",
        order_by=["metrics.rmse ASC"],
        max_results=100,
    )
    assert [x.id for x in found] == [run.id]
    frame = cv.search_runs(project="bikes", output_format="pandas")
    assert list(frame["run_id"]) == [run.id]
    assert frame.loc[0, "metrics.rmse"] == 1.0 and frame.loc[0, "params.lr"] == "0.05"


def test_project_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PROJECT", "from-env")
    cv.configure()
    with cv.start_run() as run:
        pass
    assert cv.get_run(run.id).project == "from-env"
    assert [p.name for p in cv.list_projects()] == ["from-env"]


def test_failed_and_killed_status() -> None:
    with pytest.raises(ZeroDivisionError), cv.start_run() as failing:
        1 / 0  # noqa: B018
    assert cv.get_run(failing.id).status is RunStatus.FAILED
    with pytest.raises(KeyboardInterrupt), cv.start_run() as interrupted:
        raise KeyboardInterrupt
    assert cv.get_run(interrupted.id).status is RunStatus.KILLED
    assert cv.active_run() is None


def test_end_run_with_status() -> None:
    run = cv.start_run()
    assert cv.active_run() is run
    ended = cv.end_run(status="FAILED")
    assert ended is not None and ended.status is RunStatus.FAILED
    assert cv.active_run() is None and cv.end_run() is None
    with pytest.raises(InvalidArgument, match="status"):
        cv.start_run()
        cv.end_run(status="DONE")


def test_nested_runs() -> None:
    with cv.start_run(name="sweep") as parent:
        with pytest.raises(InvalidState, match="nested=True"):
            cv.start_run()
        for i in range(3):
            with cv.start_run(name=f"trial-{i}", nested=True) as child:
                cv.log_metric("loss", float(i))
                assert cv.active_run() is child
        assert cv.active_run() is parent
    children = cv.search_runs(filter=f"attributes.parent_id = '{parent.id}'", order_by="metrics.loss")
    assert [c.name for c in children] == ["trial-0", "trial-1", "trial-2"]


def test_child_runs_live_in_their_parents_project() -> None:
    with cv.start_run(project="alpha") as parent, cv.start_run(nested=True) as child:
        pass
    explicit = cv.start_run(parent_run_id=parent.id)
    cv.end_run()
    assert {cv.get_run(r.id).project for r in (parent, child, explicit)} == {"alpha"}


def test_resume_a_run() -> None:
    with cv.start_run() as run:
        cv.log_metric("x", 1.0, step=0)
    with cv.start_run(run_id=run.id):
        cv.log_metric("x", 2.0, step=1)
    resumed = cv.get_run(run.id)
    assert resumed.status is RunStatus.FINISHED and resumed.metrics == {"x": 2.0}


def test_logging_without_an_active_run_is_an_error() -> None:
    for call in (lambda: cv.log_metric("x", 1.0), lambda: cv.log_param("a", 1), lambda: cv.set_tag("a", "b")):
        with pytest.raises(InvalidState, match="start_run"):
            call()


def test_bad_metric_values_are_refused_and_nothing_is_written() -> None:
    with cv.start_run() as run:
        for bad in ("12", None, True, b"1", object()):
            with pytest.raises(InvalidArgument, match="'loss'"):
                cv.log_metric("loss", bad)
        with pytest.raises(InvalidArgument, match="must be a number"):
            cv.log_metrics({"ok": 1.0, "bad": "x"})
        with pytest.raises(InvalidArgument, match="step"):
            cv.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="key"):
            cv.log_metric("../loss", 1.0)
    assert cv.get_run(run.id).metrics == {}


def test_nan_and_inf_metrics_are_kept() -> None:
    import numpy as np

    with cv.start_run() as run:
        cv.log_metric("loss", float("nan"), step=0)
        cv.log_metric("loss", np.float32(0.5), step=1)
        cv.log_metric("grad", math.inf)
    r = cv.get_run(run.id)
    assert r.metrics["loss"] == 0.5 and r.metrics["grad"] == math.inf
    assert math.isnan(cv.get_metric_history(run.id, "loss")[0].value)


def test_params_are_immutable() -> None:
    with cv.start_run() as run:
        cv.log_param("lr", 0.1)
        cv.log_param("lr", 0.1)
        with pytest.raises(ImmutableValue, match="immutable"):
            cv.log_param("lr", 0.2)
        with pytest.raises(InvalidArgument, match="6000"):
            cv.log_param("blob", "x" * 7000)
    assert cv.get_run(run.id).params == {"lr": "0.1"}


def test_unknown_run_id() -> None:
    missing = "0" * 32
    with pytest.raises(NotFound):
        cv.get_run(missing)
    with pytest.raises(NotFound):
        cv.log_metric("x", 1.0, run_id=missing)
    with pytest.raises(InvalidArgument, match="run_id"):
        cv.get_run("abc")


def test_unsafe_artifact_paths(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("hello")
    with cv.start_run() as run:
        for bad in ("../up", "/abs", "x/../../y"):
            with pytest.raises(UnsafePath):
                cv.log_artifact(str(f), artifact_path=bad)
        with pytest.raises(UnsafePath):
            cv.log_text("x", "../escape.txt")
        with pytest.raises(InvalidArgument, match="does not exist"):
            cv.log_artifact(str(tmp_path / "missing.txt"))
    assert cv.get_run(run.id).artifacts == ()


def test_artifacts_round_trip_and_dedup(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 50_000)
    (folder / "sub" / "config.json").write_text('{"a": 1}')
    with cv.start_run() as a:
        cv.log_artifacts(str(folder))
        cv.log_dict({"rmse": 1.5}, "summary/metrics.json")
    with cv.start_run() as b:
        cv.log_artifacts(str(folder), artifact_path="copy")
    out = cv.download_artifacts(a.id, dst_path=tmp_path / "out")
    assert (out / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert (out / "sub" / "config.json").read_text() == '{"a": 1}'
    assert '"rmse": 1.5' in (out / "summary" / "metrics.json").read_text()
    single = cv.download_artifacts(b.id, "copy/sub/config.json", tmp_path / "one")
    assert single.read_text() == '{"a": 1}'
    digests_a = {f.digest for f in cv.get_run(a.id).artifacts if not f.path.startswith("summary")}
    assert digests_a == {f.digest for f in cv.get_run(b.id).artifacts}  # stored once
    blobs = [p for p in (cv.client().content.backend.root / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 3
    with pytest.raises(NotFound):
        cv.download_artifacts(a.id, "nothing/here", tmp_path / "none")


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    with cv.start_run() as run:
        (stored,) = cv.log_artifact(str(f))
    blob = cv.client().content.backend.local_path("blobs/" + stored.digest[7:9] + "/" + stored.digest[9:])
    blob.chmod(0o644)
    blob.write_text("a,b\n1,3\n")
    with pytest.raises(ArtifactCorrupted):
        cv.download_artifacts(run.id, "data.csv", tmp_path / "out")
    assert not (tmp_path / "out" / "data.csv").exists()


def test_search_pages_and_projects() -> None:
    cv.set_project("a")
    ids = []
    for i in range(5):
        with cv.start_run(name=f"r{i}") as run:
            cv.log_metric("m", float(i))
        ids.append(run.id)
    cv.set_project("b")
    with cv.start_run():
        cv.log_metric("m", 99.0)
    page = cv.search_runs(project="a", order_by="metrics.m DESC", max_results=2)
    seen = [r.id for r in page]
    while page.next_page_token:
        page = cv.search_runs(project="a", order_by="metrics.m DESC", max_results=2, page_token=page.next_page_token)
        seen += [r.id for r in page]
    assert seen == ids[::-1]
    assert len(cv.search_runs()) == 1  # the current project only
    assert len(cv.search_runs(project="*")) == 6
    assert len(cv.search_runs(project=["a", "b"], filter="metrics.m >= 4")) == 2


def test_system_metrics_are_sampled() -> None:
    cv.configure(system_metrics_interval=0.05)
    with cv.start_run(log_system_metrics=True) as run:
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(cv.get_metric_history(run.id, "system/cpu_percent")) < 2:
            time.sleep(0.05)
    r = cv.get_run(run.id)
    assert {"system/cpu_percent", "system/memory_percent", "system/process_rss_mb"} <= set(r.metrics)
    assert 0 < r.metrics["system/process_rss_mb"] < 1e6
    with cv.start_run() as quiet:
        pass
    assert cv.get_run(quiet.id).metrics == {}


def test_flush_makes_metrics_visible_to_another_client() -> None:
    with cv.start_run() as run:
        cv.log_metric("x", 3.0)
        other = cv.TrackingClient()
        try:
            assert other.store.get_run(run.id).metrics == {}
            cv.flush()
            assert other.store.get_run(run.id).metrics == {"x": 3.0}
        finally:
            other.close()
