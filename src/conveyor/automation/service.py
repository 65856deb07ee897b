"""Automations of one project: store them, list them, fire them by hand, tell their history.

Example::

    svc = AutomationService(store, content, project="bikes", home=settings.home)
    svc.apply_file("conveyor.toml")             # create or update every [[automation]]
    svc.trigger("bike-demand-retrain", reason="new holiday calendar")
    for line in svc.story("bike-demand-retrain"):
        print(line)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.automation import triggers
from conveyor.automation.spec import AutomationSpec, load_file
from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.core.ids import new_id, now_ms
from conveyor.stores.metadata.automation import AutomationRecord, FiringRecord


@dataclass(frozen=True)
class Automation:
    """A stored automation as the SDK shows it."""

    record: AutomationRecord
    spec: AutomationSpec

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def project(self) -> str:
        return self.record.project

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {"name": r.name, "project": r.project, "enabled": r.enabled, "spec": r.spec, "cursors": r.cursors,
                "created_by": r.created_by, "created_at": r.created_at, "updated_at": r.updated_at}


class AutomationService:
    def __init__(self, store: Any, content: Any, project: str, home: Path) -> None:
        self.store = store
        self.records = store.automation
        self.content = content
        self.project = v.check_name(project, "project")
        self.home = Path(home)

    def apply(self, spec: AutomationSpec | Mapping[str, Any], *, check_pipeline: bool = True) -> Automation:
        """Create the automation or replace its spec; triggers start from now (nothing past fires)."""
        if not isinstance(spec, AutomationSpec):
            spec = AutomationSpec.from_dict(spec)
        if check_pipeline:
            _check_pipeline(spec)
        self.store.get_or_create_project(self.project)
        try:
            existing = self.records.get_automation(self.project, spec.name).cursors
        except NotFound:
            existing = {}
        fresh = {k: val for k, val in triggers.initial_cursors(spec, self.store, now_ms()).items()
                 if k not in existing}
        record = self.records.put_automation(project=self.project, name=spec.name, spec=spec.to_dict(),
                                             cursors=fresh)
        return Automation(record, spec)

    def apply_file(self, path: str | Path, *, check_pipeline: bool = True) -> list[Automation]:
        """Every ``[[automation]]`` of a TOML file (each in its ``project``, default this one)."""
        out = []
        for project, spec in load_file(path):
            target = self if project in (None, self.project) else AutomationService(
                self.store, self.content, project or self.project, self.home)
            out.append(target.apply(spec, check_pipeline=check_pipeline))
        return out

    def get(self, name: str) -> Automation:
        v.check_name(name, "automation")
        record = self.records.get_automation(self.project, name)
        return Automation(record, AutomationSpec.from_dict(record.spec))

    def list_all(self) -> list[Automation]:
        return [Automation(r, AutomationSpec.from_dict(r.spec)) for r in self.records.list_automations(self.project)]

    def set_enabled(self, name: str, enabled: bool) -> Automation:
        v.check_name(name, "automation")
        record = self.records.set_enabled(self.project, name, enabled)
        return Automation(record, AutomationSpec.from_dict(record.spec))

    def delete(self, name: str) -> None:
        v.check_name(name, "automation")
        self.records.delete_automation(self.project, name)

    def trigger(self, name: str, reason: str | None = None) -> FiringRecord:
        """Fire by hand: recorded now, run by the agent's next pass (after any firing in flight)."""
        automation = self.get(name)
        if reason is not None and not isinstance(reason, str):
            raise InvalidArgument("reason must be text", field="reason")
        why = reason.strip() if reason and reason.strip() else "fired by hand"
        fired = self.records.add_firing(automation.record.id, trigger="manual", key=f"manual:{new_id()}",
                                        reason=why, evidence={"reason": (reason or "").strip()})
        assert fired is not None  # a fresh key is never a duplicate
        return fired

    def history(self, name: str, limit: int = 100) -> list[FiringRecord]:
        """Firings, newest first."""
        return self.records.list_firings(self.get(name).record.id, limit=limit)

    def story(self, name: str, limit: int = 20) -> list[str]:
        """The history in plain words, oldest firing first: what fired, why, and what followed."""
        lines: list[str] = []
        for firing in reversed(self.history(name, limit)):
            lines.extend(tell(firing))
        return lines


def tell(firing: FiringRecord) -> list[str]:
    """One firing as lines of text: a heading, then one line per step."""
    head = f"#{firing.number} {_when(firing.created_at)} {firing.trigger}: {firing.reason} -> {firing.state.upper()}"
    if firing.candidate is not None:
        head += f" (candidate version {firing.candidate}"
        head += f", replacing version {firing.previous})" if firing.previous is not None else ")"
    lines = [head]
    for step in firing.steps[1:]:
        lines.append(f"    {_when(step['at'])} {step['state']:<11} {step['message']}")
    return lines


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _check_pipeline(spec: AutomationSpec) -> None:
    """The pipeline must load, and take the data parameter, when the automation is stored."""
    from conveyor.pipelines.loading import load_pipeline

    pipeline = load_pipeline(spec.pipeline)
    params = [p.name for p in pipeline.params]
    wanted = [*spec.params, *([spec.data.param] if spec.data else [])]
    unknown = [p for p in wanted if p not in params]
    if unknown:
        raise InvalidArgument(
            f"pipeline {spec.pipeline} has no parameter(s) {', '.join(unknown)} (it takes {', '.join(params)})",
            field="params" if unknown[0] in spec.params else "data.param")
