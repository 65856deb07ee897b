"""Parse run-search filters and ORDER BY clauses into a small immutable AST.

The language follows MLflow's search syntax and adds OR, NOT and parentheses::

    metrics.rmse < 50 and params.lr = '0.05' and tags.team = 'forecast'
    (tags.team = 'forecast' OR tags.team LIKE 'ml-%') AND NOT attributes.status = 'FAILED'
    params.optimizer IN ('adam', 'sgd') AND metrics.`val loss` IS NOT NULL

A tokenizer feeds a recursive-descent parser; nothing is ever evaluated. Values
are checked against the field's type here, so the SQL layer only has to map the
AST onto bound parameters. :func:`to_text` renders an AST back to canonical text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from conveyor.core.errors import FilterSyntaxError, InvalidArgument


@dataclass(frozen=True, slots=True)
class Comparison:
    """One condition, e.g. ``metrics.rmse < 50``; ``position`` is left out of equality."""

    entity: str
    key: str
    op: str
    value: float | int | str | tuple[str | float, ...] | None
    position: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of ``items`` holds."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``item`` does not hold."""

    item: Expr


Expr: TypeAlias = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderBy:
    """One ORDER BY clause, e.g. ``metrics.rmse DESC``."""

    entity: str
    key: str
    descending: bool


ATTRIBUTE_TYPES: dict[str, type] = {
    **dict.fromkeys(("id", "name", "status", "user", "parent_id", "project"), str),
    **dict.fromkeys(("start_time", "end_time", "heartbeat_at"), int),
}

_ATTRIBUTE_ALIASES = {"run_id": "id", "run_name": "name"}
_ENTITY_NAMES = ("metrics metric", "params param", "tags tag", "attributes attribute attr run")
_ENTITIES = {alias: names.split()[0] for names in _ENTITY_NAMES for alias in names.split()}
_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"})
_NULL_OPS = ("IS NULL", "IS NOT NULL")
_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", *_NULL_OPS)
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN", *_NULL_OPS)
_NUMBER_USES = "=, !=, <, <=, >, >= or IS [NOT] NULL"
_STRING_USES = "=, !=, LIKE, ILIKE, IN or IS [NOT] NULL (log a metric to compare numbers)"
_OPS_HINT = "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS NULL"
_FIELDS_HINT = "expected metrics.<key>, params.<key>, tags.<key> or attributes.<key>"
_MAX_LENGTH = 10_000
_MAX_DEPTH = 100
_MAX_ORDER_BY = 10

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_END = re.compile(r"[A-Za-z0-9_.]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_./:-]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_./:-]+")
_OPS = {"<=": "<=", ">=": ">=", "==": "=", "!=": "!=", "<>": "!=", "=": "=", "<": "<", ">": ">"}
_QUOTES = {"'": "string", '"': "dq", "`": "bt"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word number string dq bt op ( ) , . eof
    text: str  # as written
    value: str  # unquoted text or normalised operator
    start: int
    end: int


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted token; the quote escapes as doubled or backslashed, ``\\\\`` as ``\\``."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif char == quote and text.startswith(quote * 2, i):
            out.append(quote)
            i += 2
        elif char == quote:
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    message = f"unterminated string; close it with {quote}"
    raise FilterSyntaxError(message, position=start, text=text)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char, start = text[i], i
        if char.isspace():
            i += 1
            continue
        if char in _QUOTES:
            value, i = _read_quoted(text, i)
            tokens.append(_Token(_QUOTES[char], text[start:i], value, start, i))
        elif char in "(),":
            i += 1
            tokens.append(_Token(char, char, char, start, i))
        elif match := _NUMBER.match(text, i):
            i = match.end()
            if _NUMBER_END.match(text, i):
                while _NUMBER_END.match(text, i):
                    i += 1
                message = f"invalid number {text[start:i]!r}; write e.g. 50, -0.5 or 1e-3"
                raise FilterSyntaxError(message, position=start, text=text)
            tokens.append(_Token("number", match.group(), match.group(), start, i))
        elif match := _WORD.match(text, i):
            i = match.end()
            tokens.append(_Token("word", match.group(), match.group(), start, i))
        elif op := next((op for op in _OPS if text.startswith(op, i)), None):
            i += len(op)
            tokens.append(_Token("op", op, _OPS[op], start, i))
        elif char == ".":
            i += 1
            tokens.append(_Token(".", ".", ".", start, i))
        else:
            message = f"unexpected character {char!r}; quote values like 'this'"
            raise FilterSyntaxError(message, position=start, text=text)
    tokens.append(_Token("eof", "", "", len(text), len(text)))
    return tokens


def _describe(token: _Token) -> str:
    if token.kind == "eof":
        return "the end of the text"
    return token.text if token.kind in ("string", "dq", "bt") else f"'{token.text}'"


def _field_text(entity: str, key: str) -> str:
    if _BARE_KEY.fullmatch(key):
        return f"{entity}.{key}"
    return f"{entity}.`{key.replace(chr(92), chr(92) * 2).replace('`', '``')}`"


def _is_numeric(entity: str, key: str) -> bool:
    return entity == "metrics" or (entity == "attributes" and ATTRIBUTE_TYPES[key] is int)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def error(self, message: str, position: int) -> FilterSyntaxError:
        return FilterSyntaxError(message, position=position, text=self.text)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def keyword(self, token: _Token) -> str | None:
        word = token.value.upper()
        return word if token.kind == "word" and word in _KEYWORDS else None

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            message = f"nested more than {_MAX_DEPTH} levels deep; simplify the filter"
            raise self.error(message, token.start)

    def filter(self) -> Expr:
        expr = self.or_expr()
        token = self.peek()
        if token.kind == ")":
            raise self.error("unmatched ')'; remove it or add a '(' before it", token.start)
        if token.kind != "eof":
            message = f"unexpected {_describe(token)}; join conditions with AND or OR"
            raise self.error(message, token.start)
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.keyword(self.peek()) == "OR":
            self.take()
            items.append(self.and_expr())
        return _flatten(Or, items)

    def and_expr(self) -> Expr:
        items = [self.not_expr()]
        while self.keyword(self.peek()) == "AND":
            self.take()
            items.append(self.not_expr())
        return _flatten(And, items)

    def not_expr(self) -> Expr:
        token = self.peek()
        if self.keyword(token) != "NOT":
            return self.primary()
        self.take()
        self.enter(token)
        item = self.not_expr()
        self.depth -= 1
        return Not(item)

    def primary(self) -> Expr:
        opening = self.peek()
        if opening.kind != "(":
            return self.comparison()
        self.take()
        self.enter(opening)
        expr = self.or_expr()
        closing = self.take()
        if closing.kind == "eof":
            raise self.error("unclosed '('; add a matching ')'", opening.start)
        if closing.kind != ")":
            raise self.error(f"expected ')', AND or OR, found {_describe(closing)}", closing.start)
        self.depth -= 1
        return expr

    def identifier(self) -> tuple[str, str, int]:
        """Read ``entity.key`` and return the canonical entity and key and its start."""
        first = self.take()
        if first.kind == "word" and not self.keyword(first):
            head, dot, key = first.value.partition(".")
            end = first.end
            if dot and not key:
                key, end = self.quoted_key(first, f"{head}.")
            elif not dot:
                raise self.error(f"unknown field {first.text!r}; {_FIELDS_HINT}", first.start)
        elif first.kind in ("bt", "dq"):
            head, dot_token = first.value, self.take()
            if dot_token.kind != "." or dot_token.start != first.end:
                message = f"expected '.' and a key right after {first.text}"
                raise self.error(f"{message}, e.g. {first.text}.`my key`", dot_token.start)
            if (word := self.peek()).kind == "word" and word.start == dot_token.end:
                key, end = self.take().value, word.end
            else:
                key, end = self.quoted_key(dot_token, f"{first.text}.")
        else:
            message = f"expected a field such as metrics.rmse, found {_describe(first)}"
            raise self.error(f"{message}; conditions start with the field", first.start)
        entity = _ENTITIES.get(head.lower())
        if entity is None:
            written = self.text[first.start : end]
            raise self.error(f"unknown field {written!r}; {_FIELDS_HINT}", first.start)
        if entity == "attributes":
            key = _ATTRIBUTE_ALIASES.get(key.lower(), key.lower())
            if key not in ATTRIBUTE_TYPES:
                known = ", ".join(sorted(ATTRIBUTE_TYPES))
                message = f"unknown attribute {self.text[first.start : end]!r}; known: {known}"
                raise self.error(f"{message} (or the aliases run_id, run_name)", first.start)
        return entity, key, first.start

    def quoted_key(self, before: _Token, prefix: str) -> tuple[str, int]:
        token = self.peek()
        if token.kind not in ("bt", "dq") or token.start != before.end or not token.value:
            message = f"missing key after {prefix!r}; write {prefix}<key> or {prefix}`my key`"
            raise self.error(message, before.end)
        self.take()
        return token.value, token.end

    def comparison(self) -> Comparison:
        entity, key, start = self.identifier()
        label = _field_text(entity, key)
        op_token = self.take()
        word = self.keyword(op_token)
        if op_token.kind == "op":
            op = op_token.value
        elif word in ("LIKE", "ILIKE", "IN"):
            op = word
        elif word in ("NOT", "IS"):
            second = self.take()
            negated = word == "NOT" or self.keyword(second) == "NOT"
            if word == "IS" and negated:
                second = self.take()
            follow = self.keyword(second)
            if word == "NOT" and follow not in ("LIKE", "ILIKE", "IN"):
                raise self.error("expected LIKE, ILIKE or IN after NOT", second.start)
            if word == "IS" and follow != "NULL":
                raise self.error("expected NULL or NOT NULL after IS", second.start)
            op = f"NOT {follow}" if word == "NOT" else f"IS {'NOT ' * negated}NULL"
        else:
            message = f"expected an operator after {label}, found {_describe(op_token)}"
            raise self.error(f"{message}; use one of {_OPS_HINT}", op_token.start)
        numeric = _is_numeric(entity, key)
        if op not in (_NUMBER_OPS if numeric else _STRING_OPS):
            uses = _NUMBER_USES if numeric else _STRING_USES
            raise self.error(f"{_kind_text(entity, key)}; use {uses}", op_token.start)
        value: float | int | str | tuple[str | float, ...] | None = None
        if op.endswith("IN"):
            value = self.in_list(entity, key, label, op)
        elif not op.startswith("IS"):
            value = self.value(entity, key, op, f"{label} {op} {{}}")
        return Comparison(entity, key, op, value, start)

    def in_list(self, entity: str, key: str, label: str, op: str) -> tuple[str | float, ...]:
        example = f"{label} {op} ({{}})"
        opening = self.take()
        if opening.kind != "(":
            raise self.error(f"expected '(' after {op}: {label} {op} ('a', 'b')", opening.start)
        if self.peek().kind == ")":
            message = f"empty IN list; give at least one value: {label} {op} ('a', 'b')"
            raise self.error(message, self.peek().start)
        values = [self.value(entity, key, op, example)]
        while (token := self.take()).kind != ")":
            if token.kind == "eof":
                raise self.error("unclosed IN list; add a ')'", opening.start)
            if token.kind != ",":
                message = f"expected ',' or ')' in the IN list, found {_describe(token)}"
                raise self.error(message, token.start)
            values.append(self.value(entity, key, op, example))
        return tuple(values)

    def value(self, entity: str, key: str, op: str, example: str) -> float | int | str:
        """Read one value checked against the field's type; ``example`` shows the fix."""
        token = self.take()
        numeric = _is_numeric(entity, key)
        kind = _kind_text(entity, key)
        if token.kind == "eof":
            message = f"missing value: {example.format('...')}; add a number or a 'string'"
            raise self.error(message, token.start)
        if self.keyword(token) == "NULL":
            raise self.error("use IS NULL or IS NOT NULL to test for a missing value", token.start)
        if token.kind in ("number", "word") and not numeric:
            quoted = example.format(f"'{token.text}'")
            raise self.error(f"{kind}; quote the value: {quoted}", token.start)
        if token.kind in ("string", "dq") and numeric:
            bare = token.value.strip()
            fix = f"remove the quotes: {example.format(bare)}" if _NUMBER.fullmatch(bare) else ""
            raise self.error(f"{kind}; {fix or 'give a number such as 50'}", token.start)
        if token.kind == "word":
            message = f"{token.text!r} is not a number; {kind}, e.g. {example.format(50)}"
            raise self.error(message, token.start)
        if token.kind == "number":
            return self.number(token, entity, key)
        if token.kind not in ("string", "dq"):
            message = f"expected a value: {example.format('...')}, found {_describe(token)}"
            raise self.error(message, token.start)
        if entity == "attributes" and key == "status" and not op.endswith("LIKE"):
            if token.value.upper() not in _STATUSES:
                message = f"unknown status {token.value!r}; use one of {', '.join(_STATUSES)}"
                raise self.error(message, token.start)
            return token.value.upper()
        return token.value

    def number(self, token: _Token, entity: str, key: str) -> float | int:
        if entity == "attributes":
            try:  # exact for large integers, which a float would round
                return int(token.text)
            except ValueError:
                pass
        number = float(token.text)
        if not math.isfinite(number):
            raise self.error(f"number {token.text} is out of range", token.start)
        if entity != "attributes":
            return number
        if not number.is_integer():
            message = f"attributes.{key} is whole milliseconds since the epoch; drop the fraction"
            raise self.error(message, token.start)
        return int(number)

    def order_by(self) -> list[OrderBy]:
        clauses: list[OrderBy] = []
        if self.peek().kind == "eof":
            return clauses
        while True:
            entity, key, _ = self.identifier()
            direction = self.peek().value.upper() if self.peek().kind == "word" else ""
            if direction in ("ASC", "DESC"):
                self.take()
            clauses.append(OrderBy(entity, key, direction == "DESC"))
            token = self.take()
            if token.kind == "eof":
                return clauses
            if token.kind != ",":
                message = f"expected ASC or DESC, then ',' or the end, found {_describe(token)}"
                raise self.error(message, token.start)
            if self.peek().kind in (",", "eof"):
                raise self.error("empty ORDER BY clause; remove the extra ','", token.start)


def _flatten(kind: type[And] | type[Or], items: list[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


def _kind_text(entity: str, key: str) -> str:
    if entity == "metrics":
        return "metrics compare with numbers"
    if entity != "attributes":
        return f"{entity} are strings"
    if ATTRIBUTE_TYPES[key] is int:
        return f"attributes.{key} is a number (ms since the epoch)"
    return f"attributes.{key} is a string"


def _check_length(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be a string, got {type(text).__name__}", field=what)
    if len(text) > _MAX_LENGTH:
        message = f"{what} is {len(text)} characters long; shorten it to {_MAX_LENGTH} or fewer"
        raise InvalidArgument(message, field=what)
    return text


def parse_filter(text: str | None) -> Expr | None:
    """Parse a search filter; ``None`` or blank text means "no filter".

    Raises:
        FilterSyntaxError: the text is not a valid filter; the message shows where.
        InvalidArgument: the text is longer than 10,000 characters.
    """
    if text is None:
        return None
    if not _check_length(text, "filter").strip():
        return None
    return _Parser(text).filter()


def parse_order_by(clauses: str | Sequence[str] | None) -> tuple[OrderBy, ...]:
    """Parse ``"metrics.rmse DESC, attributes.start_time"`` or a list of such clauses.

    Raises:
        FilterSyntaxError: a clause is not valid (``field`` is ``"order_by"``).
        InvalidArgument: more than 10 clauses, or a clause is not a string.
    """
    if clauses is None:
        return ()
    result: list[OrderBy] = []
    for text in [clauses] if isinstance(clauses, str) else clauses:
        try:
            result.extend(_Parser(_check_length(text, "order_by")).order_by())
        except FilterSyntaxError as exc:
            exc.field = "order_by"
            raise
    if len(result) > _MAX_ORDER_BY:
        message = f"{len(result)} order_by clauses given; use at most {_MAX_ORDER_BY}"
        raise InvalidArgument(message, field="order_by")
    return tuple(result)


def _value_text(value: float | int | str) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return repr(value)


def to_text(expr: Expr) -> str:
    """Render ``expr`` as canonical filter text; ``parse_filter`` gives ``expr`` back."""
    if isinstance(expr, Comparison):
        head = f"{_field_text(expr.entity, expr.key)} {expr.op}"
        if isinstance(expr.value, tuple):
            return f"{head} ({', '.join(_value_text(v) for v in expr.value)})"
        return head if expr.value is None else f"{head} {_value_text(expr.value)}"
    if isinstance(expr, Not):
        inner = to_text(expr.item)
        return f"NOT {inner}" if isinstance(expr.item, Comparison | Not) else f"NOT ({inner})"
    if isinstance(expr, And):
        return " AND ".join(
            f"({to_text(i)})" if isinstance(i, Or) else to_text(i) for i in expr.items
        )
    return " OR ".join(to_text(item) for item in expr.items)
