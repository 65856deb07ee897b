"""The run-search filter language: parsing, checking, errors and round-trips."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import FilterSyntaxError, InvalidArgument
from conveyor.core.filters import (
    ATTRIBUTE_TYPES,
    And,
    Comparison,
    Expr,
    Not,
    Or,
    OrderBy,
    parse_filter,
    parse_order_by,
    to_text,
)

A = Comparison("metrics", "a", ">", 1.0)
B = Comparison("metrics", "b", ">", 2.0)
C = Comparison("metrics", "c", ">", 3.0)
TEXT = {"a": "metrics.a > 1", "b": "metrics.b > 2", "c": "metrics.c > 3"}


def parse(template: str) -> Expr | None:
    """Parse ``template`` with {a}, {b}, {c} standing for three metric comparisons."""
    return parse_filter(template.format(**TEXT))


def comparison(text: str) -> Comparison:
    parsed = parse_filter(text)
    assert isinstance(parsed, Comparison)
    return parsed


def conditions(text: str) -> list[Comparison]:
    parsed = parse_filter(text)
    assert isinstance(parsed, And)
    assert all(isinstance(item, Comparison) for item in parsed.items)
    return list(parsed.items)  # type: ignore[arg-type]


def syntax_error(text: str) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    return info.value


# --- what a filter means -------------------------------------------------------------


def test_the_documented_example_parses_to_three_typed_comparisons() -> None:
    text = "metrics.rmse < 50 and params.lr = '0.05' and tags.team = 'forecast'"
    expr = parse_filter(text)
    assert expr == And(
        (
            Comparison("metrics", "rmse", "<", 50.0),
            Comparison("params", "lr", "=", "0.05"),
            Comparison("tags", "team", "=", "forecast"),
        )
    )
    assert [item.position for item in conditions(text)] == [0, 22, 45]
    assert type(conditions(text)[0].value) is float


def test_blank_or_missing_filter_means_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter("") is None
    assert parse_filter("  \n\t ") is None


def test_a_single_comparison_is_returned_bare() -> None:
    assert parse("{a}") == A
    assert parse("(({a}))") == A


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{a} or {b} and {c}", Or((A, And((B, C))))),
        ("{a} and {b} or {c}", Or((And((A, B)), C))),
        ("({a} or {b}) and {c}", And((Or((A, B)), C))),
        ("{a} and ({b} or {c})", And((A, Or((B, C))))),
        ("{a} and {b} and {c}", And((A, B, C))),
        ("({a} and {b}) and {c}", And((A, B, C))),
        ("{a} or ({b} or {c})", Or((A, B, C))),
        ("not {a} and {b}", And((Not(A), B))),
        ("not ({a} and {b})", Not(And((A, B)))),
        ("NOT NOT {a}", Not(Not(A))),
        ("{a} OR NOT {b}", Or((A, Not(B)))),
    ],
)
def test_precedence_parentheses_and_flattening(template: str, expected: Expr) -> None:
    assert parse(template) == expected


def test_keywords_and_entities_are_case_insensitive_and_aliases_normalised() -> None:
    text = "METRIC.rmse > 1 AnD Param.lr = 'x' aNd TAG.t = 'y' And RUN.status = 'killed'"
    assert [(c.entity, c.key, c.value) for c in conditions(text)] == [
        ("metrics", "rmse", 1.0),
        ("params", "lr", "x"),
        ("tags", "t", "y"),
        ("attributes", "status", "KILLED"),
    ]


def test_bad_status_on_an_alias_entity_is_still_checked() -> None:
    assert syntax_error("RUN.status = 'x'").position == 13


@pytest.mark.parametrize(
    ("text", "entity", "key"),
    [
        ("attributes.run_id = 'r1'", "attributes", "id"),
        ("attribute.run_name = 'r1'", "attributes", "name"),
        ("attr.RUN_NAME = 'r1'", "attributes", "name"),
        ("run.user = 'r1'", "attributes", "user"),
        ("attributes.parent_id = 'r1'", "attributes", "parent_id"),
    ],
)
def test_attribute_aliases_become_canonical_names(text: str, entity: str, key: str) -> None:
    assert parse_filter(text) == Comparison(entity, key, "=", "r1")


@pytest.mark.parametrize(
    ("op_text", "op"),
    [("=", "="), ("==", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<=")]
    + [(">", ">"), (">=", ">=")],
)
def test_numeric_operators_are_normalised(op_text: str, op: str) -> None:
    assert parse_filter(f"metrics.rmse{op_text}0.5") == Comparison("metrics", "rmse", op, 0.5)


@pytest.mark.parametrize(
    ("op_text", "op"),
    [("like", "LIKE"), ("ILIKE", "ILIKE"), ("not like", "NOT LIKE"), ("Not ILike", "NOT ILIKE")],
)
def test_like_operators(op_text: str, op: str) -> None:
    assert parse_filter(f"tags.team {op_text} 'fore%'") == Comparison("tags", "team", op, "fore%")


def test_in_and_not_in_lists() -> None:
    assert parse_filter("params.opt in ('adam', \"sgd\",'lbfgs')") == Comparison(
        "params", "opt", "IN", ("adam", "sgd", "lbfgs")
    )
    assert parse_filter("tags.team NOT IN ('a')") == Comparison("tags", "team", "NOT IN", ("a",))
    assert parse_filter("attributes.status in ('running', 'Failed')") == Comparison(
        "attributes", "status", "IN", ("RUNNING", "FAILED")
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.rmse IS NULL", Comparison("metrics", "rmse", "IS NULL", None)),
        ("tags.team is not null", Comparison("tags", "team", "IS NOT NULL", None)),
        ("attributes.end_time IS NULL", Comparison("attributes", "end_time", "IS NULL", None)),
    ],
)
def test_is_null(text: str, expected: Comparison) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "entity", "key"),
    [
        ("metrics.`val loss` > 1", "metrics", "val loss"),
        ("`metrics`.`val loss` > 1", "metrics", "val loss"),
        ('metrics."val loss" > 1', "metrics", "val loss"),
        ("`metrics`.Val_Loss > 1", "metrics", "Val_Loss"),
        ("METRICS.Val_Loss > 1", "metrics", "Val_Loss"),
        ("tags.`odd``tick` = 'x'", "tags", "odd`tick"),
        ("tags.mlflow.runName = 'x'", "tags", "mlflow.runName"),
        ("tags.team-a/b:c.d = 'x'", "tags", "team-a/b:c.d"),
        ("params.AND = 'x'", "params", "AND"),
    ],
)
def test_keys_bare_dotted_and_quoted(text: str, entity: str, key: str) -> None:
    parsed = comparison(text)
    assert (parsed.entity, parsed.key) == (entity, key)


@pytest.mark.parametrize(
    ("literal", "value"),
    [("50", 50.0), ("-5", -5.0), ("+2.5", 2.5), ("1e-3", 0.001), ("1.5E+2", 150.0)]
    + [(".5", 0.5), ("-0.25e1", -2.5), ("7.", 7.0)],
)
def test_metric_numbers(literal: str, value: float) -> None:
    parsed = comparison(f"metrics.m > {literal}")
    assert parsed == Comparison("metrics", "m", ">", value)
    assert type(parsed.value) is float


def test_time_attributes_are_exact_integers() -> None:
    parsed = comparison("attributes.start_time >= 1700000000123")
    assert parsed == Comparison("attributes", "start_time", ">=", 1700000000123)
    assert type(parsed.value) is int
    assert comparison("attributes.end_time < 1.7e12").value == 1_700_000_000_000
    big = 2**62 + 1  # a float would round this
    assert comparison(f"attributes.heartbeat_at = {big}").value == big


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'it''s'", "it's"),
        (r"'it\'s'", "it's"),
        (r"'back\\slash'", "back\\slash"),
        (r"'50\%'", "50\\%"),  # a backslash before anything else is kept, for LIKE escapes
        ("''", ""),
        ("'a AND b OR (c)'", "a AND b OR (c)"),
        ('"say ""hi"""', 'say "hi"'),
        ('\'__import__("os").system("x")\'', '__import__("os").system("x")'),
    ],
)
def test_strings_and_quote_escaping(literal: str, value: str) -> None:
    assert parse_filter(f"params.p = {literal}") == Comparison("params", "p", "=", value)


# --- errors: where and what to do ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "advice"),
    [
        ("metric_s.rmse < 1", 0, "expected metrics.<key>, params.<key>, tags.<key> or attr"),
        ("rmse < 1", 0, "expected metrics.<key>, params.<key>"),
        ("metrics. < 1", 8, "write metrics.<key> or metrics.`my key`"),
        ("50 < metrics.rmse", 0, "conditions start with the field"),
        ("metrics.rmse LIKE 'a%'", 13, "metrics compare with numbers; use =, !=, <"),
        ("metrics.rmse IN (1, 2)", 13, "metrics compare with numbers"),
        ("metrics.rmse < 'abc'", 15, "metrics compare with numbers; give a number"),
        ("metrics.rmse < '50'", 15, "remove the quotes: metrics.rmse < 50"),
        ("metrics.rmse > inf", 15, "'inf' is not a number"),
        ("metrics.rmse > nan", 15, "metrics compare with numbers, e.g. metrics.rmse > 50"),
        ("metrics.rmse > 1e999", 15, "out of range"),
        ("metrics.rmse < 5abc", 15, "invalid number '5abc'; write e.g. 50"),
        ("params.lr = 0.05", 12, "params are strings; quote the value: params.lr = '0.05'"),
        ("tags.team = forecast", 12, "quote the value: tags.team = 'forecast'"),
        ("params.x IN ('a', 5)", 18, "quote the value: params.x IN ('5')"),
        ("params.lr < '0.1'", 10, "params are strings; use =, !=, LIKE, ILIKE, IN"),
        ("tags.t >= 'a'", 7, "tags are strings; use ="),
        ("params.x = NULL", 11, "use IS NULL or IS NOT NULL"),
        ("attributes.status = 'DONE'", 20, "use one of RUNNING, FINISHED, FAILED, KILLED"),
        ("attributes.colour = 'x'", 0, "known: end_time, heartbeat_at, id, name"),
        ("attributes.start_time = 'yesterday'", 24, "attributes.start_time is a number"),
        ("attributes.start_time > 1.5", 24, "drop the fraction"),
        ("attributes.start_time LIKE '1%'", 22, "use =, !=, <, <=, >, >= or IS [NOT] NULL"),
        ("attributes.name > 'a'", 16, "attributes.name is a string; use =, !="),
        ("attributes.name = 5", 18, "quote the value: attributes.name = '5'"),
        ("metrics.a < 1 metrics.b < 2", 14, "join conditions with AND or OR"),
        ("metrics.a < 1)", 13, "unmatched ')'; remove it"),
        ("(metrics.a < 1", 0, "unclosed '('; add a matching ')'"),
        ("(metrics.a < 1 metrics.b < 2)", 15, "expected ')', AND or OR"),
        ("params.lr = 'abc", 12, "unterminated string; close it with '"),
        (r"params.lr = 'abc\'", 12, "unterminated string"),
        ("tags.`a b = 'x'", 5, "close it with `"),
        ("metrics.rmse <", 14, "missing value: metrics.rmse < ...; add a number"),
        ("metrics.rmse", 12, "expected an operator after metrics.rmse"),
        ("metrics.rmse ~ 1", 13, "unexpected character '~'"),
        ("metrics.a < 1 and", 17, "expected a field such as metrics.rmse"),
        ("metrics.a < 1 and ()", 19, "expected a field"),
        ("params.x IN ()", 13, "empty IN list; give at least one value: params.x IN ('a', 'b')"),
        ("params.x IN ('a'", 12, "unclosed IN list; add a ')'"),
        ("params.x IN 'a'", 12, "expected '(' after IN"),
        ("params.x IN ('a',)", 17, "expected a value: params.x IN (...), found ')'"),
        ("params.x IN ('a' 'b')", 17, "expected ',' or ')' in the IN list"),
        ("params.x IS 5", 12, "expected NULL or NOT NULL after IS"),
        ("params.x NOT = 'a'", 13, "expected LIKE, ILIKE or IN after NOT"),
        ("`metrics` . `x` > 1", 10, "expected '.' and a key right after `metrics`"),
    ],
)
def test_syntax_errors_point_at_the_problem_and_say_what_to_do(
    text: str, position: int, advice: str
) -> None:
    error = syntax_error(text)
    assert error.position == position, error.message
    assert advice in error.message
    assert error.text == text
    assert error.field == "filter"
    assert isinstance(error, ValueError)
    assert error.message.endswith(f"\n  {text}\n  {' ' * position}^")


def test_unclosed_paren_points_at_the_innermost_open_paren() -> None:
    error = syntax_error("metrics.a < 1 and (metrics.b < 2 or (metrics.c < 3)")
    assert error.position == 18
    assert "unclosed '('" in error.message


def test_filters_longer_than_the_limit_are_rejected_before_parsing() -> None:
    at_limit = "params.x = '" + "a" * (10_000 - 13) + "'"
    assert len(at_limit) == 10_000
    assert parse_filter(at_limit) == Comparison("params", "x", "=", "a" * 9987)
    with pytest.raises(InvalidArgument) as info:
        parse_filter(at_limit + " ")
    assert not isinstance(info.value, FilterSyntaxError)
    assert info.value.field == "filter"
    assert "10001 characters" in info.value.message
    assert "10000 or fewer" in info.value.message


def test_a_non_string_filter_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="filter must be a string, got int"):
        parse_filter(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["(" * 101 + "metrics.a > 1" + ")" * 101, "NOT " * 101 + "metrics.a > 1"],
)
def test_deep_nesting_is_a_syntax_error_not_a_crash(text: str) -> None:
    error = syntax_error(text)
    assert "nested more than 100 levels deep" in error.message
    assert error.position == text.index("metrics") - (1 if text[0] == "(" else 4)


def test_nesting_up_to_the_limit_parses() -> None:
    assert parse_filter("(" * 100 + "metrics.a > 1" + ")" * 100) == A
    assert parse_filter("NOT " * 100 + "metrics.a > 1") is not None


# --- ORDER BY ------------------------------------------------------------------------


def test_order_by_single_string_with_commas() -> None:
    assert parse_order_by("metrics.rmse ASC, attributes.start_time desc,params.lr") == (
        OrderBy("metrics", "rmse", False),
        OrderBy("attributes", "start_time", True),
        OrderBy("params", "lr", False),
    )


def test_order_by_list_of_clauses_with_quoted_keys_and_aliases() -> None:
    assert parse_order_by(["`metrics`.`my key` DESC", "run.run_name", "tag.a.b Asc"]) == (
        OrderBy("metrics", "my key", True),
        OrderBy("attributes", "name", False),
        OrderBy("tags", "a.b", False),
    )


def test_order_by_nothing() -> None:
    assert parse_order_by(None) == ()
    assert parse_order_by("") == ()
    assert parse_order_by([]) == ()


@pytest.mark.parametrize(
    ("text", "position", "advice"),
    [
        ("metrics.rmse DESCENDING", 13, "expected ASC or DESC, then ',' or the end"),
        ("metrics.rmse ASC DESC", 17, "expected ASC or DESC"),
        ("metrics.rmse,,params.lr", 12, "empty ORDER BY clause; remove the extra ','"),
        ("metrics.rmse, ", 12, "empty ORDER BY clause"),
        ("metricz.rmse", 0, "expected metrics.<key>, params.<key>"),
        ("attributes.bogus DESC", 0, "known: end_time"),
        ("ASC", 0, "unknown field 'ASC'"),
    ],
)
def test_order_by_errors(text: str, position: int, advice: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by(text)
    assert info.value.position == position
    assert advice in info.value.message
    assert info.value.field == "order_by"
    assert info.value.to_dict()["error"]["field"] == "order_by"


def test_order_by_allows_ten_clauses_not_eleven() -> None:
    ten = [f"metrics.m{i}" for i in range(10)]
    assert len(parse_order_by(ten)) == 10
    with pytest.raises(InvalidArgument) as info:
        parse_order_by(", ".join([*ten, "params.p"]))
    assert info.value.field == "order_by"
    assert "11 order_by clauses given; use at most 10" in info.value.message


# --- the AST as a value ----------------------------------------------------------------


def test_ast_nodes_are_immutable_hashable_and_equal_regardless_of_position() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        A.key = "b"  # type: ignore[misc]
    assert Comparison("metrics", "a", ">", 1.0, position=9) == A
    assert len({And((A, B)), And((A, B)), Or((A, B))}) == 2
    assert not hasattr(A, "__dict__")


def test_attribute_types() -> None:
    expected = {
        "id": str,
        "name": str,
        "status": str,
        "user": str,
        "parent_id": str,
        "project": str,
        "start_time": int,
        "end_time": int,
        "heartbeat_at": int,
    }
    assert expected == ATTRIBUTE_TYPES


def test_to_text_is_canonical() -> None:
    expr = parse_filter(
        "metric.rmse<50 and (tags.a='x' or not params.`b c` in ('1','it''s')) "
        "and not (run.status = 'failed' or attributes.end_time is null)"
    )
    assert expr is not None
    assert to_text(expr) == (
        "metrics.rmse < 50.0 AND (tags.a = 'x' OR NOT params.`b c` IN ('1', 'it''s')) "
        "AND NOT (attributes.status = 'FAILED' OR attributes.end_time IS NULL)"
    )


NUMBER_OPS = ["=", "!=", "<", "<=", ">", ">=", "IS NULL", "IS NOT NULL"]
STRING_OPS = ["=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN"]
STRING_OPS += ["IS NULL", "IS NOT NULL"]


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    entity = draw(st.sampled_from(["metrics", "params", "tags", "attributes"]))
    key = draw(
        st.sampled_from(sorted(ATTRIBUTE_TYPES)) if entity == "attributes" else st.text(min_size=1)
    )
    numeric = entity == "metrics" or (entity == "attributes" and ATTRIBUTE_TYPES[key] is int)
    op = draw(st.sampled_from(NUMBER_OPS if numeric else STRING_OPS))
    if op.startswith("IS"):
        return Comparison(entity, key, op, None)
    if numeric:
        finite = st.floats(allow_nan=False, allow_infinity=False)
        value = draw(finite if entity == "metrics" else st.integers(-(2**70), 2**70))
        return Comparison(entity, key, op, value)
    checked_status = key == "status" and entity == "attributes" and "LIKE" not in op
    one = (
        st.sampled_from(["RUNNING", "FINISHED", "FAILED", "KILLED"])
        if checked_status
        else st.text()
    )
    if op.endswith("IN"):
        return Comparison(entity, key, op, tuple(draw(st.lists(one, min_size=1, max_size=3))))
    return Comparison(entity, key, op, draw(one))


def _joined(kind: type[And] | type[Or], items: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


expressions = st.recursive(
    comparisons(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: _joined(And, xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: _joined(Or, xs)),
        children.map(Not),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(expressions)
def test_to_text_round_trips(expr: Expr) -> None:
    text = to_text(expr)
    parsed = parse_filter(text)
    assert parsed == expr
    assert parsed is not None and to_text(parsed) == text
