"""``conveyor automation apply|list|show|trigger|history|enable|disable|delete`` and ``conveyor agent``."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import emit_json, json_option, table, when


@click.group("automation")
def group() -> None:
    """Automations: retrain on a schedule, new data, drift or a performance drop; roll out; roll back."""


def _service():  # noqa: ANN202
    import conveyor as cv

    return cv.automation.service()


@group.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), default="conveyor.toml")
@json_option
def apply(file: Path, as_json: bool) -> None:
    """Create or update every [[automation]] of FILE (default: conveyor.toml)."""
    applied = _service().apply_file(file)
    if as_json:
        emit_json([a.to_dict() for a in applied])
        return
    for a in applied:
        click.echo(f"automation {a.name} (project {a.project}): {a.spec.pipeline}, "
                   f"on {', '.join(t.text for t in a.spec.triggers)}")


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Automations of the current project."""
    automations = _service().list_all()
    if as_json:
        emit_json([a.to_dict() for a in automations])
        return
    table(["name", "enabled", "pipeline", "triggers", "promotes"],
          [[a.name, a.record.enabled, a.spec.pipeline, ", ".join(t.text for t in a.spec.triggers),
            f"{a.spec.promote.model}@{a.spec.promote.alias}" if a.spec.promote else "-"] for a in automations])


@group.command("show")
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """The automation's spec, trigger cursors and latest firing."""
    svc = _service()
    a = svc.get(name)
    latest = svc.history(name, limit=1)
    if as_json:
        emit_json(a.to_dict() | {"latest_firing": latest[0] if latest else None})
        return
    s = a.spec
    click.echo(f"automation {a.name} (project {a.project}){'' if a.record.enabled else ' DISABLED'}")
    click.echo(f"  pipeline  {s.pipeline}" + (f" with {s.params}" if s.params else ""))
    if s.data:
        click.echo(f"  data      new versions of {s.data.dataset} -> parameter {s.data.param}")
    for t in s.triggers:
        seen = a.record.cursors.get(t.cursor)
        click.echo(f"  on        {t.text}" + (f"   (last seen: {seen})" if seen is not None else ""))
    if s.promote:
        p = s.promote
        trial = f", {p.canary.mode} {p.canary.duration}" if p.canary else ""
        click.echo(f"  promote   {p.model}: gate -> @{p.challenger}{trial} -> @{p.alias}")
    if s.rollback:
        click.echo(f"  rollback  when {s.rollback.when}, within {s.rollback.within}")
    if s.cooldown:
        click.echo(f"  cooldown  {s.cooldown}")
    if latest:
        f = latest[0]
        click.echo(f"  latest    #{f.number} {when(f.created_at)} {f.trigger}: {f.state}")


@group.command("trigger")
@click.argument("name")
@click.option("--reason", help="Why (recorded with the firing).")
@json_option
def trigger(name: str, reason: str | None, as_json: bool) -> None:
    """Fire NAME now; the agent runs it on its next pass."""
    fired = _service().trigger(name, reason)
    if as_json:
        emit_json(fired)
        return
    click.echo(f"automation {name}: firing #{fired.number} recorded ({fired.reason}); the agent runs it next")


@group.command("history")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
def history(name: str, limit: int, as_json: bool) -> None:
    """Every firing of NAME: its reason, the run, the gate, the rollout, in plain words."""
    svc = _service()
    if as_json:
        emit_json(svc.history(name, limit))
        return
    lines = svc.story(name, limit)
    click.echo("\n".join(lines) if lines else f"automation {name} has not fired yet")


@group.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Let the agent evaluate NAME's triggers again."""
    _service().set_enabled(name, True)
    click.echo(f"automation {name} enabled")


@group.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Stop evaluating NAME's triggers (a firing in flight still finishes)."""
    _service().set_enabled(name, False)
    click.echo(f"automation {name} disabled")


@group.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete NAME and its history (refused while a firing is in flight)."""
    _service().delete(name)
    click.echo(f"automation {name} deleted")


@click.command("agent")
@click.option("--name", default="default", show_default=True, help="The lease agents compete for.")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds between passes.")
@click.option("--lease-ttl", default=30.0, show_default=True, type=click.FloatRange(0.5),
              help="Seconds a silent leader keeps the lease.")
@click.option("--monitor-every", default="5m", show_default=True,
              help="How often the monitors the triggers read are evaluated (30s, 5m, 1h).")
@click.option("--once", is_flag=True, help="One pass, then exit (cron-style).")
def agent_command(name: str, interval: float, lease_ttl: float, monitor_every: str, once: bool) -> None:
    """Run the automation agent: evaluate triggers, run pipelines, roll out, roll back."""
    import logging
    import signal

    import conveyor as cv
    from conveyor.automation.spec import duration_ms

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    every = duration_ms(monitor_every, "monitor-every") / 1000
    agent = cv.automation.build_agent(name=name, interval=interval, lease_ttl=lease_ttl, monitor_every=every)
    if once:
        report = agent.run_once()
        if not report.leader:
            click.echo(f"another agent holds the lease agent:{name}; nothing done")
            return
        for f in report.fired:
            click.echo(f"fired #{f.number}: {f.reason}")
        for f in report.moved:
            click.echo(f"firing #{f.number}: {f.state}: {f.steps[-1]['message']}")
        for e in report.errors:
            click.echo(f"error: {e}", err=True)
        return
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    try:
        agent.run_forever()
    except KeyboardInterrupt:
        agent.stop()
