"""The whole loop, shortened: the quickstart's story, asserted; then a bad model injected and rolled back.

Real parts only: bike-sharing 2011, LightGBM through the example pipeline, a
SQLite store, the prediction service on 127.0.0.1 following its aliases, the
prediction log, the monitor and the agent.
"""

from __future__ import annotations

import io
import textwrap
import time
from pathlib import Path

import pytest

import conveyor as cv
from conveyor.automation.agent import Agent
from conveyor.quickstart.loop import AUTOMATION, MODEL, Story, run_quickstart
from conveyor.quickstart.sweep import find_data
from conveyor.serving.app import create_app
from conveyor.serving.background import running
from conveyor.serving.config import ServeConfig
from conveyor.tracking import fluent

pytestmark = pytest.mark.slow

BAD = textwrap.dedent('''
    """A model that predicts one ride an hour, whatever the weather: the injected fault."""

    from sklearn.dummy import DummyRegressor

    import conveyor as cv
    from conveyor.pipelines import pipeline, step


    @step
    def fit(ref: str) -> int:
        df = cv.data.get(ref).to_pandas()
        x = df.drop(columns=["cnt"])
        model = DummyRegressor(strategy="constant", constant=1.0).fit(x, df["cnt"])
        return cv.log_model(model, name="bike-demand", input_example=x.head(5)).version


    @pipeline
    def release(ref: str):
        return fit(ref)
''')


def test_drift_retrains_once_promotes_through_a_canary_and_a_bad_model_is_rolled_back(
    conveyor_home: Path, tmp_path: Path
) -> None:
    out = io.StringIO()

    result = run_quickstart(out=out, trial_seconds=2, watch_seconds=2)

    text = out.getvalue()
    cv.set_project(result.project)  # the quickstart restores the caller's project when it ends
    assert result.monitor_status in ("drift", "degraded"), text  # the seasons changed
    firings = cv.automation.history(AUTOMATION)
    automatic = [f for f in firings if f.trigger != "manual"]
    assert len(automatic) == 1, [(f.trigger, f.key, f.state) for f in firings]  # retrained once
    retrain = automatic[0]
    assert retrain.trigger in ("drift", "performance") and retrain.state == "done", retrain.steps
    assert retrain.evidence["dataset"].endswith("-bikes@2")  # on the newer data
    assert "canary" in [s["state"] for s in retrain.steps]
    evaluation = cv.models.evaluations(MODEL, result.second)[-1]
    assert evaluation.passed and evaluation.alias == "challenger" and evaluation.champion_version == result.first
    assert (result.first, result.second, result.champion) == (1, 2, 2)
    assert result.rmse_canary[2] < result.rmse_canary[1]  # better on the same hours
    assert "Lineage of models:/bike-demand@champion" in text and "rolled_out" in text

    # Inject a bad model through a lenient automation: it passes the signature-only gate, goes live,
    # and the rollback rule takes it back once labelled traffic shows it.
    (tmp_path / "bad.py").write_text(BAD)
    cv.automation.apply({
        "name": "inject-bad", "pipeline": f"{tmp_path / 'bad.py'}:release", "executor": "inprocess",
        "data": {"dataset": f"{result.project}-holdout", "param": "ref", "as": "ref"}, "on": ["manual"],
        "promote": {"model": MODEL}, "rollback": {"when": "rmse > 1.1 * previous", "within": "1h"},
    })
    cv.automation.trigger("inject-bad", reason="fault drill")
    client = fluent.client()
    agent = Agent(client.store, client.content, client.settings.home, name="drill", interval=0.1)
    agent.run_once()
    injected = cv.automation.history("inject-bad")[0]
    assert injected.state == "watching" and cv.models.get_model(MODEL).aliases["champion"] == 3

    story = Story(find_data(), result.project, io.StringIO(), trial_seconds=1, watch_seconds=1)
    app = create_app(ServeConfig(model=f"models:/{MODEL}@champion", project=result.project, poll=0.2),
                     cv.models.registry())
    with running(app) as url:
        story.service = app.state.service
        deadline = time.monotonic() + 30
        while story.service.primary.loaded.version != 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        story.replay(url, story.quarter(story.frame, "Q3").iloc[:240])
        agent.run_once()

    rolled = cv.automation.history("inject-bad")[0]
    assert rolled.state == "rolled_back", rolled.steps[-1]
    assert cv.models.get_model(MODEL).aliases["champion"] == 2
    assert "champion is back on version 2" in rolled.steps[-1]["message"]
    assert [m.action for m in cv.models.alias_history(MODEL, "champion")][-1] == "rollback"
