"""The automation store interface: automations, their firings, and leader leases.

The automation service (``conveyor.automation``) talks to this Protocol only;
``sql/automation.py`` implements it and :class:`SqlMetadataStore` exposes it as
``store.automation``. Three guarantees live here, in single transactions, so the
agent above can be killed at any instant:

* a firing is recorded at most once per ``(automation, key)``, together with the
  trigger cursor it advances: a trigger never fires twice and is never lost;
* a firing moves from one state to the next only from the state the caller saw
  (``expect``), and only while the caller still holds the agent lease (the
  ``fence``): two agents can never both move one firing;
* a lease has one holder at a time; its ``token`` grows each time the holder
  changes, so a leader that stalled past its lease can no longer write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec

#: Firing states, in the order a successful firing goes through them.
PENDING, RUNNING, GATING, CANARY, WATCHING = "pending", "running", "gating", "canary", "watching"
#: Final states.
DONE, FAILED, REJECTED, ROLLED_BACK = "done", "failed", "rejected", "rolled_back"
ACTIVE_STATES = (PENDING, RUNNING, GATING, CANARY, WATCHING)
FINAL_STATES = (DONE, FAILED, REJECTED, ROLLED_BACK)
STATES = ACTIVE_STATES + FINAL_STATES
#: What can fire an automation.
TRIGGERS = ("schedule", "new_data", "drift", "performance", "manual")


class AutomationRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored automation: its parsed spec and the cursors of its triggers."""

    id: str
    project: str
    name: str
    spec: dict[str, Any]
    cursors: dict[str, Any]  # per trigger: the last thing it fired on (or saw at creation)
    enabled: bool
    created_by: str
    created_at: int
    updated_at: int


class FiringRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One firing of an automation and everything that happened because of it."""

    id: str
    automation_id: str
    number: int  # 1, 2, 3 ... per automation
    trigger: str  # one of TRIGGERS
    key: str  # unique per automation: what fired, e.g. "new_data:bikes-raw@3"
    reason: str  # plain words
    evidence: dict[str, Any]
    state: str  # one of STATES
    steps: list[dict[str, Any]]  # [{"at", "state", "message", "details"}], oldest first
    run_id: str | None
    candidate: int | None  # the model version the pipeline registered
    previous: int | None  # the alias holder before the rollout
    error: str | None
    created_by: str
    created_at: int
    updated_at: int
    finished_at: int | None


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """Who acts for ``name`` until ``expires_at``; ``token`` grows with each new holder."""

    name: str
    holder: str
    token: int
    acquired_at: int
    expires_at: int


@runtime_checkable
class AutomationStore(Protocol):
    def put_automation(
        self, *, project: str, name: str, spec: Mapping[str, Any], cursors: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> AutomationRecord:
        """Create the automation, or replace its spec (cursors kept, merged with ``cursors``)."""
        ...

    def get_automation(self, project: str, name: str) -> AutomationRecord:
        """``NotFound`` when missing."""
        ...

    def get_automation_by_id(self, automation_id: str) -> AutomationRecord: ...

    def list_automations(self, project: str | None = None) -> list[AutomationRecord]:
        """In (project, name) order; every project's when ``project`` is None (what an agent serves)."""
        ...

    def set_enabled(self, project: str, name: str, enabled: bool) -> AutomationRecord: ...

    def delete_automation(self, project: str, name: str) -> None:
        """Delete it and its firings; refused (``InvalidState``) while a firing is active."""
        ...

    def add_firing(
        self, automation_id: str, *, trigger: str, key: str, reason: str, evidence: Mapping[str, Any],
        cursor: tuple[str, Any] | None = None, fence: tuple[str, int] | None = None,
    ) -> FiringRecord | None:
        """Record a ``pending`` firing and advance ``cursor`` (name, value) in one transaction.

        Returns ``None``, changing nothing, when the automation already has a
        firing with ``key``. Raises ``LeaseLost`` when ``fence`` (lease name,
        token) is no longer held.
        """
        ...

    def advance_firing(
        self, firing_id: str, *, expect: str, state: str, message: str,
        details: Mapping[str, Any] | None = None, fence: tuple[str, int] | None = None, **fields: Any,
    ) -> FiringRecord:
        """Move a firing from ``expect`` to ``state``, appending a step; ``fields`` sets
        ``run_id``, ``candidate``, ``previous``, ``error`` or merges into ``evidence``.

        ``state == expect`` appends a step without moving (progress notes).
        Raises ``InvalidState`` when the firing is no longer in ``expect`` (someone
        else moved it) and ``LeaseLost`` when ``fence`` is no longer held.
        """
        ...

    def get_firing(self, firing_id: str) -> FiringRecord: ...

    def list_firings(
        self, automation_id: str, *, limit: int = 100, states: tuple[str, ...] | None = None
    ) -> list[FiringRecord]:
        """Newest first."""
        ...

    def active_firings(self) -> list[FiringRecord]:
        """Every firing not in a final state, oldest first (what an agent works on)."""
        ...

    def acquire_lease(self, name: str, holder: str, ttl_ms: int, now: int | None = None) -> Lease | None:
        """Take or renew the lease; ``None`` while another holder's lease is unexpired."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up now (no-op when ``holder`` does not hold it)."""
        ...

    def get_lease(self, name: str) -> Lease | None: ...
