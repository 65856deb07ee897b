"""The quickstart: the whole loop on real data, from "the world changed" to "a better model is live".

What it does, on the embedded default (SQLite and a local folder), with the UCI
bike-sharing hours of 2011:

1. registers January–March 2011 as data version 1 and a holdout month for the gate;
2. stores an automation (``examples/bikes/pipeline.py:release``, gated, with a
   canary and a rollback rule) and fires it by hand: the agent trains version 1
   and makes it champion;
3. serves ``@champion`` (and ``@challenger`` as a canary) on 127.0.0.1 and
   replays April–June as traffic, with the real counts sent back as labels;
4. the monitor sees the seasonal drift and the error growing; the labelled
   hours become data version 2; the agent's next pass fires, retrains on the
   newer data, gates the candidate against the champion and starts a canary;
5. July–September traffic is split between champion and challenger; the
   canary holds, the challenger becomes champion, and is watched for a rollback;
6. it prints the error before and after, the automation's history, and the
   lineage of the model now live.

Everything stays in the store: ``conveyor automation history``, ``conveyor
models lineage``, ``conveyor monitor status`` show it afterwards.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import conveyor as cv
from conveyor.core.errors import InvalidArgument, MissingExtra, NotFound
from conveyor.core.ids import now_ms

MODEL = "bike-demand"
MONITOR = "bike-demand"
AUTOMATION = "bike-demand-retrain"
TARGET = "cnt"
QUARTERS = {"Q1": ("2011-01-01", "2011-04-01"), "Q2": ("2011-04-01", "2011-07-01"),
            "Q3": ("2011-07-01", "2011-10-01")}


@dataclass
class LoopResult:
    """What the story ended with (the e2e test reads it)."""

    project: str
    first: int | None = None  # the version trained on Q1
    second: int | None = None  # the version the agent trained on the newer data
    champion: int | None = None  # the champion at the end
    rmse_before: float | None = None  # version 1 on the Q2 traffic
    rmse_canary: dict[int, float] = field(default_factory=dict)  # both versions on the same Q3 hours
    monitor_status: str | None = None
    firings: list[Any] = field(default_factory=list)


def find_examples(data: Path) -> Path:
    """``examples/`` next to the data (examples/data/…), in the working folder, or in the repository."""
    for root in (data.resolve().parents[1], Path.cwd() / "examples", Path(__file__).resolve().parents[3] / "examples"):
        if (root / "bikes" / "pipeline.py").is_file():
            return root
    raise NotFound("cannot find examples/bikes/pipeline.py; run the quickstart from the repository folder",
                   field="examples")


def _free_project(base: str) -> str:
    """``base``, or ``base-2``, ``base-3``… when an earlier quickstart already used it."""
    from conveyor.tracking import fluent

    store = fluent.client().store
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        try:
            project = store.get_project(name)
        except NotFound:
            return name
        if not store.automation.list_automations(project.name):
            return name
    raise InvalidArgument(f"projects {base}-2 … {base}-999 are all taken", field="project")


class Story:
    def __init__(self, data: Path, project: str, out: TextIO, *, trial_seconds: float, watch_seconds: float,
                 tick: Callable[[float], None] = time.sleep) -> None:
        import pandas as pd

        self.pd = pd
        self.out = out
        self.tick = tick
        self.trial = trial_seconds
        self.watch = watch_seconds
        self.examples = find_examples(data)
        self.project = project
        self.result = LoopResult(project)
        self.dataset = f"{project}-bikes"
        self.holdout = f"{project}-holdout"
        raw = pd.read_csv(data)
        self.raw = raw[raw["dteday"] < QUARTERS["Q3"][1]].reset_index(drop=True)
        self.frame = self._features(self.raw)
        from conveyor.tracking import fluent

        self.client = fluent.client()
        self.work = self.client.settings.home / "quickstart" / project
        self.work.mkdir(parents=True, exist_ok=True)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # ------------------------------------------------------------------ data

    def _features(self, raw: Any) -> Any:
        """The model's inputs for every hour, made by the pipeline's own ``features`` step."""
        from conveyor.pipelines.loading import load_file

        module = load_file(str(self.examples / "bikes" / "pipeline.py"))
        frame = raw.copy()
        frame["timestamp"] = self.pd.to_datetime(frame["dteday"]) + self.pd.to_timedelta(frame["hr"], unit="h")
        self.pipeline_module = module
        featured = module.features.fn(frame.sort_values("timestamp").reset_index(drop=True))
        featured["dteday"] = featured["timestamp"].dt.strftime("%Y-%m-%d")
        return featured

    def quarter(self, frame: Any, *names: str) -> Any:
        start, end = QUARTERS[names[0]][0], QUARTERS[names[-1]][1]
        return frame[(frame["dteday"] >= start) & (frame["dteday"] < end)].reset_index(drop=True)

    def inputs(self, frame: Any) -> Any:
        return frame.drop(columns=["timestamp", "dteday", TARGET])

    def add_data(self, quarters: tuple[str, ...], label: str) -> Any:
        part = self.quarter(self.raw, *quarters)
        path = self.work / f"bikes-{'-'.join(quarters).lower()}.csv"
        part.to_csv(path, index=False)
        ds = cv.data.add(str(path), name=self.dataset)
        self.say(f"   data    {ds.ref}: {label}, {len(part):,} hours")
        return ds

    def add_holdout(self, month: str) -> Any:
        rows = self.frame[self.frame["dteday"].str.startswith(month)]
        ds = cv.data.log(self.inputs(rows).assign(**{TARGET: rows[TARGET].to_numpy()}), name=self.holdout)
        self.say(f"   holdout {ds.ref}: the hours of {month}, for the gate")
        return ds

    # ------------------------------------------------------------------ the loop

    def automation(self) -> dict[str, Any]:
        return {
            "name": AUTOMATION,
            "pipeline": f"{self.examples / 'bikes' / 'pipeline.py'}:release",
            "params": {"valid_months": 1, "rounds": 200, "name": MODEL},
            "data": {"dataset": self.dataset, "param": "path"},
            "on": [f"drift:{MONITOR} > 0.3", f"performance:{MONITOR} rmse > 1.2 * baseline",
                   f"new_data:{self.dataset}", "manual"],
            "executor": "inprocess",
            "promote": {
                "model": MODEL, "alias": "champion",
                "gate": {"rules": ["rmse <= champion.rmse"], "dataset": f"{self.holdout}@latest", "target": TARGET},
                "canary": {"weight": 0.3, "duration": f"{max(1, round(self.trial))}s", "min_rows": 100},
            },
            "rollback": {"when": "rmse > 1.1 * previous or error_rate > 0.01",
                         "within": f"{max(1, round(self.watch))}s"},
        }

    def run(self) -> LoopResult:
        from conveyor.automation.agent import Agent

        agent = Agent(self.client.store, self.client.content, self.client.settings.home, interval=0.2,
                      monitor_every=0.0)
        try:
            return self._loop(agent)
        finally:
            agent.release()

    def _loop(self, agent: Any) -> LoopResult:
        r = self.result
        self.say(f"Conveyor quickstart: the retraining loop on UCI bike-sharing 2011 (project {self.project})")
        self.say("\n1. Data: what the first model learns from")
        self.add_data(("Q1",), "January-March 2011")
        self.add_holdout("2011-03")
        self.say("\n2. An automation, fired by hand: the agent trains version 1 and makes it champion")
        cv.automation.apply(self.automation())
        cv.automation.trigger(AUTOMATION, reason="first model")
        self.settle(agent)
        r.first = cv.models.get_model(MODEL).aliases.get("champion")
        self.say(f"   {MODEL} version {r.first} is champion")
        cv.monitoring.create_monitor(MONITOR, model=f"{MODEL}@champion", reference=f"{self.dataset}@1",
                                     window="1h", drift_threshold=0.3, metric="rmse",
                                     metric_threshold="rmse > 1.2 * baseline", target=TARGET)
        self.say(f"   monitor {MONITOR}: drift against {self.dataset}@1, rmse against the training score")
        self.say("\n3. Serving @champion on 127.0.0.1, and @challenger as a canary at the share the automation sets")
        from conveyor.serving.app import create_app
        from conveyor.serving.background import running
        from conveyor.serving.config import ServeConfig

        config = ServeConfig(model=f"models:/{MODEL}@champion", canary=f"models:/{MODEL}@challenger",
                             project=self.project, poll=0.2)  # the canary's weight follows the automation
        app = create_app(config, cv.models.registry())
        with running(app) as url:
            self.service = app.state.service
            q2 = self.quarter(self.frame, "Q2")
            self.say(f"   replaying April-June: {len(q2):,} hours as requests, the real counts as labels")
            since = now_ms()
            self.replay(url, q2)
            r.rmse_before = self.live_rmse(r.first, since)
            self.say(f"   version {r.first} on April-June: rmse {r.rmse_before:.1f} rides/hour")
            self.say("\n4. Monitoring and the agent: the world changed")
            self.add_data(("Q1", "Q2"), "January-June 2011, labels collected by serving")
            self.add_holdout("2011-06")
            fired = agent.run_once()
            status = cv.monitoring.list_results(MONITOR, 1)[0]
            r.monitor_status = status.status
            self.say(f"   monitor: {status.status}: {'; '.join(status.reasons)}")
            for f in fired.fired:
                self.say(f"   automation fired: {f.reason}")
            self.settle(agent, until=("canary", "done", "failed", "rejected", "rolled_back"))
            firing = cv.automation.history(AUTOMATION, 1)[0]
            r.second = firing.candidate
            self.say(f"   {firing.steps[-1]['message']}")
            self.say("\n5. July-September: the canary, then the new champion under watch")
            q3 = self.quarter(self.frame, "Q3")
            half = len(q3) // 2
            since = now_ms()
            self.say(f"   July-mid August ({half:,} hours): the canary's share goes to version {r.second}")
            self.replay(url, q3.iloc[:half])
            self.settle(agent, until=("watching", "done", "failed", "rejected", "rolled_back"), timeout=self.trial + 1.0)
            for version in (r.first, r.second):  # both served the same weeks, split by request
                if version is not None:
                    value = self.live_rmse(version, since)
                    if value is not None:
                        r.rmse_canary[version] = value
            self.say(f"   mid August-September ({len(q3) - half:,} hours): the champion answers, under watch")
            self.replay(url, q3.iloc[half:])
            self.settle(agent, until=("done", "failed", "rejected", "rolled_back"), timeout=self.watch + 1.0)
        r.champion = cv.models.get_model(MODEL).aliases.get("champion")
        r.firings = cv.automation.history(AUTOMATION)
        self.report()
        return r

    def replay(self, url: str, frame: Any, per_request: int = 24) -> None:
        """Send ``frame`` as prediction requests of one day each, then the real counts as feedback."""
        import httpx

        columns = list(self.inputs(frame).columns)
        with httpx.Client(base_url=url, timeout=30) as http:
            for start in range(0, len(frame), per_request):
                part = frame.iloc[start:start + per_request]
                body = {"columns": columns, "data": self.inputs(part).to_numpy().tolist()}
                answer = http.post(f"/v1/models/{MODEL}/predict", json=body)
                answer.raise_for_status()
                rid = answer.json()["request_id"]
                ids = [rid] if len(part) == 1 else [f"{rid}:{k}" for k in range(len(part))]
                labels = [{"request_id": i, "label": int(y)} for i, y in zip(ids, part[TARGET], strict=True)]
                http.post(f"/v1/models/{MODEL}/feedback", json={"labels": labels}).raise_for_status()
        if self.service.writer is not None:
            self.service.writer.flush()

    def live_rmse(self, version: int | None, since: int) -> float | None:
        """The version's rmse on the labelled rows it served since ``since`` (ms)."""
        from conveyor.automation.live import measure
        from conveyor.stores.predictions import PredictionLog

        if version is None:
            return None
        found = measure(PredictionLog(self.client.content.backend), MODEL, version, since, now_ms() + 1, ["rmse"])
        return found.metrics.get("rmse")

    def settle(self, agent: Any, until: tuple[str, ...] = ("done", "failed", "rejected", "rolled_back"),
               timeout: float = 600.0) -> None:
        """Agent passes until the newest firing reaches one of ``until`` (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        while True:
            agent.run_once()
            latest = cv.automation.history(AUTOMATION, 1)
            if (latest and latest[0].state in until) or time.monotonic() >= deadline:
                return
            self.tick(agent.interval)

    def report(self) -> None:
        r = self.result
        self.say("\n6. Before and after")
        if r.rmse_before is not None:
            self.say(f"   version {r.first} on April-June traffic: rmse {r.rmse_before:.1f}")
        for version, value in r.rmse_canary.items():
            self.say(f"   version {version} during the canary (July-mid August): rmse {value:.1f}")
        self.say(f"   champion now: version {r.champion}")
        self.say(f"\nHistory ({AUTOMATION}):")
        for line in cv.automation.story(AUTOMATION):
            self.say(f"   {line}")
        self.say(f"\nLineage of models:/{MODEL}@champion:")
        try:
            for line in cv.models.lineage(f"models:/{MODEL}@champion").chain():
                self.say(f"   {line}")
        except NotFound:
            self.say("   (no champion)")
        self.say("\nBrowse it: conveyor automation history bike-demand-retrain | conveyor models versions "
                 f"bike-demand | conveyor monitor status bike-demand   (with CONVEYOR_PROJECT={self.project})")


def run_quickstart(data: Path | str | None = None, project: str = "quickstart", out: TextIO = sys.stdout, *,
                   trial_seconds: float = 6.0, watch_seconds: float = 6.0) -> LoopResult:
    """Tell the story (see the module docstring) in ``project`` (or ``project-N`` if it is taken)."""
    try:
        import httpx  # noqa: F401
        import lightgbm  # noqa: F401
        import pandas  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(f"the quickstart needs {exc.name}: pip install 'conveyor-mlops[ml,data,server]'") from None
    from conveyor.quickstart.sweep import find_data

    path = find_data(data)
    name = _free_project(project)
    previous = cv.get_project()
    cv.set_project(name)
    try:
        return Story(path, name, out, trial_seconds=trial_seconds, watch_seconds=watch_seconds).run()
    finally:
        cv.set_project(previous)
