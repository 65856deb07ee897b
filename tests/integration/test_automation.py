"""The automation agent on a real store, real pipelines and real models trained on the bike-sharing data.

A small pipeline (load a CSV, fit a scikit-learn model, register it) keeps each
firing to a second or two. Live traffic is written to the real prediction log
(rows and labels), as the serving process writes it; the serving path itself
is exercised by the end-to-end loop (tests/e2e/test_retraining_loop.py).
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from automation_kit import FEATURES, add_data, agent, champion, predict, serve_rows, spec, states
from click.testing import CliRunner

import conveyor as cv
from conveyor.cli.main import cli
from conveyor.core.errors import InvalidArgument, LeaseLost
from conveyor.tracking import fluent

# --------------------------------------------------------------------------- the happy path


def test_a_manual_firing_trains_gates_and_promotes_the_first_champion(world: dict[str, Any]) -> None:
    cv.automation.apply(spec(world))
    fired = cv.automation.trigger("retrain", reason="first model")
    assert fired.state == "pending" and fired.number == 1

    report = agent().run_once()

    assert report.leader
    firing = cv.automation.history("retrain")[0]
    assert firing.state == "done", firing.steps
    assert states(firing)[0] == "pending" and states(firing)[-1] == "done"
    assert {"running", "gating"} <= set(states(firing))
    assert champion() == firing.candidate == 1
    assert firing.evidence["dataset"] == "bikes@1"
    # the lineage says why version 1 exists: the firing triggered the run that produced it
    edges = fluent.client().store.list_lineage(("automation_firing", firing.id), direction="out")
    assert {e["relation"] for e in edges} == {"triggered", "rolled_out"}
    story = "\n".join(cv.automation.story("retrain"))
    assert "manual: first model" in story and "version 1 is now champion" in story


def test_new_data_fires_once_for_the_newest_version_and_debounces(world: dict[str, Any]) -> None:
    cv.automation.apply(spec(world, cooldown="1h"))
    a = agent()
    assert a.run_once().fired == []  # version 1 existed before the automation: nothing new
    add_data(world, "2011-04-01", "v2")
    add_data(world, "2011-05-01", "v3")

    report = a.run_once()

    assert [f.key for f in report.fired] == ["new_data:bikes@3"]  # two new versions, one retrain, on the newest
    assert a.run_once().fired == []
    add_data(world, "2011-06-01", "v4")
    assert a.run_once().fired == []  # cooling down for an hour
    history = cv.automation.history("retrain")
    assert len(history) == 1 and history[0].state == "done"


def test_a_manual_firing_uses_up_the_new_data_it_trained_on(world: dict[str, Any]) -> None:
    cv.automation.apply(spec(world))
    add_data(world, "2011-04-01", "v2")
    cv.automation.trigger("retrain")
    a = agent()
    a.run_once()
    assert a.run_once().fired == []  # the manual firing already trained on bikes@2
    assert cv.automation.history("retrain")[0].evidence["dataset"] == "bikes@2"


# --------------------------------------------------------------------------- faults


def test_a_failing_pipeline_promotes_nothing_and_alerts(world: dict[str, Any], tmp_path: Path) -> None:
    cv.automation.apply(spec(world))
    cv.automation.trigger("retrain")
    agent().run_once()
    assert champion() == 1
    alerts = tmp_path / "alerts.jsonl"
    cv.automation.apply(spec(world, params={"fail": True}, alerts=[f"log={alerts}"]))
    cv.automation.trigger("retrain")

    agent().run_once()

    firing = cv.automation.history("retrain")[0]
    assert firing.state == "failed"
    assert "training exploded" in (firing.error or "")
    assert champion() == 1
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert len(sent) == 1 and "training exploded" in json.dumps(sent[0])


def test_a_refused_gate_keeps_the_champion_and_records_why(world: dict[str, Any]) -> None:
    cv.automation.apply(spec(world))
    cv.automation.trigger("retrain")
    agent().run_once()
    cv.automation.apply(spec(world, params={"kind": "dummy"}))  # predicts 1 ride an hour
    cv.automation.trigger("retrain")

    agent().run_once()

    firing = cv.automation.history("retrain")[0]
    assert firing.state == "rejected"
    assert firing.candidate == 2 and champion() == 1
    assert "gate refused version 2" in firing.steps[-1]["message"]
    assert "rmse <= champion.rmse * 1.05" in firing.steps[-1]["message"]
    assert cv.models.get_version("toy", 2).status == "ready"  # registered, not promoted
    assert cv.models.evaluations("toy", 2)[0].passed is False


def test_a_bad_spec_is_refused_and_nothing_is_stored(world: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        cv.automation.apply(spec(world, params={"learning_rate": 0.1}))
    assert caught.value.field == "params" and "no parameter" in caught.value.message
    with pytest.raises(InvalidArgument):
        cv.automation.apply(spec(world, on=["schedule:every day"]))
    assert cv.automation.list_automations() == []


# --------------------------------------------------------------------------- canary and rollback


def _two_versions(world: dict[str, Any]) -> None:
    """Version 1 champion (Jan-Feb), then a firing on Jan-May data that the gate passes."""
    cv.automation.apply(spec(world))
    cv.automation.trigger("retrain")
    agent().run_once()
    add_data(world, "2011-06-01", "v2")


@pytest.mark.parametrize("rebase", [True, False])
def test_a_kept_champion_moves_the_monitors_of_its_data_to_what_it_learnt_from(world: dict[str, Any],
                                                                                rebase: bool) -> None:
    """Left on bikes@1, the drift monitor would stay in drift (and its trigger quiet) for good."""
    _two_versions(world)
    cv.automation.apply(spec(world, promote=spec(world)["promote"] | {"rebase_monitors": rebase}))
    cv.monitoring.create_monitor("toy-watch", model="toy@champion", reference="bikes@1", features=FEATURES)
    cv.monitoring.create_monitor("toy-holdout", model="toy", reference="holdout@1", features=FEATURES)
    before = cv.monitoring.get_monitor("toy-watch")

    agent().run_once()

    firing = cv.automation.history("retrain")[0]
    assert firing.state == "done" and champion() == 2 and firing.evidence["dataset"] == "bikes@2"
    watch = cv.monitoring.get_monitor("toy-watch")
    assert cv.monitoring.get_monitor("toy-holdout").reference == "holdout@1"  # not the automation's data
    if not rebase:
        assert watch.reference == "bikes@1" and "compares against" not in firing.steps[-1]["message"]
        return
    assert watch.reference == "bikes@2" and watch.id == before.id
    assert watch.features == before.features and watch.drift_threshold == before.drift_threshold
    assert "monitor toy-watch now compares against bikes@2 (was bikes@1)" in firing.steps[-1]["message"]
    stored = fluent.client().store.monitors.get_monitor("auto", "toy-watch")
    assert stored.reference["rows"] > before_rows(world)
    agent().run_once()  # a resumed or repeated step would not move it again
    assert cv.monitoring.get_monitor("toy-watch").reference == "bikes@2"


def before_rows(world: dict[str, Any]) -> int:
    """Rows of bikes@1 (Jan-Feb 2011): the new reference holds more."""
    return int((world["bikes"]["dteday"] < "2011-03-01").sum())


@pytest.mark.parametrize("mode", ["canary", "shadow"])
def test_a_trial_that_holds_becomes_champion_and_is_watched(world: dict[str, Any], mode: str) -> None:
    """A canary answers part of the traffic; a shadow answers nobody but its predictions are logged and judged."""
    _two_versions(world)
    cv.automation.apply(spec(world, promote=spec(world)["promote"] | {mode: {"duration": "1s", "min_rows": 50}},
                             rollback={"when": "rmse > 1.5 * previous", "within": "2s"}))
    june = world["bikes"][world["bikes"]["dteday"].str.startswith("2011-06")]
    serve_rows(1, june.iloc[:200], predict(1, june.iloc[:200]))  # the champion's recent past, for "previous"
    a = agent()
    a.run_once()
    firing = cv.automation.history("retrain")[0]
    assert firing.state == "canary" and firing.candidate == 2
    assert cv.models.get_model("toy").aliases == {"champion": 1, "challenger": 2}
    weight = cv.models.get_model("toy").tags.get("conveyor.canary_weight")
    assert weight == ("0.1" if mode == "canary" else None)  # deployments following the model route this share
    rows = june.iloc[200:400]
    if mode == "canary":  # the two versions split the requests
        serve_rows(2, rows.iloc[::2], predict(2, rows.iloc[::2]), variant="canary")
        serve_rows(1, rows.iloc[1::2], predict(1, rows.iloc[1::2]))
    else:  # the champion answers everything; the shadow sees a copy
        serve_rows(1, rows, predict(1, rows))
        serve_rows(2, rows, predict(2, rows), variant="shadow")
    time.sleep(1.1)

    a.run_once()

    firing = cv.automation.history("retrain")[0]
    assert firing.state == "watching", firing.steps[-1]
    assert cv.models.get_model("toy").aliases == {"champion": 2}  # challenger alias dropped
    if mode == "canary":
        assert cv.models.get_model("toy").tags["conveyor.canary_weight"] == "0"
    assert "trial held" in firing.steps[-1]["message"]
    time.sleep(2.1)
    a.run_once()
    assert cv.automation.history("retrain")[0].state == "done"
    assert champion() == 2


def test_a_canary_without_traffic_is_rejected_after_its_patience(world: dict[str, Any]) -> None:
    _two_versions(world)
    cv.automation.apply(spec(world, promote=spec(world)["promote"] | {
        "canary": {"duration": "1s", "patience": "1s", "min_rows": 10}}))
    a = agent()
    a.run_once()
    time.sleep(2.1)
    a.run_once()
    firing = cv.automation.history("retrain")[0]
    assert firing.state == "rejected"
    assert "0 labelled rows" in firing.steps[-1]["message"] and "models:/toy@challenger" in firing.steps[-1]["message"]
    assert cv.models.get_model("toy").aliases == {"champion": 1}


def test_a_worse_live_model_is_rolled_back(world: dict[str, Any]) -> None:
    """An injected bad model passes a lenient gate, goes live, and the rollback rule takes it back."""
    cv.automation.apply(spec(world))
    cv.automation.trigger("retrain")
    agent().run_once()
    june = world["bikes"][world["bikes"]["dteday"].str.startswith("2011-06")]
    serve_rows(1, june.iloc[:200], predict(1, june.iloc[:200]))
    cv.automation.apply(spec(world, params={"kind": "dummy"}, promote={"model": "toy"},  # signature check only
                             rollback={"when": "rmse > 1.1 * previous", "within": "1h"}))
    cv.automation.trigger("retrain", reason="inject a bad model")
    a = agent()
    a.run_once()
    firing = cv.automation.history("retrain")[0]
    assert firing.state == "watching" and champion() == 2
    serve_rows(2, june.iloc[200:300], predict(2, june.iloc[200:300]))

    a.run_once()

    firing = cv.automation.history("retrain")[0]
    assert firing.state == "rolled_back", firing.steps[-1]
    assert champion() == 1
    assert "champion is back on version 1" in firing.steps[-1]["message"]
    moves = cv.models.alias_history("toy", "champion")
    assert [m.action for m in moves][-1] == "rollback"


# --------------------------------------------------------------------------- leadership


def test_one_leader_at_a_time_and_a_stale_leader_cannot_write(world: dict[str, Any]) -> None:
    cv.automation.apply(spec(world))
    first, second = agent(holder="a", lease_ttl=0.3), agent(holder="b", lease_ttl=0.3)
    assert first.run_once().leader
    assert not second.run_once().leader
    time.sleep(0.4)  # the first leader stalls past its lease
    assert second.run_once().leader
    assert second.token == first.token + 1  # type: ignore[operator]
    store = fluent.client().store
    record = store.automation.get_automation("auto", "retrain")
    with pytest.raises(LeaseLost):
        store.automation.add_firing(record.id, trigger="manual", key="stale", reason="stale leader",
                                    evidence={}, fence=("agent:default", first.token))
    assert cv.automation.history("retrain") == []


def test_the_cli_applies_triggers_and_tells_the_history(world: dict[str, Any]) -> None:
    toml = world["dir"] / "conveyor.toml"
    toml.write_text(textwrap.dedent('''
        [[automation]]
        name = "retrain"
        pipeline = "toy.py:release"
        executor = "inprocess"
        on = ["new_data:bikes", "manual"]
        promote = { model = "toy" }
    '''))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), prog_name="conveyor")
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    assert "automation retrain" in run("automation", "apply", str(toml))
    assert "retrain" in run("automation", "list")
    assert "new_data:bikes" in run("automation", "show", "retrain")
    assert "firing #1 recorded" in run("automation", "trigger", "retrain", "--reason", "try it")
    out = run("agent", "--once")
    assert "firing #1: done" in out
    history = run("automation", "history", "retrain")
    assert "manual: try it" in history and "version 1 is now champion" in history
    assert json.loads(run("automation", "history", "retrain", "--json"))[0]["state"] == "done"
    bad = runner.invoke(cli, ["automation", "trigger", "nope"], prog_name="conveyor")
    assert bad.exit_code != 0 and "nope" in bad.output


def test_the_agent_runs_every_monitor_on_its_schedule(world: dict[str, Any]) -> None:
    cv.automation.apply(spec(world))
    cv.automation.trigger("retrain")
    agent().run_once()
    cv.monitoring.create_monitor("toy-watch", model="toy@champion", reference="bikes@1", window="1h",
                                 features=FEATURES)
    hourly = agent(monitor_every=3600)

    assert hourly.run_once().monitors == ["auto/toy-watch"]
    assert hourly.run_once().monitors == []  # evaluated a moment ago: not due
    assert [r.status for r in cv.monitoring.list_results("toy-watch")] == ["no-data"]
    assert agent(monitor_every=0).run_once().monitors == ["auto/toy-watch"]
