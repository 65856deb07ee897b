"""The contract every metadata store passes (SQLite, PostgreSQL, and later the REST store).

Subclass it and provide a ``store`` fixture returning an empty store::

    class TestMyStore(MetadataStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(f"my://{tmp_path}")
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from conveyor.core.entities import ArtifactFile, RunStatus
from conveyor.core.errors import (
    FilterSyntaxError,
    ImmutableValue,
    InvalidArgument,
    InvalidState,
    NotFound,
    UnsafePath,
)
from conveyor.core.ids import new_id

DIGEST = "blake3:" + "ab" * 32


def _run(store: Any, project: str = "p", **kwargs: Any) -> Any:
    return store.create_run(project=project, **kwargs)


def _points(run_id: str, key: str, values: list[float], start_step: int = 0) -> list[tuple[str, str, float, int, int]]:
    now = int(time.time() * 1000)
    return [(run_id, key, v, start_step + i, now + i) for i, v in enumerate(values)]


class MetadataStoreContract:
    # ------------------------------------------------------------ projects

    def test_project_created_once(self, store: Any) -> None:
        a = store.get_or_create_project("bikes")
        b = store.get_or_create_project("bikes")
        assert a.id == b.id and a.name == "bikes"
        assert [p.name for p in store.list_projects()] == ["bikes"]
        assert store.get_project("bikes").id == a.id

    def test_concurrent_first_use_of_a_project(self, store: Any) -> None:
        import threading

        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def create(i: int) -> None:
            try:
                barrier.wait()
                store.create_run(project=f"race-{i % 2}")
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [p.name for p in store.list_projects()] == ["race-0", "race-1"]
        assert len(store.search_runs(["race-0", "race-1"])) == 8

    def test_project_errors(self, store: Any) -> None:
        with pytest.raises(NotFound):
            store.get_project("nope")
        with pytest.raises(InvalidArgument, match="project name"):
            store.get_or_create_project("../etc")
        assert store.list_projects() == []

    # ---------------------------------------------------------------- runs

    def test_create_and_get_run(self, store: Any) -> None:
        run = _run(store, name="baseline", tags={"team": "forecast"}, env={"python": "3.11"}, user="ana")
        got = store.get_run(run.id)
        assert got.id == run.id and got.name == "baseline" and got.project == "p"
        assert got.status is RunStatus.RUNNING and got.end_time is None
        assert got.tags == {"team": "forecast"} and got.env == {"python": "3.11"} and got.user == "ana"
        assert got.params == {} and got.metrics == {} and got.artifacts == ()

    def test_default_run_name(self, store: Any) -> None:
        assert _run(store).name.count("-") == 2

    def test_unknown_runs(self, store: Any) -> None:
        with pytest.raises(NotFound):
            store.get_run(new_id())
        with pytest.raises(InvalidArgument, match="run_id"):
            store.get_run("not-an-id")
        with pytest.raises(NotFound):
            _run(store, parent_id=new_id())
        assert store.search_runs(["p"]) == []

    def test_nested_run_records_parent(self, store: Any) -> None:
        parent = _run(store)
        child = _run(store, parent_id=parent.id)
        assert store.get_run(child.id).parent_id == parent.id
        found = store.search_runs(["p"], f"attributes.parent_id = '{parent.id}'")
        assert [r.id for r in found] == [child.id]

    def test_status_transitions(self, store: Any) -> None:
        run = _run(store)
        done = store.set_run_status(run.id, RunStatus.FINISHED)
        assert done.status is RunStatus.FINISHED and done.end_time >= done.start_time
        assert store.set_run_status(run.id, "finished").end_time == done.end_time  # idempotent
        with pytest.raises(InvalidState):
            store.set_run_status(run.id, RunStatus.FAILED)
        with pytest.raises(InvalidArgument, match="status"):
            store.set_run_status(run.id, "DONE")
        resumed = store.set_run_status(run.id, RunStatus.RUNNING)
        assert resumed.status is RunStatus.RUNNING and resumed.end_time is None

    def test_finish_run_writes_the_last_points_and_the_status_together(self, store: Any) -> None:
        run = _run(store)
        now = int(time.time() * 1000)
        store.finish_run(run.id, RunStatus.FINISHED, points=[(run.id, "loss", 0.5, 3, now)])
        done = store.get_run(run.id)
        assert done.status is RunStatus.FINISHED and done.metrics == {"loss": 0.5}
        assert done.end_time is not None and done.end_time >= done.start_time
        store.finish_run(run.id, RunStatus.FINISHED)  # again: nothing changes
        assert store.get_run(run.id).end_time == done.end_time

    def test_a_refused_finish_writes_none_of_its_points(self, store: Any) -> None:
        run = _run(store)
        store.finish_run(run.id, RunStatus.FAILED)
        now = int(time.time() * 1000)
        with pytest.raises(InvalidState):
            store.finish_run(run.id, RunStatus.FINISHED, points=[(run.id, "late", 1.0, 0, now)])
        assert store.get_metric_history(run.id, "late") == []
        assert store.get_run(run.id).status is RunStatus.FAILED
        with pytest.raises(NotFound):
            store.finish_run(new_id(), RunStatus.FINISHED)

    def test_finish_run_writes_its_tags_with_the_status(self, store: Any) -> None:
        run = _run(store, tags={"keep": "1", "swap": "old"})
        store.finish_run(run.id, RunStatus.FINISHED, tags={"swap": "new", "out": "blake3:x"})
        done = store.get_run(run.id)
        assert done.status is RunStatus.FINISHED
        assert done.tags == {"keep": "1", "swap": "new", "out": "blake3:x"}
        failed = _run(store)
        store.finish_run(failed.id, RunStatus.FAILED)
        with pytest.raises(InvalidState):  # refused: the tags are not written either
            store.finish_run(failed.id, RunStatus.FINISHED, tags={"cache": "k"})
        assert store.get_run(failed.id).tags == {}
        with pytest.raises(InvalidArgument):
            store.finish_run(run.id, RunStatus.FINISHED, tags={"../bad": "x"})

    def test_create_run_with_params_and_metrics(self, store: Any) -> None:
        run = _run(store, params={"lr": 0.1, "depth": "3"}, metrics={"rmse": 2.5, "nan": math.nan})
        assert run.status is RunStatus.RUNNING and run.end_time is None
        assert run.params == {"lr": "0.1", "depth": "3"}
        got = store.get_run(run.id)
        assert got.params == {"lr": "0.1", "depth": "3"} and got.metrics["rmse"] == 2.5
        assert math.isnan(got.metrics["nan"])
        assert [(p.value, p.step) for p in store.get_metric_history(run.id, "rmse")] == [(2.5, 0)]
        with pytest.raises(ImmutableValue):  # they are the run's params like any other
            store.log_params(run.id, {"lr": "0.2"})

    def test_create_a_run_that_has_already_ended(self, store: Any) -> None:
        parent = _run(store)
        run = _run(
            store, name="cached-step", parent_id=parent.id, tags={"k": "v"}, params={"x": "1"},
            status=RunStatus.FINISHED, start_time=1_000, end_time=1_500,
        )
        assert run.status is RunStatus.FINISHED and run.end_time == 1_500
        got = store.get_run(run.id)
        assert got.status is RunStatus.FINISHED and (got.start_time, got.end_time) == (1_000, 1_500)
        assert got.tags == {"k": "v"} and got.params == {"x": "1"} and got.parent_id == parent.id
        assert store.reap_stale_runs(0) == [parent.id]  # an ended run is never reaped
        failed = _run(store, status="failed")
        assert failed.status is RunStatus.FAILED and failed.end_time is not None
        assert failed.end_time >= failed.start_time
        with pytest.raises(InvalidState):  # it ended: the usual lifecycle applies
            store.set_run_status(failed.id, RunStatus.FINISHED)
        before = len(store.search_runs(["p"]))
        with pytest.raises(InvalidArgument, match="end_time"):
            _run(store, end_time=2_000)  # RUNNING has no end
        with pytest.raises(InvalidArgument, match="end_time"):
            _run(store, status=RunStatus.FINISHED, start_time=2_000, end_time=1_000)
        with pytest.raises(InvalidArgument, match="status"):
            _run(store, status="DONE")
        with pytest.raises(InvalidArgument):
            _run(store, status=RunStatus.FINISHED, metrics={"m": "not a number"})
        assert len(store.search_runs(["p"])) == before  # refused: nothing was written

    def test_a_run_records_its_lineage_when_created_and_when_it_ends(self, store: Any) -> None:
        hit = _run(
            store, status=RunStatus.FINISHED, inputs=[("artifact", "blake3:in")],
            outputs=[("artifact", "blake3:out"), ("artifact", "blake3:out")],  # twice: one edge
        )
        assert [(e["src"], e["relation"], e["dst"]) for e in store.list_lineage(("run", hit.id))] == [
            (("artifact", "blake3:in"), "input", ("run", hit.id)),
            (("run", hit.id), "output", ("artifact", "blake3:out")),
        ]
        step = _run(store)
        store.finish_run(step.id, RunStatus.FINISHED, tags={"out": "1"},
                         inputs=[("artifact", "blake3:in")], outputs=[("artifact", "blake3:new")])
        assert {(e["src"], e["dst"]) for e in store.list_lineage(("run", step.id))} == {
            (("artifact", "blake3:in"), ("run", step.id)), (("run", step.id), ("artifact", "blake3:new")),
        }
        refused = _run(store)
        store.finish_run(refused.id, RunStatus.FAILED)
        with pytest.raises(InvalidState):  # a refused finish records no lineage
            store.finish_run(refused.id, RunStatus.FINISHED, outputs=[("artifact", "blake3:x")])
        assert store.list_lineage(("run", refused.id)) == []
        before = len(store.search_runs(["p"]))
        with pytest.raises(InvalidArgument):  # checked before anything is written
            _run(store, inputs=[("artifact", "")])
        assert len(store.search_runs(["p"])) == before

    def test_find_runs_by_tag(self, store: Any) -> None:
        old = _run(store, tags={"cache": "a"})
        store.finish_run(old.id, RunStatus.FINISHED)
        new = _run(store, tags={"cache": "a"}, params={"n": "2"})
        store.finish_run(new.id, RunStatus.FINISHED)
        running = _run(store, tags={"cache": "b"})
        b_done = _run(store, tags={"cache": "b"})
        store.finish_run(b_done.id, RunStatus.FINISHED)
        _run(store, tags={"cache": "c"})
        _run(store, project="other", tags={"cache": "d"}, status=RunStatus.FINISHED)
        found = store.find_runs_by_tag("p", "cache", ["a", "b", "c", "d", "e"], status=RunStatus.FINISHED)
        assert {k: r.id for k, r in found.items()} == {"a": new.id, "b": b_done.id}
        assert found["a"].params == {"n": "2"} and found["a"].tags == {"cache": "a"}
        assert found["a"].status is RunStatus.FINISHED and found["a"].project == "p"
        newest = store.find_runs_by_tag("p", "cache", ["b", "c"])
        assert newest["b"].id == b_done.id and set(newest) == {"b", "c"} and running.id != b_done.id
        assert store.find_runs_by_tag("p", "cache", []) == {}
        assert store.find_runs_by_tag("p", "nope", ["a"]) == {}
        assert store.find_runs_by_tag("nobody", "cache", ["a"]) == {}
        many = [f"v{i}" for i in range(1_200)] + ["a"]  # more than one query's worth of values
        assert set(store.find_runs_by_tag("p", "cache", many, status="finished")) == {"a"}
        with pytest.raises(InvalidArgument):
            store.find_runs_by_tag("../p", "cache", ["a"])

    def test_killed_run_can_still_finish(self, store: Any) -> None:
        run = _run(store)
        store.set_run_status(run.id, RunStatus.KILLED)
        assert store.set_run_status(run.id, RunStatus.FINISHED).status is RunStatus.FINISHED

    def test_reap_marks_silent_runs_killed(self, store: Any) -> None:
        silent = _run(store)
        alive = _run(store)
        done = _run(store)
        store.set_run_status(done.id, RunStatus.FINISHED)
        later = int(time.time() * 1000) + 120_000
        store.heartbeat([alive.id], at=later)
        assert store.reap_stale_runs(60_000, now=later + 1) == [silent.id]
        killed = store.get_run(silent.id)
        assert killed.status is RunStatus.KILLED
        assert killed.end_time == silent.heartbeat_at
        assert store.get_run(alive.id).status is RunStatus.RUNNING
        assert store.get_run(done.id).status is RunStatus.FINISHED
        assert store.reap_stale_runs(60_000, now=later + 1) == []

    def test_delete_run(self, store: Any) -> None:
        run = _run(store, tags={"a": "1"})
        store.log_params(run.id, {"lr": "0.1"})
        store.log_metric_points(_points(run.id, "loss", [1.0, 0.5]))
        store.record_artifacts(run.id, [ArtifactFile(path="a.txt", digest=DIGEST, size=1)])
        store.add_lineage(("run", run.id), ("model", "m1"), "produced")
        store.delete_run(run.id)
        with pytest.raises(NotFound):
            store.get_run(run.id)
        assert store.list_lineage(("model", "m1")) == []
        assert store.search_runs(["p"], "metrics.loss < 10") == []

    # ----------------------------------------------------- params and tags

    def test_params_are_immutable(self, store: Any) -> None:
        run = _run(store)
        store.log_params(run.id, {"lr": 0.05, "num_leaves": 31})
        store.log_params(run.id, {"lr": "0.05"})  # the same value again is fine
        with pytest.raises(ImmutableValue, match="'lr'"):
            store.log_params(run.id, {"depth": 3, "lr": 0.1})
        assert store.get_run(run.id).params == {"lr": "0.05", "num_leaves": "31"}  # depth not written

    def test_param_limits(self, store: Any) -> None:
        run = _run(store)
        with pytest.raises(InvalidArgument, match="6000"):
            store.log_params(run.id, {"ok": 1, "big": "x" * 6001})
        with pytest.raises(InvalidArgument, match="key"):
            store.log_params(run.id, {"../evil": 1})
        with pytest.raises(NotFound):
            store.log_params(new_id(), {"a": 1})
        assert store.get_run(run.id).params == {}

    def test_tags_overwrite_and_delete(self, store: Any) -> None:
        run = _run(store, tags={"stage": "dev"})
        store.set_tags(run.id, {"stage": "prod", "owner": "ana"})
        assert store.get_run(run.id).tags == {"stage": "prod", "owner": "ana"}
        store.delete_tag(run.id, "owner")
        assert store.get_run(run.id).tags == {"stage": "prod"}
        with pytest.raises(NotFound):
            store.delete_tag(run.id, "owner")
        with pytest.raises(InvalidArgument):
            store.set_tags(run.id, {"x": "y" * 8001})

    # ------------------------------------------------------------- metrics

    def test_metric_history_in_step_order(self, store: Any) -> None:
        run = _run(store)
        store.log_metric_points(_points(run.id, "rmse", [3.0, 2.0], start_step=5))
        store.log_metric_points(_points(run.id, "rmse", [9.0, 8.0], start_step=0))
        history = store.get_metric_history(run.id, "rmse")
        assert [(p.step, p.value) for p in history] == [(0, 9.0), (1, 8.0), (5, 3.0), (6, 2.0)]
        assert store.get_run(run.id).metrics == {"rmse": 2.0}  # highest step wins, not last written
        assert store.get_metric_history(run.id, "other") == []

    def test_latest_metric_same_step_newest_wins(self, store: Any) -> None:
        run = _run(store)
        store.log_metric_points([(run.id, "m", 1.0, 0, 1000), (run.id, "m", 2.0, 0, 3000)])
        store.log_metric_points([(run.id, "m", 5.0, 0, 2000)])
        assert store.get_run(run.id).metrics == {"m": 2.0}

    def test_nan_and_inf_are_stored(self, store: Any) -> None:
        run = _run(store)
        store.log_metric_points(_points(run.id, "loss", [math.inf, -math.inf, math.nan]))
        values = [p.value for p in store.get_metric_history(run.id, "loss")]
        assert values[0] == math.inf and values[1] == -math.inf and math.isnan(values[2])
        assert math.isnan(store.get_run(run.id).metrics["loss"])

    def test_batch_across_runs_is_all_or_nothing(self, store: Any) -> None:
        a, b = _run(store), _run(store)
        store.log_metric_points(_points(a.id, "x", [1.0]) + _points(b.id, "x", [2.0]))
        assert store.get_run(a.id).metrics == {"x": 1.0} and store.get_run(b.id).metrics == {"x": 2.0}
        with pytest.raises(NotFound):
            store.log_metric_points(_points(a.id, "y", [1.0]) + _points(new_id(), "y", [2.0]))
        assert store.get_metric_history(a.id, "y") == []

    # ----------------------------------------------------------- artifacts

    def test_artifacts_recorded_and_listed(self, store: Any) -> None:
        run = _run(store)
        files = [
            ArtifactFile(path="plots/a.png", digest=DIGEST, size=10),
            ArtifactFile(path="plots/b.png", digest=DIGEST, size=10),
            ArtifactFile(path="model.pkl", digest=DIGEST, size=99),
        ]
        store.record_artifacts(run.id, files)
        assert [f.path for f in store.list_artifacts(run.id)] == ["model.pkl", "plots/a.png", "plots/b.png"]
        assert [f.path for f in store.list_artifacts(run.id, "plots")] == ["plots/a.png", "plots/b.png"]
        assert store.list_artifacts(run.id, "plot") == []
        assert [f.path for f in store.get_run(run.id).artifacts] == ["model.pkl", "plots/a.png", "plots/b.png"]

    def test_unsafe_artifact_paths_refused(self, store: Any) -> None:
        run = _run(store)
        for path in ("../outside.txt", "/etc/passwd", "a/../../b"):
            with pytest.raises(UnsafePath):
                store.record_artifacts(run.id, [ArtifactFile(path=path, digest=DIGEST, size=1)])
        assert store.list_artifacts(run.id) == []

    # -------------------------------------------------------------- search

    def _populate(self, store: Any) -> list[Any]:
        runs = []
        for i in range(6):
            run = _run(store, name=f"run-{i}", tags={"team": "forecast" if i % 2 else "vision"})
            store.log_params(run.id, {"lr": "0.05" if i < 3 else "0.1", "i": str(i)})
            store.log_metric_points(_points(run.id, "rmse", [100.0, 10.0 * i]))
            runs.append(run)
        return runs

    def test_search_filters(self, store: Any) -> None:
        runs = self._populate(store)
        ids = lambda page: sorted(r.id for r in page)  # noqa: E731
        query = "metrics.rmse < 35 and params.lr = '0.05' and tags.team = 'forecast'"
        assert ids(store.search_runs(["p"], query)) == [runs[1].id]
        assert ids(store.search_runs(["p"], "metrics.rmse >= 40 or attributes.name = 'run-0'")) == ids(
            [runs[0], runs[4], runs[5]]
        )
        assert ids(store.search_runs(["p"], "not tags.team = 'vision'")) == ids(runs[1::2])
        assert ids(store.search_runs(["p"], "params.i in ('1', '2')")) == ids(runs[1:3])
        assert ids(store.search_runs(["p"], "attributes.name like 'run-%'")) == ids(runs)
        assert store.search_runs(["p"], "attributes.name like 'RUN-%'") == []  # LIKE is case-sensitive
        assert ids(store.search_runs(["p"], "attributes.name ilike 'RUN-%'")) == ids(runs)
        assert ids(store.search_runs(["p"], "metrics.missing is null")) == ids(runs)
        assert store.search_runs(["p"], "metrics.missing < 1") == []
        assert store.search_runs(["other"], "metrics.rmse < 1000") == []
        assert len(store.search_runs(None, "attributes.status = 'RUNNING'")) == 6

    def test_search_order_and_nan_last(self, store: Any) -> None:
        runs = self._populate(store)
        nan_run = _run(store, name="nan")
        store.log_metric_points(_points(nan_run.id, "rmse", [math.nan]))
        no_metric = _run(store, name="none")
        ordered = store.search_runs(["p"], order_by=["metrics.rmse ASC"])
        assert [r.id for r in ordered][:6] == [r.id for r in runs]
        assert {r.id for r in ordered[6:]} == {nan_run.id, no_metric.id}
        desc = store.search_runs(["p"], order_by="metrics.rmse DESC")
        assert [r.id for r in desc][:6] == [r.id for r in reversed(runs)]
        newest_first = store.search_runs(["p"])
        assert newest_first[0].id == no_metric.id

    def test_search_pages_cover_every_run_once(self, store: Any) -> None:
        runs = self._populate(store)
        seen: list[str] = []
        token = None
        while True:
            page = store.search_runs(["p"], "metrics.rmse < 1000", ["metrics.rmse ASC"], 4, token)
            seen += [r.id for r in page]
            token = page.next_page_token
            if token is None:
                break
        assert seen == [r.id for r in runs]
        first = store.search_runs(["p"], None, None, 4)
        with pytest.raises(InvalidArgument, match="page_token"):
            store.search_runs(["p"], "metrics.rmse < 5", None, 4, first.next_page_token)
        with pytest.raises(InvalidArgument, match="page_token"):
            store.search_runs(["p"], None, None, 4, "garbage!")

    def test_search_bad_input(self, store: Any) -> None:
        with pytest.raises(FilterSyntaxError) as info:
            store.search_runs(["p"], "metrics.rmse <")
        assert info.value.position == 14
        with pytest.raises(FilterSyntaxError, match="quote"):
            store.search_runs(["p"], "params.lr = 0.05")
        with pytest.raises(InvalidArgument, match="max_results"):
            store.search_runs(["p"], max_results=0)
        with pytest.raises(FilterSyntaxError):
            store.search_runs(["p"], "metrics.x < 1; DROP TABLE runs")
        assert store.list_projects() == []

    # ------------------------------------------------------------- lineage

    def test_lineage_edges(self, store: Any) -> None:
        run = _run(store)
        store.add_lineage(("dataset", "bikes@1"), ("run", run.id), "input", {"role": "train"})
        store.add_lineage(("dataset", "bikes@1"), ("run", run.id), "input", {"role": "train"})
        store.add_lineage(("run", run.id), ("model", "bike-demand/1"), "produced")
        both = store.list_lineage(("run", run.id))
        assert [(e["src"], e["dst"], e["relation"]) for e in both] == [
            (("dataset", "bikes@1"), ("run", run.id), "input"),
            (("run", run.id), ("model", "bike-demand/1"), "produced"),
        ]
        assert both[0]["attributes"] == {"role": "train"}
        assert len(store.list_lineage(("run", run.id), "in")) == 1
        with pytest.raises(InvalidArgument):
            store.list_lineage(("run", run.id), "sideways")

    def test_lineage_edges_in_bulk(self, store: Any) -> None:
        from conveyor.stores.metadata.base import add_lineage_edges

        run = _run(store)
        store.add_lineage(("artifact", "blake3:a"), ("run", run.id), "input")
        add_lineage_edges(store, [
            (("artifact", "blake3:a"), ("run", run.id), "input", None),  # exists: skipped
            (("artifact", "blake3:b"), ("run", run.id), "input", {"role": "x"}),
            (("run", run.id), ("artifact", "blake3:c"), "output", None),
            (("run", run.id), ("artifact", "blake3:c"), "output", None),  # twice in one call
        ])
        add_lineage_edges(store, [])
        edges = store.list_lineage(("run", run.id))
        assert [(e["src"], e["dst"], e["relation"]) for e in edges] == [
            (("artifact", "blake3:a"), ("run", run.id), "input"),
            (("artifact", "blake3:b"), ("run", run.id), "input"),
            (("run", run.id), ("artifact", "blake3:c"), "output"),
        ]
        assert edges[1]["attributes"] == {"role": "x"}
        with pytest.raises(InvalidArgument):  # checked before anything is written
            add_lineage_edges(store, [
                (("run", run.id), ("artifact", "blake3:d"), "output", None),
                (("run", ""), ("artifact", "blake3:e"), "output", None),
            ])
        if hasattr(store, "add_lineage_many"):
            assert len(store.list_lineage(("run", run.id))) == 3
