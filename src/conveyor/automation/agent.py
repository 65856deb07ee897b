"""The automation agent: one leader at a time evaluates triggers and moves firings on.

Run it as ``conveyor agent`` (a long-running process) or inside ``conveyor
server``. Several agents may run against one metadata store for availability:
each pass starts by taking or renewing the lease ``agent:NAME`` in the store,
and only the holder acts. A leader that dies stops renewing; another agent
takes the lease once it expires (``lease_ttl``) with a larger token, and every
write the old leader might still attempt carries the old token and is refused.

A pass, as the leader:

1. evaluates every stored monitor whose newest result is older than
   ``monitor_every`` (this is how monitors run on a schedule);
2. for each enabled automation with no firing in flight and out of its
   cool-down, records what its triggers want (one firing per pass, at most);
3. moves each automation's oldest active firing one step on (``rollout.py``).

The lease is renewed by a background thread while a pass runs, so a pipeline
that trains for an hour does not lose it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.automation import triggers
from conveyor.automation.rollout import Step, Works
from conveyor.automation.spec import AutomationSpec
from conveyor.core.context import acting_as
from conveyor.core.errors import ConveyorError, LeaseLost, NotFound
from conveyor.core.ids import new_id, now_ms
from conveyor.stores.metadata.automation import FiringRecord

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    """What one pass did (for the CLI's ``--once`` and the tests)."""

    leader: bool
    fired: list[FiringRecord] = field(default_factory=list)
    moved: list[FiringRecord] = field(default_factory=list)
    monitors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        store: Any,
        content: Any,
        home: Path,
        *,
        name: str = "default",
        holder: str | None = None,
        lease_ttl: float = 30.0,
        interval: float = 5.0,
        monitor_every: float = 300.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.content = content
        self.home = Path(home)
        self.lease_name = f"agent:{name}"
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"
        self.ttl_ms = int(lease_ttl * 1000)
        self.interval = interval
        self.monitor_every_ms = int(monitor_every * 1000)
        self.clock = clock
        self.token: int | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ lease

    def lead(self) -> bool:
        """Take or renew the lease; True while this agent is the leader."""
        lease = self.store.automation.acquire_lease(self.lease_name, self.holder, self.ttl_ms)
        if lease is None:
            if self.token is not None:
                log.warning("agent %s lost the lease %s", self.holder, self.lease_name)
            self.token = None
            return False
        if self.token != lease.token:
            log.info("agent %s leads %s (token %d)", self.holder, self.lease_name, lease.token)
        self.token = lease.token
        return True

    def _keep_lease(self, done: threading.Event) -> None:
        while not done.wait(max(self.ttl_ms / 3000, 0.05)):
            try:
                self.lead()
            except Exception as exc:  # the database blinked: the next renewal may succeed
                log.warning("lease renewal failed: %s", exc)

    # ------------------------------------------------------------------ one pass

    def run_once(self) -> PassReport:
        """One pass: lead or stand by; as the leader, monitors, triggers, then firings."""
        if not self.lead():
            return PassReport(leader=False)
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(done,), name="conveyor-agent-lease", daemon=True)
        keeper.start()
        try:
            with acting_as(f"agent:{self.lease_name.partition(':')[2]}"):
                return self._pass()
        finally:
            done.set()
            keeper.join()

    def _pass(self) -> PassReport:
        report = PassReport(leader=True)
        works = Works(self.store, self.content, self.home, (self.lease_name, self.token or 0), self.clock,
                      holder=self.holder)
        automations = [a for a in self.store.automation.list_automations() if a.enabled]
        active: dict[str, list[FiringRecord]] = {}
        for firing in self.store.automation.active_firings():
            active.setdefault(firing.automation_id, []).append(firing)
        self._evaluate_monitors(report)
        for record in automations:
            try:
                spec = AutomationSpec.from_dict(record.spec)
                if record.id not in active and not self._cooling(record, spec):
                    fired = self._fire(record, spec)
                    if fired is not None:
                        report.fired.append(fired)
                        active[record.id] = [fired]
            except LeaseLost:
                raise
            except ConveyorError as exc:
                report.errors.append(f"{record.name}: {exc.message}")
                log.error("automation %s: %s", record.name, exc.message)
        by_id = {a.id: a for a in automations}
        for automation_id, firings in active.items():
            record = by_id.get(automation_id)
            if record is None:  # disabled while a firing was in flight: finish what started
                try:
                    record = self.store.automation.get_automation_by_id(automation_id)
                except NotFound:
                    continue
            step = Step(works, record, firings[0])
            report.moved.append(step.advance())
        return report

    def _cooling(self, record: Any, spec: AutomationSpec) -> bool:
        if not spec.cooldown_ms:
            return False
        last = self.store.automation.list_firings(record.id, limit=1)
        return bool(last) and self.clock() - last[0].created_at < spec.cooldown_ms

    def _fire(self, record: Any, spec: AutomationSpec) -> FiringRecord | None:
        recent = self.store.automation.list_firings(record.id, limit=20)
        for wanted in triggers.due(spec, record, self.store, self.clock(), recent):
            fired = self.store.automation.add_firing(
                record.id, trigger=wanted.trigger, key=wanted.key, reason=wanted.reason, evidence=wanted.evidence,
                cursor=wanted.cursor, fence=(self.lease_name, self.token or 0))
            if fired is not None:
                log.info("automation %s fired (#%d): %s", record.name, fired.number, fired.reason)
                return fired  # one firing per pass; the others are seen again next time
        return None

    def _evaluate_monitors(self, report: PassReport) -> None:
        """Every stored monitor of every project whose newest result is older than ``monitor_every``."""
        from conveyor.monitoring.evaluation import run
        from conveyor.monitoring.monitors import MonitorService

        for project in self.store.list_projects():
            service = MonitorService(self.store, self.content, project.name, self.home)
            for monitor in service.list():
                newest = self.store.monitors.list_results(monitor.id, 1)
                if newest and self.clock() - newest[0].at < self.monitor_every_ms:
                    continue
                try:
                    run(monitor, store=self.store, content=self.content, registry=service.registry(),
                        home=self.home, now=self.clock())
                except ConveyorError as exc:  # e.g. the model was deleted: say so, keep going
                    report.errors.append(f"monitor {project.name}/{monitor.name}: {exc.message}")
                    continue
                report.monitors.append(f"{project.name}/{monitor.name}")

    # ------------------------------------------------------------------ forever

    def run_forever(self) -> None:
        """Pass every ``interval`` seconds until :meth:`stop`; gives the lease up on the way out."""
        log.info("agent %s started (lease %s, ttl %.0fs)", self.holder, self.lease_name, self.ttl_ms / 1000)
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except LeaseLost:
                    log.warning("agent %s: lease lost mid-pass; standing by", self.holder)
                    self.token = None
                except Exception:
                    log.exception("agent pass failed; retrying in %.0fs", self.interval)
                self._stop.wait(self.interval)
        finally:
            try:
                self.store.automation.release_lease(self.lease_name, self.holder)
            except Exception as exc:
                log.warning("could not release the lease: %s", exc)

    def stop(self) -> None:
        self._stop.set()
