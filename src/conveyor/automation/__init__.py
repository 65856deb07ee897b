"""Continuous training: triggers, the agent, champion/challenger rollout and automatic rollback.

    >>> cv.automation.apply_file("conveyor.toml")
    >>> cv.automation.trigger("bike-demand-retrain", reason="holiday calendar changed")
    >>> print("\\n".join(cv.automation.story("bike-demand-retrain")))

``conveyor agent`` runs the loop; see docs/automation.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.automation.service import Automation, AutomationService
from conveyor.automation.spec import AutomationSpec
from conveyor.stores.metadata.automation import FiringRecord

__all__ = [
    "Automation", "AutomationService", "AutomationSpec", "apply", "apply_file", "delete", "get",
    "build_agent", "history", "list_automations", "service", "story", "trigger",
]


def service(project: str | None = None) -> AutomationService:
    """Automations of ``project`` (default: the current one) over the fluent client's stores."""
    from conveyor.tracking import fluent

    client = fluent.client()
    return AutomationService(client.store, client.content, project or fluent.get_project(), client.settings.home)


def apply(spec: AutomationSpec | Mapping[str, Any]) -> Automation:
    """Create or update one automation (a spec or the same as a dict, as in conveyor.toml)."""
    return service().apply(spec)


def apply_file(path: str | Path) -> list[Automation]:
    """Create or update every ``[[automation]]`` of a TOML file."""
    return service().apply_file(path)


def get(name: str) -> Automation:
    return service().get(name)


def list_automations() -> list[Automation]:
    return service().list_all()


def delete(name: str) -> None:
    service().delete(name)


def trigger(name: str, reason: str | None = None) -> FiringRecord:
    """Fire ``name`` by hand; the agent runs it on its next pass."""
    return service().trigger(name, reason)


def history(name: str, limit: int = 100) -> list[FiringRecord]:
    """Every firing of ``name``, newest first, with its steps."""
    return service().history(name, limit)


def story(name: str, limit: int = 20) -> list[str]:
    """The history of ``name`` in plain words."""
    return service().story(name, limit)


def build_agent(**options: Any) -> Any:
    """An :class:`~conveyor.automation.agent.Agent` over the fluent client's stores (``.run_once()``)."""
    from conveyor.automation.agent import Agent
    from conveyor.tracking import fluent

    client = fluent.client()
    return Agent(client.store, client.content, client.settings.home, **options)
