"""The contract every monitor store passes (``store.monitors`` of each metadata store).

Subclass it and provide a ``monitors`` fixture returning the monitor store of an
empty metadata store::

    class TestMyMonitors(MonitorStoreContract):
        @pytest.fixture
        def monitors(self, tmp_path):
            return MyStore(f"my://{tmp_path}").monitors
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from conveyor.core.errors import AlreadyExists, InvalidArgument, NotFound
from conveyor.stores.metadata.monitors import NewResult

PROFILE = {"rows": 2, "columns": [{"name": "season", "kind": "categorical", "dtype": "int64", "count": 2,
                                   "nulls": 0, "counts": {"1": 2}, "other": 0}]}


def result(status: str, at: int = 1, **extra: Any) -> NewResult:
    fields: dict[str, Any] = {
        "at": at, "window_start": at - 10, "window_end": at, "rows": 0 if status == "no-data" else 5,
        "labelled_rows": 0, "share_drifted": None, "drifted_columns": [], "metric_value": None, "baseline": None,
        "outlier_rate": None, "status": status, "reasons": [status], "report": {"status": status},
    }
    fields.update(extra)
    return NewResult(**fields)


class MonitorStoreContract:
    def make(self, monitors: Any, name: str = "bikes", project: str = "p") -> Any:
        return monitors.create_monitor(project=project, name=name, model="bike-demand",
                                       config={"window": "1d", "alerts": ["webhook=https://hooks.example/secret"]},
                                       reference=PROFILE, outliers=None)

    def test_a_monitor_reads_back_whole_and_names_are_unique_per_project(self, monitors: Any) -> None:
        made = self.make(monitors)
        assert monitors.get_monitor("p", "bikes") == made and made.reference == PROFILE
        other = self.make(monitors, project="q")
        with pytest.raises(AlreadyExists) as err:
            self.make(monitors)
        assert err.value.field == "name"
        assert [m.id for m in monitors.list_monitors("p")] == [made.id]
        assert [m.id for m in monitors.list_monitors("q")] == [other.id]
        light = monitors.list_monitors("p", with_reference=False)
        assert [(m.id, m.reference, m.config) for m in light] == [(made.id, {}, made.config)]

    def test_missing_monitors_and_bad_names_are_refused(self, monitors: Any) -> None:
        with pytest.raises(NotFound):
            monitors.get_monitor("p", "nope")
        with pytest.raises(InvalidArgument) as err:
            monitors.create_monitor(project="p", name="../x", model="m", config={}, reference={}, outliers=None)
        assert err.value.field == "name" and monitors.list_monitors("p") == []

    def test_one_incident_stays_open_across_breaches_until_an_ok_result(self, monitors: Any) -> None:
        mid = self.make(monitors).id
        first = monitors.record_result(mid, result("drift", 1))
        assert first.change == "opened" and first.incident.status == "open"
        again = monitors.record_result(mid, result("degraded", 2))
        assert again.change is None and again.incident.id == first.incident.id
        quiet = monitors.record_result(mid, result("no-data", 3))  # no data is not healthy
        assert quiet.change is None and monitors.open_incident(mid).id == first.incident.id
        healed = monitors.record_result(mid, result("ok", 4))
        assert healed.change == "resolved" and healed.incident.resolved_by == healed.result.id
        assert monitors.open_incident(mid) is None
        assert monitors.record_result(mid, result("ok", 5)).change is None
        reopened = monitors.record_result(mid, result("drift", 6))
        assert reopened.change == "opened" and reopened.incident.id != first.incident.id
        listed = monitors.list_incidents(mid)
        assert [i.id for i in listed] == [reopened.incident.id, first.incident.id]
        assert listed[1].status == "resolved" and listed[1].resolved_at == 4

    def test_results_are_a_time_series_newest_first(self, monitors: Any) -> None:
        mid = self.make(monitors).id
        for i, status in enumerate(["ok", "drift", "no-data"]):
            monitors.record_result(mid, result(status, i + 1, drifted_columns=["temp"] * i))
        light = monitors.list_results(mid)
        assert [r.status for r in light] == ["no-data", "drift", "ok"] and light[0].report is None
        assert light[1].drifted_columns == ["temp"]
        assert monitors.list_results(mid, 1, with_reports=True)[0].report == {"status": "no-data"}
        with pytest.raises(InvalidArgument):
            monitors.record_result(mid, result("fine"))
        assert len(monitors.list_results(mid)) == 3

    def test_deliveries_are_recorded_on_the_incident(self, monitors: Any) -> None:
        mid = self.make(monitors).id
        incident = monitors.record_result(mid, result("drift")).incident
        monitors.add_deliveries(incident.id, [{"channel": "webhook", "ok": False, "error": "503"}])
        monitors.add_deliveries(incident.id, [{"channel": "log", "ok": True}])
        assert [d["channel"] for d in monitors.open_incident(mid).deliveries] == ["webhook", "log"]

    def test_concurrent_breaches_open_exactly_one_incident(self, monitors: Any) -> None:
        mid = self.make(monitors).id
        changes: list[Any] = []
        barrier = threading.Barrier(4)

        def evaluate() -> None:
            barrier.wait()
            changes.append(monitors.record_result(mid, result("drift")).change)

        threads = [threading.Thread(target=evaluate) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert changes.count("opened") == 1 and changes.count(None) == 3
        assert len(monitors.list_incidents(mid)) == 1

    def test_deleting_a_monitor_removes_its_results_and_incidents(self, monitors: Any) -> None:
        made = self.make(monitors)
        monitors.record_result(made.id, result("drift"))
        monitors.delete_monitor("p", "bikes")
        with pytest.raises(NotFound):
            monitors.get_monitor("p", "bikes")
        assert monitors.list_results(made.id) == [] and monitors.list_incidents(made.id) == []
        with pytest.raises(NotFound):
            monitors.delete_monitor("p", "bikes")
        assert self.make(monitors).id != made.id  # the name is free again

    def test_rebasing_replaces_the_reference_and_keeps_the_history(self, monitors: Any) -> None:
        made = self.make(monitors)
        monitors.record_result(made.id, result("drift"))
        newer = {**PROFILE, "rows": 999}
        config = {**made.config, "reference": "bikes@2"}
        rebased = monitors.rebase_monitor("p", "bikes", config=config, reference=newer, outliers={"kind": "z"})
        assert (rebased.id, rebased.created_at) == (made.id, made.created_at)
        assert rebased.reference == newer and rebased.config["reference"] == "bikes@2"
        assert rebased.outliers == {"kind": "z"} and monitors.get_monitor("p", "bikes") == rebased
        again = monitors.rebase_monitor("p", "bikes", config=config, reference=newer, outliers={"kind": "z"})
        assert again == rebased  # a retry changes nothing
        assert [r.status for r in monitors.list_results(made.id)] == ["drift"]
        assert monitors.open_incident(made.id) is not None  # only a clean evaluation resolves it
        with pytest.raises(NotFound):
            monitors.rebase_monitor("p", "nope", config={}, reference={}, outliers=None)
