"""Validation suites: a named list of checks, written by hand or derived from a profile.

A suite is data: :meth:`Suite.to_dict` / :meth:`Suite.from_dict` (and the YAML
and JSON helpers) round-trip it exactly, so it can be reviewed, stored and
versioned next to the dataset it came from. The one exception is
:meth:`Suite.custom`, which holds a Python function and cannot be serialised.

Example::

    suite = (
        Suite("bikes")
        .columns({"cnt": "int", "temp": "float", "dteday": "date"})
        .not_null("cnt")
        .between("temp", 0, 1)
        .isin("season", [1, 2, 3, 4])
        .row_count(min=1_000)
        .custom("registered <= cnt", lambda df: (df["registered"] <= df["cnt"]).all())
    )
    report = cv.data.validate(df, suite)

Check kinds and their parameters:

=================  ==========================================================
``columns``        ``types``: {column: type family}; every column must exist
``not_null``       ``max_share`` of nulls (default 0)
``unique``         no duplicate non-null values
``range``          ``min`` and/or ``max`` (inclusive)
``allowed``        ``values``: the allowed set
``regex``          ``pattern``: every non-null value must match entirely
``row_count``      ``min`` and/or ``max`` rows
``fresh``          ``max_age_seconds``: the newest timestamp is at most this old
``drift``          ``reference`` (a column profile), ``max_psi``
``new_categories`` ``known`` categories, ``max_share`` of rows outside them
``null_rate``      ``reference`` rate, ``max_increase``
``custom``         a Python function ``f(polars.DataFrame) -> bool | (bool, observed)``
=================  ==========================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from conveyor.core.errors import InvalidArgument

FORMAT = "conveyor.suite/1"
TYPE_FAMILIES = ("int", "float", "bool", "string", "date", "datetime", "duration", "other")
KINDS = (
    "columns", "not_null", "unique", "range", "allowed", "regex", "row_count", "fresh",
    "drift", "new_categories", "null_rate", "custom",
)
COLUMN_KINDS = set(KINDS) - {"columns", "row_count", "custom"}
TOLERANCES: dict[str, dict[str, Any]] = {
    # psi: largest population stability index; null: largest null-rate increase;
    # categories: largest share of unseen categories; widen: range margin (share of span);
    # rows: allowed row-count band as factors of the reference.
    "strict": {"psi": 0.1, "null": 0.01, "categories": 0.0, "widen": 0.0, "rows": (0.5, 1.5)},
    "relaxed": {"psi": 0.25, "null": 0.05, "categories": 0.05, "widen": 0.1, "rows": (0.0, None)},
}

CustomCheck = Callable[[Any], Any]


class Check(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One check: its kind, the column it looks at (if any) and its parameters."""

    kind: str
    column: str | None = None
    params: dict[str, Any] = {}
    name: str | None = None  # custom checks: the label shown in reports


class _SuiteData(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    name: str
    source: str | None = None
    checks: list[Check] = []


def _number(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{field} must be a number, got {value!r}", field=field)
    return value


def _check_column(column: Any, kind: str) -> str:
    if not isinstance(column, str) or not column:
        raise InvalidArgument(f"the {kind} check needs a column name, got {column!r}", field="column")
    return column


class Suite:
    """A named, ordered list of :class:`Check` values; builder methods return the suite.

    Args:
        name: shown in reports and recorded with results.
        checks: initial checks.
        source: the dataset reference it was derived from, e.g. ``"bikes-raw@1"``;
            results of validations with this suite are recorded under that dataset.
    """

    def __init__(self, name: str = "suite", checks: Sequence[Check] = (), source: str | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument("a suite needs a non-empty name", field="name")
        self.name = name
        self.source = source
        self.checks: list[Check] = []
        self._functions: dict[str, CustomCheck] = {}
        for check in checks:
            self.add(check)

    def __repr__(self) -> str:
        return f"<Suite {self.name!r} checks={len(self.checks)}>"

    def __len__(self) -> int:
        return len(self.checks)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Suite)
            and (self.name, self.source, self.checks) == (other.name, other.source, other.checks)
        )

    def function(self, name: str) -> CustomCheck:
        return self._functions[name]

    # -- building --------------------------------------------------------------

    def add(self, check: Check) -> Suite:
        """Append a check after checking its kind and parameters."""
        if check.kind not in KINDS:
            raise InvalidArgument(
                f"unknown check kind {check.kind!r}; expected one of {', '.join(KINDS)}", field="kind"
            )
        if check.kind in COLUMN_KINDS:
            _check_column(check.column, check.kind)
        p = check.params
        if check.kind == "columns":
            types = p.get("types")
            if not isinstance(types, dict) or not types:
                raise InvalidArgument("the columns check needs types: {column: type}", field="types")
            for col, family in types.items():
                if family is not None and family not in TYPE_FAMILIES:
                    raise InvalidArgument(
                        f"column {col!r}: unknown type {family!r}; expected one of "
                        f"{', '.join(TYPE_FAMILIES)} (or null for any type)",
                        field=f"types.{col}",
                    )
        elif check.kind in ("range", "row_count"):
            low, high = p.get("min"), p.get("max")
            if check.kind == "row_count" or not (isinstance(low, str) or isinstance(high, str)):
                _number(low, "min")
                _number(high, "max")
            if low is None and high is None:
                raise InvalidArgument(f"the {check.kind} check needs min or max", field="min")
            if low is not None and high is not None and low > high:
                raise InvalidArgument(f"min {low!r} is greater than max {high!r}", field="min")
        elif check.kind == "allowed":
            if not isinstance(p.get("values"), list):
                raise InvalidArgument("the allowed check needs a list of values", field="values")
        elif check.kind == "regex":
            pattern = p.get("pattern")
            try:
                re.compile(pattern)  # type: ignore[type-var]
            except (re.error, TypeError) as exc:
                raise InvalidArgument(f"pattern {pattern!r} is not a regular expression: {exc}", field="pattern") from None
        elif check.kind == "fresh":
            age = _number(p.get("max_age_seconds"), "max_age_seconds")
            if age is None or age <= 0:
                raise InvalidArgument("max_age_seconds must be a positive number", field="max_age_seconds")
        elif check.kind == "drift":
            ref = p.get("reference")
            if not isinstance(ref, dict) or not ("histogram" in ref or "top" in ref):
                raise InvalidArgument(
                    "the drift check needs a reference column profile with a histogram or top categories",
                    field="reference",
                )
            _number(p.get("max_psi"), "max_psi")
        elif check.kind == "new_categories":
            if not isinstance(p.get("known"), list):
                raise InvalidArgument("the new_categories check needs the known categories", field="known")
            _number(p.get("max_share"), "max_share")
        elif check.kind == "null_rate":
            _number(p.get("reference"), "reference")
            _number(p.get("max_increase"), "max_increase")
        elif check.kind in ("not_null",):
            _number(p.get("max_share", 0.0), "max_share")
        elif check.kind == "custom" and (not check.name or check.name not in self._functions):
            raise InvalidArgument(
                "custom checks hold a Python function: add them with Suite.custom(name, fn)",
                field="custom",
            )
        self.checks.append(check)
        return self

    def columns(self, types: Mapping[str, str | None] | Sequence[str]) -> Suite:
        """Every column must exist; with a mapping, also have the given type family."""
        if not isinstance(types, Mapping):
            types = dict.fromkeys(types)
        return self.add(Check(kind="columns", params={"types": dict(types)}))

    def not_null(self, column: str, max_share: float = 0.0) -> Suite:
        return self.add(Check(kind="not_null", column=column, params={"max_share": max_share}))

    def unique(self, column: str) -> Suite:
        return self.add(Check(kind="unique", column=column))

    def between(self, column: str, min: Any = None, max: Any = None) -> Suite:
        """Values within ``[min, max]`` (numbers, or ISO text for dates and times)."""
        return self.add(Check(kind="range", column=column, params={"min": min, "max": max}))

    def isin(self, column: str, values: Sequence[Any]) -> Suite:
        return self.add(Check(kind="allowed", column=column, params={"values": list(values)}))

    def matches(self, column: str, pattern: str) -> Suite:
        return self.add(Check(kind="regex", column=column, params={"pattern": pattern}))

    def row_count(self, min: int | None = None, max: int | None = None) -> Suite:
        return self.add(Check(kind="row_count", params={"min": min, "max": max}))

    def fresh(self, column: str, max_age_seconds: float) -> Suite:
        return self.add(Check(kind="fresh", column=column, params={"max_age_seconds": max_age_seconds}))

    def no_drift(self, column: str, reference: Mapping[str, Any], max_psi: float = 0.2) -> Suite:
        """The distribution must stay within ``max_psi`` (population stability index) of ``reference``."""
        return self.add(
            Check(kind="drift", column=column, params={"reference": dict(reference), "max_psi": max_psi})
        )

    def new_categories(self, column: str, known: Sequence[Any], max_share: float = 0.0) -> Suite:
        return self.add(
            Check(kind="new_categories", column=column, params={"known": list(known), "max_share": max_share})
        )

    def null_rate(self, column: str, reference: float, max_increase: float = 0.05) -> Suite:
        return self.add(
            Check(kind="null_rate", column=column, params={"reference": reference, "max_increase": max_increase})
        )

    def custom(self, name: str, fn: CustomCheck) -> Suite:
        """A Python check: ``fn(polars.DataFrame)`` returns a bool or ``(bool, observed)``."""
        if not callable(fn):
            raise InvalidArgument(f"custom check {name!r} needs a function", field="custom")
        if not isinstance(name, str) or not name or name in self._functions:
            raise InvalidArgument(f"custom check name {name!r} is empty or used twice", field="name")
        self._functions[name] = fn
        return self.add(Check(kind="custom", name=name))

    # -- from a profile --------------------------------------------------------

    @classmethod
    def from_profile(cls, ds: Any, tolerance: str = "strict", name: str | None = None) -> Suite:
        """Checks that data like ``ds`` (a DatasetVersion or a profile dict) passes.

        ``strict`` keeps the observed ranges, categories, nulls and uniqueness and a
        row count within half to one and a half times the reference; ``relaxed``
        widens ranges by 10 %, tolerates 5 % unseen categories and a 5-point null
        increase, and checks only that there are rows. Both check types and
        distribution shift (PSI ≤ 0.1 strict, 0.25 relaxed).
        """
        if tolerance not in TOLERANCES:
            raise InvalidArgument(
                f"tolerance must be one of {', '.join(TOLERANCES)}, got {tolerance!r}", field="tolerance"
            )
        profile = ds if isinstance(ds, Mapping) else getattr(ds, "profile", None)
        source = getattr(ds, "ref", None)
        if not profile or "columns" not in profile:
            raise InvalidArgument(
                f"{source or 'ds'} has no table profile; derive suites from tabular versions",
                field="ds",
            )
        from conveyor.data.profile import schema_from_profile

        t = TOLERANCES[tolerance]
        suite = cls(name or f"{source or 'profile'} ({tolerance})", source=source)
        rows = int(profile["num_rows"])
        schema = schema_from_profile(dict(profile))
        suite.columns({col: spec["type"] for col, spec in schema.items()})
        low, high = t["rows"]
        suite.row_count(min=max(1, int(rows * low)), max=None if high is None else int(rows * high) + 1)
        for col, spec in schema.items():
            stats = profile["columns"][col]
            null_share = stats["nulls"] / rows if rows else 0.0
            if not spec["nullable"] and tolerance == "strict":
                suite.not_null(col)
            else:
                suite.null_rate(col, round(null_share, 6), t["null"])
            # A unique int or string column is a key: keep it unique, skip its "distribution".
            is_key = spec["unique"] and spec["type"] in ("int", "string")
            if is_key and tolerance == "strict":
                suite.unique(col)
            if spec["type"] in ("int", "float") and spec.get("min") is not None:
                margin = (spec["max"] - spec["min"]) * t["widen"]
                suite.between(col, spec["min"] - margin, spec["max"] + margin)
            if "categories" in spec:
                suite.new_categories(col, spec["categories"], t["categories"])
            has_shape = "histogram" in stats or ("top" in stats and "categories" in spec)
            if has_shape and not is_key:
                reference = {k: stats[k] for k in ("histogram", "top", "count") if k in stats}
                suite.no_drift(col, reference, t["psi"])
        return suite

    # -- as data ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The suite as plain data; refused when it holds custom Python checks."""
        if self._functions:
            raise InvalidArgument(
                f"suite {self.name!r} holds custom Python checks "
                f"({', '.join(self._functions)}), which cannot be saved as data",
                field="custom",
            )
        data: dict[str, Any] = msgspec.to_builtins(
            _SuiteData(format=FORMAT, name=self.name, source=self.source, checks=self.checks)
        )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Suite:
        try:
            parsed = msgspec.convert(dict(data), type=_SuiteData)
        except msgspec.ValidationError as exc:
            raise InvalidArgument(f"not a validation suite: {exc}", field="suite") from None
        if parsed.format != FORMAT:
            raise InvalidArgument(
                f"suite format {parsed.format!r} is not {FORMAT!r}", field="format"
            )
        return cls(parsed.name, parsed.checks, source=parsed.source)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Suite:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"suite JSON does not parse: {exc}", field="suite") from None

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, text: str) -> Suite:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"suite YAML does not parse: {exc}", field="suite") from None
        if not isinstance(data, dict):
            raise InvalidArgument("a suite file must hold a mapping", field="suite")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the suite as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
        path = Path(path)
        text = self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json()
        path.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Suite:
        path = Path(path)
        text = path.read_text()
        return cls.from_yaml(text) if path.suffix in (".yaml", ".yml") else cls.from_json(text)
