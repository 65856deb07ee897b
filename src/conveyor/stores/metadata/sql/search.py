"""Run search: the filter AST (``core.filters``) translated into SQLAlchemy Core.

Values only ever travel as bound parameters; keys select columns or become
bound parameters of ``EXISTS`` sub-queries. A comparison on ``metrics.x``
matches runs whose latest value of ``x`` satisfies it (NaN never matches); on
``params``/``tags`` it matches runs that have the key with a matching value;
``IS NULL`` means "has no such key".
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select

from conveyor.core import filters as f
from conveyor.core.errors import InvalidArgument
from conveyor.stores.metadata.sql.schema import latest_metrics, params, projects, runs, tags

MAX_RESULTS = 50_000

RUN_COLUMNS = (
    runs.c.pk,
    runs.c.id,
    projects.c.name.label("project"),
    runs.c.name,
    runs.c.status,
    runs.c.start_time,
    runs.c.end_time,
    runs.c.parent_id,
    runs.c.user,
    runs.c.heartbeat_at,
    runs.c.env,
)
RUNS_WITH_PROJECT = runs.join(projects, runs.c.project_id == projects.c.id)

_ATTRIBUTE_COLUMNS: dict[str, Any] = {
    "id": runs.c.id,
    "name": runs.c.name,
    "status": runs.c.status,
    "user": runs.c.user,
    "parent_id": runs.c.parent_id,
    "project": projects.c.name,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
    "heartbeat_at": runs.c.heartbeat_at,
}
_KEYED = {"metrics": latest_metrics, "params": params, "tags": tags}


@dataclass(frozen=True)
class SearchPlan:
    query: Select[Any]
    limit: int
    offset: int
    fingerprint: str

    def next_token(self) -> str:
        raw = json.dumps({"o": self.offset + self.limit, "q": self.fingerprint}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def plan(
    projects_: Sequence[str] | None,
    filter_text: str | None,
    order_by: Sequence[str] | str | None,
    max_results: int,
    page_token: str | None,
) -> SearchPlan:
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
        raise InvalidArgument(
            f"max_results must be an integer from 1 to {MAX_RESULTS}, got {max_results!r}",
            field="max_results",
        )
    expr = f.parse_filter(filter_text)
    orders = f.parse_order_by(order_by)
    names = sorted(set(projects_)) if projects_ else []
    fingerprint = hashlib.blake2b(
        json.dumps([names, filter_text or "", [repr(o) for o in orders]]).encode(), digest_size=8
    ).hexdigest()
    offset = _offset(page_token, fingerprint)

    source: Any = RUNS_WITH_PROJECT
    order_columns = []
    for index, order in enumerate(orders):
        column, source = _order_column(order, index, source)
        order_columns.append(
            (column.desc() if order.descending else column.asc()).nulls_last()
        )
    order_columns += [runs.c.start_time.desc(), runs.c.pk.desc()]

    query = select(*RUN_COLUMNS).select_from(source)
    if names:
        query = query.where(projects.c.name.in_(names))
    if expr is not None:
        query = query.where(_condition(expr))
    query = query.order_by(*order_columns).limit(max_results + 1).offset(offset)
    return SearchPlan(query, max_results, offset, fingerprint)


def _offset(token: str | None, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset, owner = int(raw["o"]), raw["q"]
    except Exception:
        raise InvalidArgument("page_token is not a token returned by search_runs", field="page_token") from None
    if owner != fingerprint or offset < 0:
        raise InvalidArgument(
            "page_token belongs to a different query; pass the same projects, filter and order_by",
            field="page_token",
        )
    return offset


def _order_column(order: f.OrderBy, index: int, source: Any) -> tuple[Any, Any]:
    if order.entity == "attributes":
        return _ATTRIBUTE_COLUMNS[order.key], source
    table = _KEYED[order.entity].alias(f"order_{index}")
    joined = source.outerjoin(table, and_(table.c.run_pk == runs.c.pk, table.c.key == order.key))
    return table.c.value, joined


def _condition(expr: f.Expr) -> ColumnElement[bool]:
    if isinstance(expr, f.And):
        return and_(*(_condition(item) for item in expr.items))
    if isinstance(expr, f.Or):
        return or_(*(_condition(item) for item in expr.items))
    if isinstance(expr, f.Not):
        return not_(_condition(expr.item))
    if expr.entity == "attributes":
        return _compare(_ATTRIBUTE_COLUMNS[expr.key], expr.op, expr.value)
    table = _KEYED[expr.entity]
    has_key = and_(table.c.run_pk == runs.c.pk, table.c.key == expr.key)
    if expr.op == "IS NULL":
        return not_(exists().where(has_key))
    if expr.op == "IS NOT NULL":
        return exists().where(has_key)
    return exists().where(has_key, _compare(table.c.value, expr.op, expr.value))


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "LIKE": lambda column, value: column.like(value),
    "NOT LIKE": lambda column, value: column.not_like(value),
    "ILIKE": lambda column, value: column.ilike(value),
    "NOT ILIKE": lambda column, value: column.not_ilike(value),
    "IN": lambda column, value: column.in_(list(value)),
    "NOT IN": lambda column, value: column.not_in(list(value)),
    "IS NULL": lambda column, _: column.is_(None),
    "IS NOT NULL": lambda column, _: column.is_not(None),
}


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    compare = _OPERATORS.get(op)
    if compare is None:
        raise InvalidArgument(f"unsupported operator {op!r}", field="filter")
    result: ColumnElement[bool] = compare(column, value)
    return result
