"""Properties: references and suites survive their text forms for any valid input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidArgument
from conveyor.data import Suite
from conveyor.data.refs import Ref, parse_ref

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-.]{0,40}", fullmatch=True)
versions = st.none() | st.integers(min_value=1, max_value=10**9)


@given(names, versions)
def test_a_reference_parses_back_from_its_text(name: str, version: int | None) -> None:
    ref = Ref(name, version)
    assert parse_ref(str(ref)) == ref


@given(st.text(max_size=30))
def test_parsing_any_text_either_works_or_names_the_field(text: str) -> None:
    try:
        ref = parse_ref(text)
    except InvalidArgument as exc:
        assert exc.field == "ref"
    else:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-.]*", ref.name)  # no path characters


scalars = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False), st.text(max_size=8))
columns = st.from_regex(r"[a-z][a-z0-9_ ]{0,12}", fullmatch=True)


@st.composite
def suites(draw: st.DrawFn) -> Suite:
    suite = Suite(draw(st.text(min_size=1, max_size=20).filter(str.strip)))
    for _ in range(draw(st.integers(0, 6))):
        column = draw(columns)
        kind = draw(st.sampled_from(["not_null", "unique", "range", "allowed", "regex", "rows"]))
        if kind == "not_null":
            suite.not_null(column, draw(st.floats(0, 1)))
        elif kind == "unique":
            suite.unique(column)
        elif kind == "range":
            low = draw(st.floats(-1e6, 1e6, allow_nan=False))
            suite.between(column, low, low + draw(st.floats(0, 1e6)))
        elif kind == "allowed":
            suite.isin(column, draw(st.lists(scalars, max_size=5)))
        elif kind == "regex":
            suite.matches(column, draw(st.sampled_from([r"\d+", "[a-z]+@[a-z]+", "x|y", ".*"])))
        else:
            suite.row_count(min=draw(st.integers(0, 100)), max=None)
    return suite


@settings(max_examples=60, deadline=None)
@given(suites())
def test_a_suite_survives_yaml_and_json(suite: Suite) -> None:
    assert Suite.from_yaml(suite.to_yaml()) == suite
    assert Suite.from_json(suite.to_json()) == suite


@pytest.mark.parametrize("text", ["bikes@1@2", "bikes@ 1", "bikes@1.0"])
def test_odd_versions_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_ref(text)
