"""Gate rules: a small, safe expression language (no ``eval``).

A rule compares two arithmetic expressions over numbers and metric names::

    rmse <= champion.rmse * 0.98
    auc >= champion.auc - 0.002
    r2 > 0.8

A bare name (or ``candidate.NAME``) is the candidate's metric; ``champion.NAME``
is the current alias holder's, scored on the same rows. ``auc`` means ``roc_auc``. Operators: ``+ - * /``,
parentheses, unary minus, and one comparison among ``<= >= < > == !=``.

Rules are parsed when a gate is built, so a typo is refused before anything
runs; :meth:`Rule.check` evaluates one against two metric tables.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import InvalidArgument

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)"
    r"|(?P<op><=|>=|==|!=|[<>+\-*/()]))"
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
    "==": operator.eq, "!=": operator.ne,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}

#: Other names users write for a metric (``auc`` as in the issue's examples).
METRIC_ALIASES = {"auc": "roc_auc", "logloss": "log_loss", "acc": "accuracy", "f1_score": "f1"}

# A parsed expression: ("num", value) | ("var", who, metric) | ("neg", e) | (op, left, right)
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str, field: str) -> None:
        self.text = text
        self.field = field
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                self.fail(f"unexpected character {text[pos:].strip()[0]!r}", pos)
            assert match is not None
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.i = 0

    def fail(self, why: str, pos: int | None = None) -> None:
        at = f" at position {pos}" if pos is not None else ""
        raise InvalidArgument(f"rule {self.text!r}: {why}{at}", field=self.field)

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            self.fail("ends too early")
        assert token is not None
        self.i += 1
        return token

    def expr(self) -> Node:
        node = self.term()
        while (t := self.peek()) is not None and t[1] in ("+", "-"):
            self.take()
            node = (t[1], node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while (t := self.peek()) is not None and t[1] in ("*", "/"):
            self.take()
            node = (t[1], node, self.factor())
        return node

    def factor(self) -> Node:
        kind, value, pos = self.take()
        if kind == "num":
            return ("num", float(value))
        if kind == "name":
            who, _, metric = value.rpartition(".")
            who = who or "candidate"
            if who not in ("candidate", "champion"):
                self.fail(f"{value!r} must be a metric, candidate.METRIC or champion.METRIC", pos)
            return ("var", who, METRIC_ALIASES.get(metric, metric))
        if value == "-":
            return ("neg", self.factor())
        if value == "(":
            node = self.expr()
            if self.take()[1] != ")":
                self.fail("missing ')'", pos)
            return node
        self.fail(f"unexpected {value!r}", pos)
        raise AssertionError  # fail() always raises

    def rule(self) -> tuple[Node, str, Node]:
        left = self.expr()
        kind, op, pos = self.take()
        if op not in _COMPARE:
            self.fail(f"expected a comparison (<=, >=, <, >, ==, !=), got {op!r}", pos)
        right = self.expr()
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()[1]!r} after the rule", self.peek()[2])  # type: ignore[index]
        return left, op, right


def _names(node: Node) -> set[tuple[str, str]]:
    if node[0] == "var":
        return {(node[1], node[2])}
    return set().union(*(_names(n) for n in node[1:] if isinstance(n, tuple)))


def _value(node: Node, tables: Mapping[str, Mapping[str, float]]) -> float:
    kind = node[0]
    if kind == "num":
        return float(node[1])
    if kind == "var":
        return float(tables[node[1]][node[2]])
    if kind == "neg":
        return -_value(node[1], tables)
    left, right = _value(node[1], tables), _value(node[2], tables)
    if kind == "/" and right == 0:
        return math.nan
    return _ARITH[kind](left, right)


@dataclass(frozen=True)
class Rule:
    """One parsed comparison."""

    text: str
    left: Node
    op: str
    right: Node

    @classmethod
    def parse(cls, text: object, field: str = "rules") -> Rule:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(f"a rule must be a non-empty string, got {text!r}", field=field)
        left, op, right = _Parser(text, field).rule()
        return cls(text.strip(), left, op, right)

    @property
    def metrics(self) -> set[tuple[str, str]]:
        """``(who, metric)`` pairs the rule reads."""
        return _names(self.left) | _names(self.right)

    @property
    def needs_champion(self) -> bool:
        return any(who == "champion" for who, _ in self.metrics)

    def check(self, tables: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        """The rule's outcome: value, threshold and whether it passed (NaN never passes)."""
        for who, metric in sorted(self.metrics):
            if metric not in tables.get(who, {}):
                return {"rule": self.text, "kind": "metric", "value": None, "threshold": None, "passed": False,
                        "detail": f"{who} has no metric {metric!r}"}
        value, threshold = _value(self.left, tables), _value(self.right, tables)
        passed = not (math.isnan(value) or math.isnan(threshold)) and _COMPARE[self.op](value, threshold)
        return {"rule": self.text, "kind": "metric", "value": value, "threshold": threshold,
                "op": self.op, "passed": bool(passed), "detail": ""}
