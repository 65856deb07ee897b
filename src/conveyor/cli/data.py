"""``conveyor data add|ls|show|diff|get|validate|suite|checks|push|pull``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from conveyor.cli.output import emit_json, json_option, table, when
from conveyor.core.errors import InvalidArgument


@click.group("data")
def group() -> None:
    """Versioned datasets and the validation that stops tainted data."""


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _tags(values: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--tag {item!r} must look like key=value", field="tag")
        tags[key] = value
    return tags


def _summary(ds: Any) -> str:
    rows = f"{ds.num_rows} rows, " if ds.num_rows is not None else ""
    files = f"{ds.record.num_files} file{'s' if ds.record.num_files != 1 else ''}"
    return f"{ds.ref}  {ds.content_hash}  ({rows}{files}, {_size(ds.size)})"


@group.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="Dataset name (letters, digits, _ - .).")
@click.option("--description", "-d", default="", help="What this version holds.")
@click.option("--tag", "tags", multiple=True, help="key=value (repeatable).")
@click.option("--link", is_flag=True,
              help="Store new files as hard links, not copies, and make them read-only "
                   "(local artifact store on the same file system; copies elsewhere).")
@json_option
def add(path: Path, name: str, description: str, tags: tuple[str, ...], link: bool, as_json: bool) -> None:
    """Version the file or folder PATH as dataset NAME."""
    import conveyor as cv

    ds = cv.data.add(path, name=name, description=description, tags=_tags(tags), link=link)
    if as_json:
        emit_json(ds.to_dict())
        return
    stats = cv.data.service().last_add
    click.echo(_summary(ds))
    click.echo(f"{stats.files} files, {stats.hashed} hashed, {stats.uploaded} uploaded")


@group.command("ls")
@click.argument("name", required=False)
@json_option
def ls(name: str | None, as_json: bool) -> None:
    """List datasets, or the versions of NAME."""
    import conveyor as cv

    if name is None:
        found = cv.data.list_datasets()
        if as_json:
            emit_json(found)
            return
        table(["NAME", "LATEST", "VERSIONS", "CREATED"],
              [(d.name, f"{d.name}@{d.latest_version}", d.num_versions, when(d.created_at)) for d in found])
        return
    versions = cv.data.list_versions(name)
    if as_json:
        emit_json([v.to_dict() for v in versions])
        return
    table(["REF", "KIND", "ROWS", "FILES", "SIZE", "CREATED", "CREATOR", "CONTENT HASH"],
          [(v.ref, v.kind, v.num_rows, v.record.num_files, _size(v.size), when(v.created_at), v.creator,
            v.content_hash) for v in versions])


@group.command("show")
@click.argument("ref")
@click.option("--files", "show_files", is_flag=True, help="List every file.")
@json_option
def show(ref: str, show_files: bool, as_json: bool) -> None:
    """One version: its record, schema and (with --files) its files."""
    import conveyor as cv

    ds = cv.data.get(ref)
    if as_json:
        data = ds.to_dict(with_profile=True)
        if show_files:
            data["files"] = ds.files
        emit_json(data)
        return
    for label, value in (
        ("ref", ds.ref), ("id", ds.id), ("content", ds.content_hash), ("kind", ds.kind),
        ("rows", ds.num_rows), ("files", ds.record.num_files), ("size", _size(ds.size)),
        ("created", when(ds.created_at)), ("creator", ds.creator),
        ("description", ds.description or "-"),
        ("tags", ", ".join(f"{k}={v}" for k, v in ds.tags.items()) or "-"),
    ):
        click.echo(f"{label:<12} {value if value is not None else '-'}")
    if ds.schema and ds.profile:
        click.echo("")
        cols = ds.profile["columns"]
        table(["COLUMN", "TYPE", "NULLS", "DISTINCT", "MIN", "MAX", "MEAN"],
              [(c, s["type"], cols[c]["nulls"], cols[c]["distinct"], s.get("min"), s.get("max"),
                cols[c].get("mean")) for c, s in ds.schema.items()])
    if show_files:
        click.echo("")
        table(["PATH", "SIZE", "DIGEST"], [(f.path, f.size, f.digest) for f in ds.files])


@group.command("diff")
@click.argument("a")
@click.argument("b")
@json_option
def diff(a: str, b: str, as_json: bool) -> None:
    """What changed from version A to version B."""
    import conveyor as cv

    result = cv.data.diff(a, b)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(result.to_text())


@group.command("get")
@click.argument("ref")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
def get(ref: str, dest: Path, force: bool) -> None:
    """Check out the files of REF into the folder --to (verified; hard links when possible)."""
    import conveyor as cv

    target = cv.data.checkout(ref, dest, force=force)
    click.echo(str(target))


def _load_suite(against: str | None, suite_file: Path | None, tolerance: str) -> Any:
    import conveyor as cv

    if (against is None) == (suite_file is None):
        raise InvalidArgument("give exactly one of --against REF or --suite FILE", field="against")
    if suite_file is not None:
        return cv.data.Suite.load(suite_file)
    return cv.data.Suite.from_profile(cv.data.get(against or ""), tolerance=tolerance)


@group.command("validate")
@click.argument("path")
@click.option("--against", default=None, help="Derive the checks from this version's profile.")
@click.option("--suite", "suite_file", default=None, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A suite file (YAML or JSON).")
@click.option("--tolerance", type=click.Choice(["strict", "relaxed"]), default="strict", show_default=True)
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report as a standalone HTML page.")
@json_option
def validate(path: str, against: str | None, suite_file: Path | None, tolerance: str,
             html_out: Path | None, as_json: bool) -> None:
    """Check the table at PATH (a file, or a dataset ref such as bikes@2); exit 1 if it fails."""
    import conveyor as cv
    from conveyor.data.refs import parse_ref

    suite = _load_suite(against, suite_file, tolerance)
    data: Any = path
    if not Path(path).exists() and "@" in path:
        parse_ref(path, "path")
        data = cv.data.get(path)
    report = cv.data.validate(data, suite)
    if html_out is not None:
        html_out.write_text(report.to_html(), encoding="utf-8")
    click.echo(report.to_json() if as_json else report.to_text())
    if not report.ok:
        sys.exit(1)


@group.command("suite")
@click.argument("ref")
@click.option("--tolerance", type=click.Choice(["strict", "relaxed"]), default="strict", show_default=True)
@click.option("--out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write to a file (.yaml/.yml or .json) instead of printing YAML.")
def suite(ref: str, tolerance: str, out: Path | None) -> None:
    """Print (or save) the suite derived from REF's profile, to review or edit."""
    import conveyor as cv

    derived = cv.data.Suite.from_profile(cv.data.get(ref), tolerance=tolerance)
    if out is None:
        click.echo(derived.to_yaml())
    else:
        click.echo(str(derived.save(out)))


@group.command("checks")
@click.argument("name")
@click.option("--max-results", "-n", default=50, show_default=True, type=int)
@json_option
def checks(name: str, max_results: int, as_json: bool) -> None:
    """Recorded validation results for dataset NAME, newest first."""
    import conveyor as cv

    found = cv.data.checks(name, max_results)
    if as_json:
        emit_json(found)
        return
    table(["WHEN", "RESULT", "FAILED", "VERSION", "TARGET", "SUITE", "RUN"],
          [(when(c.created_at), "ok" if c.ok else "FAILED", c.num_failures,
            c.version, c.target, c.suite, c.run_id) for c in found])


@group.command("push")
@click.argument("refs", nargs=-1)
@click.option("--to", "to", required=True, envvar="CONVEYOR_DATA_REMOTE",
              help="Artifact store to copy to (s3://bucket/prefix or a folder).")
def push(refs: tuple[str, ...], to: str) -> None:
    """Copy the blobs of REFS (default: every version) to another store; missing ones only."""
    import conveyor as cv

    stats = cv.data.push(to, list(refs))
    click.echo(f"{stats.copied} of {stats.blobs} blobs copied ({_size(stats.bytes)}) to {to}")


@group.command("pull")
@click.argument("ref")
@click.option("--from", "source", required=True, envvar="CONVEYOR_DATA_REMOTE",
              help="Artifact store to copy from (default: $CONVEYOR_DATA_REMOTE).")
def pull(ref: str, source: str) -> None:
    """Copy the blobs of REF from another store into the configured one."""
    import conveyor as cv

    stats = cv.data.pull(ref, source)
    click.echo(f"{stats.copied} of {stats.blobs} blobs copied ({_size(stats.bytes)}) from {source}")
