"""Automations over HTTP: what a user does with ``store.automation`` through a server.

Applying, listing, enabling, deleting automations, firing one by hand and
reading its history go through the server. Moving firings and holding the
agent lease do not: the agent runs next to the database (``conveyor server
--agent`` or ``conveyor agent``), where a lease and a firing's move are one
transaction, so those methods say so instead of adding an HTTP hop to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import msgspec

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument, InvalidState
from conveyor.core.ids import check_id
from conveyor.stores.metadata.automation import AutomationRecord, FiringRecord, Lease


def _agent_only(what: str) -> NoReturn:
    raise InvalidState(
        f"{what} is the agent's work and needs a direct database connection (sqlite: or postgresql:), "
        "not a server URI; run `conveyor server --agent` or `conveyor agent` next to the database")


class RestAutomationStore:
    """The user's half of :class:`~conveyor.stores.metadata.automation.AutomationStore` on a server."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session.request(method, path, **kwargs)

    @staticmethod
    def _named(project: str, name: str | None = None) -> str:
        path = f"/projects/{v.check_name(project, 'project')}/automations"
        return path if name is None else f"{path}/{v.check_name(name, 'automation')}"

    def put_automation(
        self, *, project: str, name: str, spec: Mapping[str, Any], cursors: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> AutomationRecord:
        path = self._named(project, name)  # names are checked before anything is sent
        body = {"spec": dict(spec), "cursors": dict(cursors or {}), "enabled": enabled}
        try:
            msgspec.json.encode(body["spec"])
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidArgument(f"spec must be JSON data: {exc}", field="spec") from None
        return msgspec.convert(self._call("PUT", path, json=body), AutomationRecord)

    def get_automation(self, project: str, name: str) -> AutomationRecord:
        return msgspec.convert(self._call("GET", self._named(project, name)), AutomationRecord)

    def get_automation_by_id(self, automation_id: str) -> AutomationRecord:
        check_id(automation_id, "automation_id")
        return msgspec.convert(self._call("GET", f"/automations/{automation_id}"), AutomationRecord)

    def list_automations(self, project: str | None = None) -> list[AutomationRecord]:
        if project is None:
            _agent_only("listing every project's automations")
        return msgspec.convert(self._call("GET", self._named(project)), list[AutomationRecord])

    def set_enabled(self, project: str, name: str, enabled: bool) -> AutomationRecord:
        if not isinstance(enabled, bool):
            raise InvalidArgument("enabled must be true or false", field="enabled")
        return msgspec.convert(self._call("PUT", self._named(project, name) + "/enabled", json={"enabled": enabled}),
                               AutomationRecord)

    def delete_automation(self, project: str, name: str) -> None:
        self._call("DELETE", self._named(project, name), done_if_missing=True)

    def add_firing(
        self, automation_id: str, *, trigger: str, key: str, reason: str, evidence: Mapping[str, Any],
        cursor: tuple[str, Any] | None = None, fence: tuple[str, int] | None = None,
    ) -> FiringRecord | None:
        """A manual firing; its unique ``key`` makes a retry after a lost answer return the same firing."""
        check_id(automation_id, "automation_id")
        if trigger != "manual" or cursor is not None or fence is not None:
            _agent_only(f"recording a {trigger!r} firing")
        body = {"trigger": trigger, "key": key, "reason": reason, "evidence": dict(evidence)}
        return msgspec.convert(self._call("POST", f"/automations/{automation_id}/firings", json=body), FiringRecord)

    def advance_firing(self, firing_id: str, *, expect: str, state: str, message: str,
                       details: Mapping[str, Any] | None = None, fence: tuple[str, int] | None = None,
                       **fields: Any) -> FiringRecord:
        _agent_only("moving a firing")

    def get_firing(self, firing_id: str) -> FiringRecord:
        check_id(firing_id, "firing_id")
        return msgspec.convert(self._call("GET", f"/automation-firings/{firing_id}"), FiringRecord)

    def list_firings(
        self, automation_id: str, *, limit: int = 100, states: tuple[str, ...] | None = None
    ) -> list[FiringRecord]:
        check_id(automation_id, "automation_id")
        params: dict[str, Any] = {"limit": limit}
        if states:
            params["states"] = ",".join(states)
        return msgspec.convert(self._call("GET", f"/automations/{automation_id}/firings", params=params),
                               list[FiringRecord])

    def active_firings(self) -> list[FiringRecord]:
        _agent_only("listing every active firing")

    def acquire_lease(self, name: str, holder: str, ttl_ms: int, now: int | None = None) -> Lease | None:
        _agent_only("holding the agent lease")

    def release_lease(self, name: str, holder: str) -> None:
        _agent_only("holding the agent lease")

    def get_lease(self, name: str) -> Lease | None:
        _agent_only("reading the agent lease")
