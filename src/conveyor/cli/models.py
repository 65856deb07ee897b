"""``conveyor models list|show|versions|set-alias|promote|rollback|archive|lineage``."""

from __future__ import annotations

from typing import Any

import click

from conveyor.cli.output import emit_json, json_option, table, when

project_option = click.option("--project", "-p", default=None, help="Project name (default: current).")


def _registry(project: str | None) -> Any:
    import conveyor as cv

    return cv.models.registry(project)


@click.group("models")
def group() -> None:
    """Registered models: versions, aliases, promotion gates, lineage."""


@group.command("list")
@project_option
@click.option("--query", "-q", default=None, help="Only models whose name contains this text.")
@click.option("--max-results", "-n", default=50, show_default=True, type=int)
@click.option("--page-token", default=None, help="Token printed at the end of the previous page.")
@json_option
def list_(project: str | None, query: str | None, max_results: int, page_token: str | None, as_json: bool) -> None:
    """List registered models in name order."""
    page = _registry(project).search(query, max_results=max_results, page_token=page_token)
    if as_json:
        emit_json({"models": list(page), "next_page_token": page.next_page_token})
        return
    table(["NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"],
          [(m.name, m.latest_version, _aliases(m.aliases), when(m.updated_at), m.description[:40]) for m in page])
    if page.next_page_token:
        click.echo(f"\nmore: --page-token {page.next_page_token}")


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}=v{v}" for a, v in sorted(aliases.items())) or "-"


def _versions_table(versions: list[Any]) -> None:
    table(["VERSION", "STATUS", "ALIASES", "FLAVOUR", "FORMAT", "RUN", "CREATED", "BY"],
          [(mv.version, mv.status, ", ".join(mv.aliases) or "-", mv.flavour, mv.format, mv.run_id or "-",
            when(mv.created_at), mv.created_by) for mv in versions])


@group.command("show")
@click.argument("name")
@project_option
@json_option
def show(name: str, project: str | None, as_json: bool) -> None:
    """A registered model: aliases, declared gate and its newest versions."""
    registry = _registry(project)
    model = registry.get_model(name)
    versions = list(registry.list_versions(name, max_results=20))
    if as_json:
        emit_json({"model": model, "versions": versions})
        return
    for label, value in (("name", model.name), ("project", model.project), ("latest", model.latest_version),
                         ("aliases", _aliases(model.aliases)), ("gate", "declared" if model.gate else "-"),
                         ("created", when(model.created_at)), ("description", model.description or "-")):
        click.echo(f"{label:<13}{value if value is not None else '-'}")
    if versions:
        click.echo("\nversions:")
        _versions_table(versions)


@group.command("versions")
@click.argument("name")
@project_option
@click.option("--max-results", "-n", default=50, show_default=True, type=int)
@click.option("--page-token", default=None)
@json_option
def versions(name: str, project: str | None, max_results: int, page_token: str | None, as_json: bool) -> None:
    """Versions of a model, newest first."""
    page = _registry(project).list_versions(name, max_results=max_results, page_token=page_token)
    if as_json:
        emit_json({"versions": list(page), "next_page_token": page.next_page_token})
        return
    _versions_table(list(page))
    if page.next_page_token:
        click.echo(f"\nmore: --page-token {page.next_page_token}")


@group.command("set-alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@project_option
def set_alias(name: str, alias: str, version: int, project: str | None) -> None:
    """Point ALIAS at VERSION directly (no gate; audited)."""
    _registry(project).set_alias(name, alias, version)
    click.echo(f"{name}@{alias} -> version {version}")


@group.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--to", "to", default="champion", show_default=True, help="The alias to move.")
@click.option("--gate", "gate_file", default=None, type=click.Path(dir_okay=False),
              help="A YAML/TOML/JSON gate policy (default: the model's declared gate).")
@click.option("--force", is_flag=True, help="Move the alias even if the gate fails (needs --reason).")
@click.option("--reason", default=None, help="Why a failing gate is overridden (audited).")
@project_option
def promote(name: str, version: int, to: str, gate_file: str | None, force: bool, reason: str | None,
            project: str | None) -> None:
    """Move an alias onto VERSION through the promotion gate; a failing gate prints every check."""
    from conveyor.registry.gate import format_report

    evaluation = _registry(project).promote(name, version, to, gate=gate_file, force=force, reason=reason)
    verdict = "FORCED past a failing gate" if evaluation.forced else "gate passed"
    click.echo(f"{name}@{to} -> version {version} ({verdict})")
    click.echo(format_report(evaluation.report))


@group.command("rollback")
@click.argument("name")
@click.option("--alias", "-a", default="champion", show_default=True)
@project_option
def rollback(name: str, alias: str, project: str | None) -> None:
    """Move an alias back to its previous holder."""
    mv = _registry(project).rollback(name, alias)
    click.echo(f"{name}@{alias} -> version {mv.version} (rolled back)")


@group.command("archive")
@click.argument("name")
@click.argument("version", type=int)
@project_option
def archive(name: str, version: int, project: str | None) -> None:
    """Archive a version (refused while it holds an alias)."""
    _registry(project).archive(name, version)
    click.echo(f"{name} version {version} archived")


@group.command("lineage")
@click.argument("uri")
@project_option
@json_option
def lineage(uri: str, project: str | None, as_json: bool) -> None:
    """Where a model version came from: run, datasets, code commit, environment."""
    graph = _registry(project).lineage(uri)
    if as_json:
        emit_json({"nodes": graph.nodes, "edges": graph.edges})
        return
    for line in graph.chain():
        click.echo(line)
