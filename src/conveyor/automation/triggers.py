"""Which triggers of an automation want to fire now, and with what evidence.

Each check is a pure reading of the stores: it never writes. What a trigger
last fired on is its *cursor* (kept on the automation record); a firing and its
cursor are stored in one transaction, under a key unique per automation, so a
trigger seen twice (two agents, a restart) is recorded once, and a trigger seen
by an agent that dies before recording it is seen again by the next one.

| trigger | fires when | key |
| --- | --- | --- |
| ``schedule:CRON`` | a tick is due after the cursor; missed ticks run once | the newest due tick |
| ``new_data:NAME`` | the dataset's newest version is past the cursor | ``NAME@N`` |
| ``drift:MONITOR > S`` | the newest result's drifted share ≥ S (or status drift) | the monitor's open incident |
| ``performance:MONITOR RULE`` | the rule holds on the newest result (or status degraded) | the same incident |

Drift and performance share the key: one incident retrains once, whichever
trigger saw it first.
| ``manual`` | someone asks (``conveyor automation trigger``) | a fresh id |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.automation.spec import AutomationSpec, Trigger
from conveyor.core.errors import NotFound
from conveyor.stores.metadata.automation import AutomationRecord

#: Ticks counted when reporting how many runs a stopped agent missed.
_MAX_COUNTED = 10_000


@dataclass(frozen=True)
class Wanted:
    """A firing a trigger asks for."""

    trigger: str
    key: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    cursor: tuple[str, Any] | None = None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def initial_cursors(spec: AutomationSpec, store: Any, now: int) -> dict[str, Any]:
    """What each trigger has "already seen" when an automation is created: nothing before now fires."""
    cursors: dict[str, Any] = {}
    for t in spec.triggers:
        if t.kind == "schedule":
            cursors[t.cursor] = now
        elif t.kind == "new_data":
            cursors[t.cursor] = _latest_version(store, t.dataset or "")
    return cursors


def _latest_version(store: Any, dataset: str) -> int:
    try:
        return int(store.datasets.get_version(dataset).version)
    except NotFound:
        return 0


def schedule(t: Trigger, cursor: int, now: int) -> Wanted | None:
    from croniter import croniter

    # croniter's get_prev is strictly before its start: start a second late so a tick due now counts
    due = croniter(t.cron, datetime.fromtimestamp(now // 1000 + 1, UTC)).get_prev(datetime)
    due_ms = int(due.timestamp() * 1000)
    if due_ms <= cursor:
        return None
    missed, it = 0, croniter(t.cron, datetime.fromtimestamp(cursor / 1000, UTC))
    while missed < _MAX_COUNTED and int(it.get_next(datetime).timestamp() * 1000) < due_ms:
        missed += 1
    reason = f"schedule {t.cron!r}: the run due at {_iso(due_ms)}"
    if missed:
        reason += f" ({missed} earlier run{'s' if missed > 1 else ''} missed while no agent ran: run once, not {missed + 1} times)"
    return Wanted("schedule", f"schedule:{t.cron}@{due_ms}", reason, {"due": due_ms, "missed": missed},
                  (t.cursor, due_ms))


def new_data(t: Trigger, cursor: int, store: Any, used: int = 0) -> Wanted | None:
    """``used``: the newest version of the dataset a firing already trained on (whatever fired it)."""
    try:
        record = store.datasets.get_version(t.dataset)
    except NotFound:
        return None
    if int(record.version) <= max(int(cursor or 0), used):
        return None
    rows = f", {record.num_rows:,} rows" if record.num_rows is not None else ""
    return Wanted("new_data", f"new_data:{record.ref}", f"new data: {record.ref}{rows}",
                  {"dataset": record.ref, "dataset_id": record.id, "rows": record.num_rows,
                   "content_hash": record.content_hash, "seen_before": int(cursor or 0)},
                  (t.cursor, int(record.version)))


def _newest_result(store: Any, project: str, monitor: str) -> tuple[Any, Any] | None:
    try:
        record = store.monitors.get_monitor(project, monitor)
    except NotFound:
        return None
    results = store.monitors.list_results(record.id, 1)
    return (record, results[0]) if results else None


def drift(t: Trigger, store: Any, project: str) -> Wanted | None:
    found = _newest_result(store, project, t.monitor or "")
    if found is None:
        return None
    record, result = found
    share = result.share_drifted
    hit = share is not None and share >= t.threshold if t.threshold is not None else result.status == "drift"
    if not hit:
        return None
    incident = store.monitors.open_incident(record.id)
    about = incident.id if incident is not None else result.id
    what = f"{share:.0%} of features drifted" if share is not None else "drift"
    limit = f" (threshold {t.threshold:.0%})" if t.threshold is not None else ""
    columns = f": {', '.join(result.drifted_columns)}" if result.drifted_columns else ""
    return Wanted("drift", f"monitor:{t.monitor}:{about}", f"drift on monitor {t.monitor}: {what}{limit}{columns}",
                  {"monitor": t.monitor, "result": result.id, "incident": incident.id if incident else None,
                   "share_drifted": share, "drifted_columns": list(result.drifted_columns), "at": result.at},
                  (t.cursor, result.id))


def performance(t: Trigger, store: Any, project: str) -> Wanted | None:
    from conveyor.registry.rules import Rule

    found = _newest_result(store, project, t.monitor or "")
    if found is None:
        return None
    record, result = found
    if t.rule is None:
        hit, detail = result.status == "degraded", "; ".join(result.reasons)
    else:
        if result.metric_value is None:
            return None
        rule = Rule.parse(t.rule, field="on")
        metric = next(name for _, name in rule.metrics if name != "baseline")
        table = {metric: result.metric_value, **({"baseline": result.baseline} if result.baseline is not None else {})}
        outcome = rule.check({"candidate": table})
        hit = bool(outcome["passed"])
        base = f" (baseline {result.baseline:.4g})" if result.baseline is not None else ""
        detail = f"{metric} {result.metric_value:.4g} breaks {t.rule!r}{base}"
    if not hit:
        return None
    incident = store.monitors.open_incident(record.id)
    about = incident.id if incident is not None else result.id
    return Wanted("performance", f"monitor:{t.monitor}:{about}",
                  f"performance on monitor {t.monitor}: {detail}",
                  {"monitor": t.monitor, "result": result.id, "incident": incident.id if incident else None,
                   "metric_value": result.metric_value, "baseline": result.baseline,
                   "labelled_rows": result.labelled_rows, "at": result.at},
                  (t.cursor, result.id))


def used_data(firings: list[Any], dataset: str) -> int:
    """The newest version of ``dataset`` that one of ``firings`` ran its pipeline on (0: none)."""
    versions = [0]
    for f in firings:
        name, _, version = str(f.evidence.get("dataset") or "").partition("@")
        if name == dataset and version.isdigit():
            versions.append(int(version))
    return max(versions)


def due(spec: AutomationSpec, record: AutomationRecord, store: Any, now: int,
        recent: list[Any] | None = None) -> list[Wanted]:
    """Every trigger of ``spec`` that wants to fire at ``now``, in the order ``on`` lists them.

    ``recent``: the automation's latest firings; new data they already trained on
    does not fire again (a drift firing that retrained on ``bikes@3`` used it up).
    """
    wanted: list[Wanted] = []
    for t in spec.triggers:
        cursor = record.cursors.get(t.cursor)
        found: Wanted | None = None
        if t.kind == "schedule":
            found = schedule(t, int(cursor if cursor is not None else record.created_at), now)
        elif t.kind == "new_data":
            found = new_data(t, int(cursor or 0), store, used_data(recent or [], t.dataset or ""))
        elif t.kind == "drift":
            found = drift(t, store, record.project)
        elif t.kind == "performance":
            found = performance(t, store, record.project)
        if found is not None:
            wanted.append(found)
    return wanted

