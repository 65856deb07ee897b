"""``conveyor audit list|verify``: the append-only, hash-chained trail of every change."""

from __future__ import annotations

import datetime as dt
import re
import sys

import click

from conveyor.cli.output import emit_json, json_option, table, when
from conveyor.cli.users import governance
from conveyor.core.errors import InvalidArgument

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: dt.datetime | None = None) -> int:
    """``2h``, ``7d``, an ISO date/time (UTC unless it says otherwise) → ms since the epoch."""
    now = now or dt.datetime.now(dt.UTC)
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if match:
        return int((now.timestamp() - int(match.group(1)) * _UNITS[match.group(2)]) * 1000)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(f"--since {text!r} is neither a duration (30m, 2h, 7d) nor an ISO date", field="since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@click.group("audit")
def group() -> None:
    """Who changed what, and proof that nobody edited the record."""


@group.command("list")
@click.option("--project", default=None, help="Only events of this project.")
@click.option("--since", default=None, help="From a time on: 30m, 2h, 7d or an ISO date.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def list_(project: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List audit events, oldest first."""
    events = governance().list_audit(  # type: ignore[attr-defined]
        project=project, since=parse_since(since) if since else None, limit=limit
    )
    if as_json:
        emit_json(events)
        return
    table(
        ["SEQ", "AT", "ACTOR", "ACTION", "OBJECT", "PROJECT"],
        [(e.seq, when(e.at), e.actor, e.action, f"{e.object_kind}:{e.object_id}", e.project) for e in events],
    )


@group.command("verify")
def verify() -> None:
    """Recompute the hash chain; exit 1 and name the first bad event if it was tampered with."""
    status = governance().verify_audit()  # type: ignore[attr-defined]
    if status.ok:
        click.echo(f"audit trail intact: {status.checked} events verified")
        return
    click.echo(f"audit trail BROKEN at event {status.broken_at}: {status.reason} "
               f"({status.checked} events before it verified)", err=True)
    sys.exit(1)
