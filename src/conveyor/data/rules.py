"""Running a suite's checks over a table, vectorised with Polars and NumPy.

Each check returns one :class:`Result`: passed or not, what was observed and
what was expected, both as short JSON-able values. No check loops over rows in
Python; a custom check gets the whole Polars DataFrame.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import msgspec

from conveyor.data.profile import bin_counts, type_family
from conveyor.data.suite import Check, Suite

EPSILON = 1e-4  # keeps PSI finite when a bin is empty on one side


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one check."""

    check: str
    column: str | None
    ok: bool
    observed: Any = None
    expected: Any = None
    message: str = ""


def psi(expected: Any, actual: Any) -> float:
    """Population stability index between two count vectors over the same bins."""
    import numpy as np

    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    e = np.clip(e / e.sum(), EPSILON, None)
    a = np.clip(a / a.sum(), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


class _Runner:
    def __init__(self, df: Any, suite: Suite) -> None:
        self.df = df
        self.suite = suite
        self.families = {name: type_family(dtype) for name, dtype in df.schema.items()}

    def run(self) -> list[Result]:
        results: list[Result] = []
        for check in self.suite.checks:
            if check.column is not None and check.column not in self.families:
                results.append(
                    Result(check=check.kind, column=check.column, ok=False, observed="missing",
                           expected="column present", message=f"column {check.column!r} is missing")
                )
                continue
            method = getattr(self, f"_{check.kind}")
            try:
                results.extend(method(check))
            except Exception as exc:  # e.g. a set of ints against a text column: fail closed
                results.append(
                    Result(check=check.kind, column=check.column or check.name, ok=False,
                           observed=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                           expected="a check that can run on this column",
                           message=f"the {check.kind} check could not run on this data")
                )
        return results

    def _col(self, name: str) -> Any:
        return self.df.get_column(name)

    def _columns(self, check: Check) -> list[Result]:
        out = []
        for col, want in check.params["types"].items():
            got = self.families.get(col)
            if got is None:
                out.append(Result(check="columns", column=col, ok=False, observed="missing",
                                  expected="column present", message=f"column {col!r} is missing"))
            elif want is not None and got != want and not (want == "float" and got == "int"):
                out.append(Result(check="type", column=col, ok=False, observed=got, expected=want,
                                  message=f"column {col!r} is {got}, expected {want}"))
            else:
                out.append(Result(check="type", column=col, ok=True, observed=got, expected=want))
        return out

    def _not_null(self, check: Check) -> list[Result]:
        col = self._col(check.column or "")
        share = _share(col.null_count(), len(col))
        limit = check.params.get("max_share", 0.0)
        return [Result(check="not_null", column=check.column, ok=share <= limit,
                       observed={"nulls": col.null_count(), "share": _fmt(share)},
                       expected={"max_share": limit},
                       message=f"{col.null_count()} null values ({share:.2%})")]

    def _unique(self, check: Check) -> list[Result]:
        col = self._col(check.column or "").drop_nulls()
        duplicates = len(col) - col.n_unique()
        return [Result(check="unique", column=check.column, ok=duplicates == 0,
                       observed={"duplicates": duplicates}, expected={"duplicates": 0},
                       message=f"{duplicates} duplicate values")]

    def _range(self, check: Check) -> list[Result]:
        import polars as pl

        name = check.column or ""
        col = self._col(name).drop_nulls()
        low, high = check.params.get("min"), check.params.get("max")
        if self.families[name] in ("date", "datetime") or isinstance(low, str) or isinstance(high, str):
            col = col.cast(pl.Utf8)  # ISO text orders like the times it spells
        elif self.families[name] not in ("int", "float"):
            return [Result(check="range", column=name, ok=False, observed=self.families[name],
                           expected="a number or time column", message=f"column {name!r} is not ordered")]
        masks = [m for m in ((col < low) if low is not None else None,
                             (col > high) if high is not None else None) if m is not None]
        bad = int((masks[0] | masks[1]).sum() if len(masks) == 2 else masks[0].sum()) if len(col) else 0
        observed = {"min": _fmt(col.min()), "max": _fmt(col.max()), "outside": bad}
        return [Result(check="range", column=name, ok=bad == 0, observed=observed,
                       expected={"min": _fmt(low), "max": _fmt(high)},
                       message=f"{bad} values outside [{_fmt(low)}, {_fmt(high)}]")]

    def _allowed(self, check: Check) -> list[Result]:
        col = self._col(check.column or "").drop_nulls()
        values = check.params["values"]
        bad = col.filter(~col.is_in(values)) if len(col) else col
        sample = sorted({str(v) for v in bad.unique().head(5).to_list()})
        return [Result(check="allowed", column=check.column, ok=len(bad) == 0,
                       observed={"outside": len(bad), "examples": sample},
                       expected={"values": values[:20]},
                       message=f"{len(bad)} values outside the allowed set, e.g. {sample}")]

    def _regex(self, check: Check) -> list[Result]:
        import polars as pl

        col = self._col(check.column or "").drop_nulls().cast(pl.Utf8)
        pattern = check.params["pattern"]
        bad = col.filter(~col.str.contains(f"^(?:{pattern})$")) if len(col) else col
        sample = sorted({str(v) for v in bad.unique().head(5).to_list()})
        return [Result(check="regex", column=check.column, ok=len(bad) == 0,
                       observed={"mismatches": len(bad), "examples": sample},
                       expected={"pattern": pattern},
                       message=f"{len(bad)} values do not match {pattern!r}, e.g. {sample}")]

    def _row_count(self, check: Check) -> list[Result]:
        rows = self.df.height
        low, high = check.params.get("min"), check.params.get("max")
        ok = (low is None or rows >= low) and (high is None or rows <= high)
        return [Result(check="row_count", column=None, ok=ok, observed=rows,
                       expected={"min": low, "max": high}, message=f"{rows} rows")]

    def _fresh(self, check: Check) -> list[Result]:
        import polars as pl

        name = check.column or ""
        family = self.families[name]
        if family not in ("date", "datetime"):
            return [Result(check="fresh", column=name, ok=False, observed=family,
                           expected="a date or datetime column",
                           message=f"column {name!r} holds no timestamps")]
        newest = self._col(name).cast(pl.Datetime("us")).max()
        limit = float(check.params["max_age_seconds"])
        if newest is None:
            return [Result(check="fresh", column=name, ok=False, observed=None,
                           expected={"max_age_seconds": limit}, message="no timestamps at all")]
        assert isinstance(newest, dt.datetime)
        now = dt.datetime.now(dt.UTC)
        newest_utc = newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)
        age = (now - newest_utc).total_seconds()
        return [Result(check="fresh", column=name, ok=age <= limit,
                       observed={"newest": newest_utc.isoformat(), "age_seconds": round(age, 1)},
                       expected={"max_age_seconds": limit},
                       message=f"newest value is {age / 3600:.1f} h old")]

    def _drift(self, check: Check) -> list[Result]:
        import numpy as np
        import polars as pl

        name = check.column or ""
        ref = check.params["reference"]
        limit = check.params.get("max_psi", 0.2)
        col = self._col(name).drop_nulls()
        if "histogram" in ref:
            if self.families[name] not in ("int", "float"):
                return [Result(check="drift", column=name, ok=False, observed=self.families[name],
                               expected="a number column", message=f"column {name!r} is not numeric")]
            edges = np.asarray(ref["histogram"]["edges"], dtype="float64")
            values = col.cast(pl.Float64).to_numpy()
            counts = bin_counts(values[np.isfinite(values)], edges)
            score = psi(ref["histogram"]["counts"], counts)
        else:
            top = ref["top"]
            counts_now = dict(col.cast(pl.Utf8).value_counts().iter_rows())
            keys = list(top)
            expected = [top[k] for k in keys] + [max(0, ref.get("count", 0) - sum(top.values()))]
            actual = [counts_now.get(k, 0) for k in keys] + [len(col) - sum(counts_now.get(k, 0) for k in keys)]
            score = psi(expected, actual)
        return [Result(check="drift", column=name, ok=score <= limit, observed={"psi": _fmt(score)},
                       expected={"max_psi": limit},
                       message=f"distribution shift PSI {score:.3f} (limit {limit})")]

    def _new_categories(self, check: Check) -> list[Result]:
        import polars as pl

        col = self._col(check.column or "").drop_nulls().cast(pl.Utf8)
        known = [str(k) for k in check.params["known"]]
        new = col.filter(~col.is_in(known)) if len(col) else col
        share = _share(len(new), len(col))
        limit = check.params.get("max_share", 0.0)
        sample = sorted(set(new.unique().head(5).to_list()))
        return [Result(check="new_categories", column=check.column, ok=share <= limit,
                       observed={"share": _fmt(share), "examples": sample},
                       expected={"max_share": limit},
                       message=f"{share:.2%} of values are unseen categories, e.g. {sample}")]

    def _null_rate(self, check: Check) -> list[Result]:
        col = self._col(check.column or "")
        rate = _share(col.null_count(), len(col))
        ref = check.params.get("reference") or 0.0
        limit = check.params.get("max_increase", 0.05)
        return [Result(check="null_rate", column=check.column, ok=rate - ref <= limit,
                       observed={"rate": _fmt(rate)}, expected={"reference": ref, "max_increase": limit},
                       message=f"null rate {rate:.2%} against {ref:.2%} in the reference")]

    def _custom(self, check: Check) -> list[Result]:
        name = check.name or "custom"
        try:
            outcome = self.suite.function(name)(self.df)
        except Exception as exc:  # the user's function failed: that is the check's verdict
            return [Result(check="custom", column=name, ok=False, observed=f"{type(exc).__name__}: {exc}",
                           expected="no error", message=f"custom check {name!r} raised {type(exc).__name__}")]
        observed = None
        if isinstance(outcome, tuple):
            outcome, observed = outcome
        return [Result(check="custom", column=name, ok=bool(outcome), observed=_fmt(observed),
                       expected=True, message=f"custom check {name!r}")]


def run_checks(df: Any, suite: Suite) -> list[Result]:
    """Every check of ``suite`` over the Polars DataFrame ``df``, in suite order."""
    return _Runner(df, suite).run()
