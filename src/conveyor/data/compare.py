"""What changed between two dataset versions: files, and for tables schema, rows and profiles."""

from __future__ import annotations

from typing import Any

import msgspec

from conveyor.data.versions import DatasetVersion

#: Profile statistics compared per column.
STATS = ("nulls", "distinct", "min", "max", "mean", "std")


class ColumnShift(msgspec.Struct, frozen=True, kw_only=True):
    """How one column's profile moved: ``{stat: [before, after]}`` for every stat that changed."""

    column: str
    changes: dict[str, list[Any]]
    new_categories: list[str] = []
    gone_categories: list[str] = []


class DatasetDiff(msgspec.Struct, frozen=True, kw_only=True):
    a: str
    b: str
    same_content: bool
    added: list[str]
    removed: list[str]
    changed: list[str]
    rows: list[int | None]  # [a, b]
    columns_added: dict[str, str] = {}
    columns_removed: dict[str, str] = {}
    type_changes: dict[str, list[str]] = {}
    shifts: list[ColumnShift] = []

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def to_text(self) -> str:
        if self.same_content:
            return f"{self.a} and {self.b} have the same content"
        lines = [f"{self.a} -> {self.b}"]
        for label, paths in (("+", self.added), ("-", self.removed), ("~", self.changed)):
            lines += [f"  {label} {p}" for p in paths[:50]]
            if len(paths) > 50:
                lines.append(f"  {label} ... {len(paths) - 50} more")
        if self.rows != [None, None] and self.rows[0] != self.rows[1]:
            lines.append(f"  rows: {self.rows[0]} -> {self.rows[1]}")
        lines += [f"  + column {c} ({t})" for c, t in self.columns_added.items()]
        lines += [f"  - column {c} ({t})" for c, t in self.columns_removed.items()]
        lines += [f"  ~ column {c}: {t[0]} -> {t[1]}" for c, t in self.type_changes.items()]
        for shift in self.shifts:
            moved = ", ".join(f"{k} {_fmt(v[0])} -> {_fmt(v[1])}" for k, v in shift.changes.items())
            if shift.new_categories:
                moved += f"{', ' if moved else ''}new categories {shift.new_categories[:5]}"
            lines.append(f"  {shift.column}: {moved}")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def diff(a: DatasetVersion, b: DatasetVersion) -> DatasetDiff:
    """Compare ``a`` (before) with ``b`` (after)."""
    files_a = {f.path: f.digest for f in a.files}
    files_b = {f.path: f.digest for f in b.files}
    common = files_a.keys() & files_b.keys()
    schema_a, schema_b = a.schema or {}, b.schema or {}
    prof_a = (a.profile or {}).get("columns", {})
    prof_b = (b.profile or {}).get("columns", {})
    shifts = []
    for column in sorted(prof_a.keys() & prof_b.keys()):
        before, after = prof_a[column], prof_b[column]
        changes = {
            stat: [before.get(stat), after.get(stat)]
            for stat in STATS
            if before.get(stat) != after.get(stat)
        }
        new_cats = sorted(set(after.get("top", {})) - set(before.get("top", {})))
        gone_cats = sorted(set(before.get("top", {})) - set(after.get("top", {})))
        if changes or new_cats or gone_cats:
            shifts.append(ColumnShift(column=column, changes=changes, new_categories=new_cats, gone_categories=gone_cats))
    return DatasetDiff(
        a=a.ref, b=b.ref, same_content=a.content_hash == b.content_hash,
        added=sorted(files_b.keys() - files_a.keys()),
        removed=sorted(files_a.keys() - files_b.keys()),
        changed=sorted(p for p in common if files_a[p] != files_b[p]),
        rows=[a.num_rows, b.num_rows],
        columns_added={c: schema_b[c]["type"] for c in schema_b if c not in schema_a},
        columns_removed={c: schema_a[c]["type"] for c in schema_a if c not in schema_b},
        type_changes={
            c: [schema_a[c]["dtype"], schema_b[c]["dtype"]]
            for c in schema_a.keys() & schema_b.keys()
            if schema_a[c]["dtype"] != schema_b[c]["dtype"]
        },
        shifts=shifts,
    )
