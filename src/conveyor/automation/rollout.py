"""What happens after an automation fires: one step of the firing's state machine at a time.

::

    pending ─▶ running ─▶ gating ─▶ canary ─▶ watching ─▶ done
                 │          │         │          │
                 ▼          ▼         ▼          ▼
               failed    rejected  rejected  rolled_back

* **running**: the pipeline runs (the new dataset version as its input); the
  version of the promoted model it registered is the candidate.
* **gating**: the registry's gate decides whether the candidate may become
  ``challenger``; it is compared with the current ``champion``.
* **canary**: the serving deployment that follows ``@challenger`` gives it its
  share of traffic (or a shadow copy); after the trial the live rule is judged
  on the labelled rows of both versions over the same span. If it holds, the
  candidate becomes ``champion``.
* **watching**: for ``rollback.within`` the new champion's live metrics are
  compared with those of the version it replaced; a tripped rule moves the alias
  back.

Each step reads the firing, acts, and moves the firing on with one guarded
write (``expect`` = the state it read, ``fence`` = the agent's lease). Every
action is safe to repeat: an agent killed between acting and recording leaves
work the next leader finds done (the alias already moved) and only records.
An alias is one row, moved in one transaction: there are never two champions.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.automation import live
from conveyor.automation.spec import DEFAULT_ROLLBACK, AutomationSpec, parse_live_rule
from conveyor.core.errors import ConveyorError, GateFailed, InvalidState, NotFound
from conveyor.stores.metadata.automation import (
    CANARY,
    DONE,
    FAILED,
    GATING,
    PENDING,
    REJECTED,
    ROLLED_BACK,
    RUNNING,
    WATCHING,
    AutomationRecord,
    FiringRecord,
)

log = logging.getLogger(__name__)

#: Lineage node kind of a firing: ``firing -> run`` (triggered), ``firing -> model_version`` (rolled out).
FIRING_NODE = "automation_firing"


@dataclass
class Works:
    """What a step needs: the stores, the agent's lease, the clock."""

    store: Any
    content: Any
    home: Path
    fence: tuple[str, int] | None
    now: Callable[[], int]
    holder: str = "agent"
    prediction_log: Any = None

    def registry(self, project: str) -> Any:
        from conveyor.registry.service import ModelRegistry

        return ModelRegistry(self.store, self.content, project)

    def log(self) -> Any:
        if self.prediction_log is None:
            from conveyor.stores.predictions import PredictionLog

            self.prediction_log = PredictionLog(self.content.backend)
        return self.prediction_log


class Step:
    """Advance one firing by one state (or note that it waits)."""

    def __init__(self, works: Works, automation: AutomationRecord, firing: FiringRecord) -> None:
        self.w = works
        self.automation = automation
        self.firing = firing
        self.spec = AutomationSpec.from_dict(automation.spec)
        self.records = works.store.automation

    # ------------------------------------------------------------------ plumbing

    def move(self, state: str, message: str, details: dict[str, Any] | None = None, **fields: Any) -> FiringRecord:
        moved = state != self.firing.state
        self.firing = self.records.advance_firing(
            self.firing.id, expect=self.firing.state, state=state, message=message, details=details or {},
            fence=self.w.fence, **fields)
        log.info("automation %s firing #%d: %s: %s", self.automation.name, self.firing.number, state, message)
        if moved and (state in (FAILED, REJECTED, ROLLED_BACK) or (state == WATCHING and self.firing.previous)):
            self.alert(state, message)
        return self.firing

    def alert(self, state: str, message: str) -> None:
        from conveyor.monitoring.alerts import Alert, parse_channel

        if not self.spec.alerts:
            return
        severity = {"failed": "critical", "rolled_back": "critical"}.get(state, "warning")
        title = {"watching": "promoted"}.get(state, state)
        alert = Alert(monitor=f"automation {self.automation.name}", title=title, summary=message, severity=severity,
                      at=self.w.now(), details={"firing": self.firing.number, "key": self.firing.key,
                                                "candidate": self.firing.candidate, "run_id": self.firing.run_id})
        for spec in self.spec.alerts:
            try:
                parse_channel(spec, default_log=self.w.home / "alerts.jsonl").send(alert)
            except Exception as exc:  # an alert that cannot be sent never stops the rollout
                log.warning("alert %s for automation %s failed: %s", spec.partition("=")[0],
                            self.automation.name, exc)

    def lineage(self, node: tuple[str, str], relation: str) -> None:
        self.w.store.add_lineage((FIRING_NODE, self.firing.id), node, relation)

    @property
    def model(self) -> str:
        assert self.spec.promote is not None
        return self.spec.promote.model

    def intends(self, action: str) -> bool:
        """Whether an earlier agent wrote that it was about to ``action`` (then maybe died)."""
        return any(step.get("details", {}).get("intent") == action for step in self.firing.steps)

    def aliases(self) -> dict[str, int]:
        return dict(self.w.registry(self.automation.project).get_model(self.model).aliases)

    def clauses(self) -> tuple[Any, ...]:
        rollback = self.spec.rollback
        return rollback.clauses if rollback is not None else parse_live_rule(DEFAULT_ROLLBACK, "rollback.when")

    # ------------------------------------------------------------------ states

    def advance(self) -> FiringRecord:
        handler = {PENDING: self.start, RUNNING: self.run, GATING: self.gate, CANARY: self.trial,
                   WATCHING: self.watch}.get(self.firing.state)
        if handler is None:
            return self.firing
        try:
            handler()
        except (InvalidState, NotFound) as exc:
            # Someone else moved the firing (another agent, a human): re-read and carry on next tick.
            if getattr(exc, "code", "") == "LEASE_LOST":
                raise
            current = self.records.get_firing(self.firing.id)
            if current.state != self.firing.state:
                self.firing = current
                return current
            self.fail(exc)
        except Exception as exc:
            self.fail(exc)
        return self.firing

    def fail(self, exc: BaseException) -> None:
        text = exc.message if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
        log.error("automation %s firing #%d failed in %s:\n%s", self.automation.name, self.firing.number,
                  self.firing.state, "".join(traceback.format_exception(exc)))
        if self.firing.state == CANARY:
            self.drop_challenger()
        self.move(FAILED, f"{self.firing.state} failed: {text}; the champion is untouched", error=text)

    def start(self) -> None:
        self.move(RUNNING, f"picked up by {self.w.holder}")
        self.run()

    def run(self) -> None:
        """Run the pipeline, find the version it registered, hand it to the gate."""
        from conveyor.pipelines.loading import load_pipeline

        resumed = any(s.get("details", {}).get("started") for s in self.firing.steps)
        params = dict(self.spec.params)
        data_ref = None
        if self.spec.data is not None:
            data_ref = self.firing.evidence.get("dataset") or self.latest_data()
            if data_ref is not None:
                params[self.spec.data.param] = self.data_value(data_ref)
        self.move(RUNNING, ("resumed: " if resumed else "") + f"pipeline {self.spec.pipeline} started"
                  + (f" on {data_ref}" if data_ref else ""), {"started": True, "params": _jsonable(params)},
                  **({"evidence": {"dataset": data_ref}} if data_ref else {}))
        pipeline = load_pipeline(self.spec.pipeline)
        result = pipeline.run(executor=self.spec.executor, project=self.automation.project, **params)
        self.lineage(("run", result.id), "triggered")
        if data_ref is not None:
            version = self.w.store.datasets.get_version(*_split_ref(data_ref))
            self.w.store.add_lineage(("dataset_version", version.id), ("run", result.id), "input:automation")
        if not result.ok:
            failed = [s for s in result.steps.values() if s.error]
            why = f"step {failed[0].name}: {failed[0].error.splitlines()[-1]}" if failed else str(result.status)
            self.move(FAILED, f"pipeline run {result.id} failed ({why}); nothing promoted, the champion is untouched",
                      {"run": result.to_dict()}, run_id=result.id, error=why)
            return
        if self.spec.promote is None:
            self.move(DONE, f"pipeline run {result.id} finished (no promotion configured)", run_id=result.id)
            return
        candidate = self.candidate(result)
        self.move(GATING, f"pipeline run {result.id} finished and registered {self.model} version {candidate}",
                  {"metrics": dict(result.metrics)}, run_id=result.id, candidate=candidate)
        self.gate()

    def latest_data(self) -> str | None:
        assert self.spec.data is not None
        try:
            return str(self.w.store.datasets.get_version(self.spec.data.dataset).ref)
        except NotFound:
            return None

    def data_value(self, ref: str) -> Any:
        assert self.spec.data is not None
        if self.spec.data.as_ == "ref":
            return ref
        from conveyor.data.service import DataService

        service = DataService(self.w.store, self.w.content, self.w.home)
        return str(service.get(ref).path)

    def candidate(self, result: Any) -> int:
        """The version of the promoted model this pipeline run registered."""
        registry = self.w.registry(self.automation.project)
        runs = {result.id, *(s.run_id for s in result.steps.values() if s.run_id)}
        try:
            page = registry.list_versions(self.model, max_results=100)
        except NotFound:
            page = None
        versions: Any = getattr(page, "items", page) or []
        for mv in versions:
            if mv.run_id in runs:
                return int(mv.version)
        if result.result_refs:  # a cached register step hands back the version it registered before
            value = result.output(0)
            if isinstance(value, int) and not isinstance(value, bool):
                return int(registry.get_version(self.model, value).version)
        raise InvalidState(
            f"pipeline {self.spec.pipeline} registered no version of {self.model!r}: end it with a step that "
            f"calls cv.log_model(..., name={self.model!r}) (see examples/bikes/pipeline.py:release)")

    def gate(self) -> None:
        assert self.spec.promote is not None and self.firing.candidate is not None
        promote = self.spec.promote
        candidate = self.firing.candidate
        if self.intends("promote"):  # the alias may have moved before the last agent stopped: finish that
            self.promote(self.firing.previous, "resumed after the previous agent stopped", {})
            return
        aliases = self.aliases()
        champion = aliases.get(promote.alias)
        if champion == candidate:
            self.move(REJECTED, f"version {candidate} already is {promote.alias}: nothing new to roll out")
            return
        registry = self.w.registry(self.automation.project)
        report: dict[str, Any] | None = None
        if aliases.get(promote.challenger) != candidate:  # not gated yet (or an agent died after the gate)
            try:
                evaluation = registry.promote(self.model, candidate, to=promote.challenger, gate=promote.gate,
                                              against=promote.alias)
                report = evaluation.report
            except GateFailed as exc:
                checks: Any = exc.report.get("checks", [])
                failed = [c for c in checks if not c.get("passed", True)]
                reasons = "; ".join(_check_text(c) for c in failed) or exc.message
                self.move(REJECTED, f"the gate refused version {candidate} (compared with "
                          f"{'version ' + str(champion) if champion else 'no champion'}): {reasons}; it stays "
                          "registered, not promoted", {"gate": exc.report}, evidence={"gate": exc.report})
                return
        trial = promote.canary
        passed = f"the gate passed version {candidate} (compared with " \
                 f"{'version ' + str(champion) if champion else 'no champion'}); it is {promote.challenger}"
        if trial is not None and champion is not None:
            if trial.mode == "canary":
                self.set_canary_weight(trial.weight)
            started = self.w.now()
            self.move(CANARY, f"{passed}; {trial.mode} trial for {trial.duration}"
                      + (f" at {trial.weight:.0%} of traffic" if trial.mode == "canary" else ""),
                      {"gate": report} if report else {}, previous=champion, evidence={"trial_started": started})
            return
        self.promote(champion, passed, {"gate": report} if report else {})

    def promote(self, champion: int | None, why: str, details: dict[str, Any]) -> None:
        """Move the alias onto the candidate (once), then watch it or finish."""
        assert self.spec.promote is not None and self.firing.candidate is not None
        promote, candidate = self.spec.promote, self.firing.candidate
        registry = self.w.registry(self.automation.project)
        if self.intends("promote"):  # resuming: use what the agent that wrote the intent measured
            now = int(self.firing.evidence.get("promoted_at") or self.w.now())
            previous_live = self.firing.evidence.get("previous_live")
        else:
            now = self.w.now()
            previous_live = None
            if champion is not None and self.spec.rollback is not None:
                span = self.spec.rollback.within_ms
                previous_live = live.measure(self.w.log(), self.model, champion, now - span, now,
                                             self.spec.rollback.metrics).to_dict()
            self.move(self.firing.state, f"moving {promote.alias} to version {candidate}", {"intent": "promote"},
                      previous=champion, evidence={"previous_live": previous_live, "promoted_at": now})
        if self.aliases().get(promote.alias) != candidate:
            registry.records.set_alias(self.automation.project, self.model, promote.alias, candidate,
                                       action="promote", details={"automation": self.automation.name,
                                                                  "firing": self.firing.number})
        self.drop_challenger()
        mv = registry.get_version(self.model, candidate)
        self.lineage(("model_version", mv.id), "rolled_out")
        message = f"{why}; version {candidate} is now {promote.alias}" + (
            f" (was version {champion})" if champion is not None else "")
        if self.spec.rollback is None or champion is None:
            rebased = self.rebase_monitors()
            self.move(DONE, "; ".join([message, *rebased]), {**details, **({"rebased": rebased} if rebased else {})},
                      previous=champion, evidence={"promoted_at": now})
            return
        self.move(WATCHING, f"{message}; watching it for {self.spec.rollback.within}", details, previous=champion,
                  evidence={"promoted_at": now, "previous_live": previous_live})

    def set_canary_weight(self, weight: float) -> None:
        """Tell deployments that follow the model's canary weight what share the challenger gets."""
        from conveyor.serving.config import CANARY_WEIGHT_TAG

        registry = self.w.registry(self.automation.project)
        if registry.get_model(self.model).tags.get(CANARY_WEIGHT_TAG) != f"{weight:g}":
            registry.records.update_model(self.automation.project, self.model,
                                          tags={CANARY_WEIGHT_TAG: f"{weight:g}"})

    def drop_challenger(self) -> None:
        assert self.spec.promote is not None
        if self.spec.promote.canary is not None and self.spec.promote.canary.mode == "canary":
            self.set_canary_weight(0.0)  # before the alias goes: no request is routed to a missing challenger
        challenger = self.spec.promote.challenger
        if self.aliases().get(challenger) == self.firing.candidate:
            with contextlib.suppress(NotFound):
                self.w.registry(self.automation.project).delete_alias(self.model, challenger)

    def trial(self) -> None:
        """Judge the canary (or shadow) once its time is up and it has seen enough labelled rows."""
        assert self.spec.promote is not None and self.spec.promote.canary is not None
        trial = self.spec.promote.canary
        if self.intends("promote"):
            self.promote(self.firing.previous, "resumed after the previous agent stopped", {})
            return
        started = int(self.firing.evidence["trial_started"])
        now = self.w.now()
        if now - started < trial.duration_ms:
            return
        metrics = sorted({c.metric for c in self.clauses()})
        assert self.firing.candidate is not None and self.firing.previous is not None
        both = live.measure_versions(self.w.log(), self.model, [self.firing.candidate, self.firing.previous],
                                     started, now, metrics)
        candidate, champion = both[self.firing.candidate], both[self.firing.previous]
        details: dict[str, Any] = {"candidate": candidate.to_dict(), "champion": champion.to_dict()}
        if candidate.labelled < trial.min_rows:
            if now - started < trial.duration_ms + trial.patience_ms:
                return
            self.drop_challenger()
            self.move(REJECTED, f"the {trial.mode} trial saw {candidate.labelled} labelled rows of version "
                      f"{self.firing.candidate} (at least {trial.min_rows} needed): is a deployment serving "
                      f"models:/{self.model}@{self.spec.promote.challenger} as its {trial.mode}? The champion is "
                      "untouched", details)
            return
        outcomes = live.judge(self.clauses(), candidate, champion)
        details["rules"] = outcomes
        if any(o["tripped"] for o in outcomes):
            self.drop_challenger()
            self.move(REJECTED, f"the {trial.mode} trial failed: {live.describe(outcomes)}; version "
                      f"{self.firing.previous} stays {self.spec.promote.alias}", details)
            return
        self.promote(self.firing.previous, f"the {trial.mode} trial held over {candidate.labelled} labelled rows "
                     f"({live.describe(outcomes)})", details)

    def watch(self) -> None:
        """Roll back when the rule trips within the watch period; finish when it ends."""
        assert self.spec.promote is not None and self.spec.rollback is not None
        promote, rollback = self.spec.promote, self.spec.rollback
        if self.intends("rollback"):
            self.roll_back(self.firing.evidence.get("rollback_rules", []), None, None)
            return
        promoted = int(self.firing.evidence["promoted_at"])
        now = self.w.now()
        candidate = live.measure(self.w.log(), self.model, self.firing.candidate, promoted, now, rollback.metrics)
        stored = self.firing.evidence.get("previous_live")
        previous = live.Live.from_dict(stored) if stored else None
        min_rows = promote.canary.min_rows if promote.canary else 30
        if candidate.labelled >= min_rows or (candidate.rows and rollback.metrics == ["error_rate"]):
            outcomes = live.judge(rollback.clauses, candidate, previous)
            if any(o["tripped"] for o in outcomes):
                self.roll_back(outcomes, candidate, previous)
                return
        if now - promoted >= rollback.within_ms:
            holder = self.aliases().get(promote.alias)
            kept = "kept" if holder == self.firing.candidate else f"no longer {promote.alias} (now version {holder})"
            rebased = self.rebase_monitors() if holder == self.firing.candidate else []
            self.move(DONE, "; ".join([f"version {self.firing.candidate} {kept} after {rollback.within} of watching "
                                       f"({candidate.labelled} labelled rows)", *rebased]),
                      {"candidate": candidate.to_dict(), **({"rebased": rebased} if rebased else {})})

    def rebase_monitors(self) -> list[str]:
        """Point the model's monitors at the data the kept candidate was trained on.

        Only monitors whose reference is a version of the automation's dataset move,
        so drift is measured against what the champion learnt from; one left on the
        old version would keep its incident open for as long as the data differs
        from that version, and a drift trigger fires once per incident. Rebasing
        again with the same version changes nothing, so a resumed step is harmless.
        """
        assert self.spec.promote is not None
        data_ref = self.firing.evidence.get("dataset")
        if not self.spec.promote.rebase_monitors or self.spec.data is None or not data_ref:
            return []
        from conveyor.monitoring.monitors import MonitorService, split_model

        service = MonitorService(self.w.store, self.w.content, self.automation.project, self.w.home)
        said = []
        for monitor in service.list():
            name, alias = split_model(monitor.model)
            watched = name == self.model and alias in (None, self.spec.promote.alias)
            if not watched or _split_ref(monitor.reference)[0] != self.spec.data.dataset or monitor.reference == data_ref:
                continue
            try:
                service.rebase(monitor.name, data_ref)
            except ConveyorError as exc:  # the new data lacks a watched column: keep the old reference, say why
                said.append(f"monitor {monitor.name} still compares against {monitor.reference} ({exc})")
                continue
            said.append(f"monitor {monitor.name} now compares against {data_ref} (was {monitor.reference})")
        return said

    def roll_back(self, outcomes: list[dict[str, Any]], candidate: live.Live | None,
                  previous: live.Live | None) -> None:
        assert self.spec.promote is not None and self.firing.previous is not None
        alias, back = self.spec.promote.alias, self.firing.previous
        details = {"rules": outcomes, "candidate": candidate.to_dict() if candidate else None,
                   "previous": previous.to_dict() if previous else None}
        if not self.intends("rollback"):
            self.move(WATCHING, f"rolling {alias} back to version {back}", {"intent": "rollback"},
                      evidence={"rollback_rules": outcomes})
        holder = self.aliases().get(alias)
        if holder == self.firing.candidate:
            self.w.registry(self.automation.project).records.set_alias(
                self.automation.project, self.model, alias, back, action="rollback",
                details={"automation": self.automation.name, "firing": self.firing.number})
            what = f"{alias} is back on version {back}"
        else:
            what = f"{alias} is on version {holder}" + ("" if holder == back else "; left there")
        self.move(ROLLED_BACK, f"rollback rule tripped for version {self.firing.candidate}: "
                  f"{live.describe(outcomes)}; {what}", details)


def _check_text(check: dict[str, Any]) -> str:
    numbers = ""
    if isinstance(check.get("value"), int | float) and isinstance(check.get("threshold"), int | float):
        numbers = f" ({check['value']:.4g} vs {check['threshold']:.4g})"
    detail = f" ({check['detail']})" if check.get("detail") else ""
    return f"{check.get('rule')}{numbers or detail}"


def _split_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition("@")
    return name, int(version) if version.isdigit() else None


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (val if isinstance(val, str | int | float | bool) or val is None else str(val))
            for k, val in params.items()}
