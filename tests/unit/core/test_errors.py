"""The error tree: builtin bases, HTTP statuses, CLI exit codes and messages."""

from __future__ import annotations

import inspect
import re

import pytest

from conveyor.core import errors
from conveyor.core.errors import (
    ConveyorError,
    FilterSyntaxError,
    InvalidArgument,
    MissingExtra,
    NotFound,
)

ERROR_CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, ConveyorError) and cls.__module__ == errors.__name__
    ),
    key=lambda cls: cls.__name__,
)


def test_the_module_defines_the_whole_tree() -> None:
    assert len(ERROR_CLASSES) >= 12
    assert ConveyorError in ERROR_CLASSES


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_has_a_status_an_exit_code_and_a_code(cls: type[ConveyorError]) -> None:
    assert 400 <= cls.http_status <= 599
    assert isinstance(cls.exit_code, int) and 0 < cls.exit_code < 126
    assert re.fullmatch(r"[A-Z_]+", cls.code)


def test_clients_can_tell_errors_apart_by_code() -> None:
    codes = [cls.code for cls in ERROR_CLASSES]
    assert len(codes) == len(set(codes))


def test_the_tree_drawn_in_the_docstring_matches_the_classes() -> None:
    drawn = {
        name: (int(status), int(code))
        for name, status, code in re.findall(
            r"(\w+)(?: \(\w+\))?\s+(\d{3}) / exit (\d+)", errors.__doc__ or ""
        )
    }
    actual = {cls.__name__: (cls.http_status, cls.exit_code) for cls in ERROR_CLASSES}
    assert drawn == {name: value for name, value in actual.items() if name != "ConveyorError"}


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [(InvalidArgument, ValueError), (NotFound, LookupError), (MissingExtra, ImportError)],
)
def test_user_code_can_catch_errors_by_their_builtin(
    cls: type[ConveyorError], builtin: type[Exception]
) -> None:
    with pytest.raises(builtin):
        raise cls("boom")


def test_subclasses_of_invalid_argument_are_caught_as_value_errors() -> None:
    with pytest.raises(ValueError, match="bad"):
        raise errors.UnsafePath("bad path", field="path")
    assert errors.ImmutableValue.http_status == 409  # a conflict, though still a ValueError


def test_to_dict_is_the_server_body_and_includes_the_field() -> None:
    exc = InvalidArgument("lr must be a number", field="lr")
    assert exc.to_dict() == {"error": {"code": "INVALID_ARGUMENT", "message": "lr must be a number", "field": "lr"}}
    assert str(exc) == "lr must be a number"
    assert NotFound("run x does not exist").to_dict() == {
        "error": {"code": "NOT_FOUND", "message": "run x does not exist", "field": None},
    }


def test_filter_syntax_error_points_at_the_position() -> None:
    text = "metrics.rmse << 5"
    exc = FilterSyntaxError("unexpected '<'", position=14, text=text)
    first, echoed, caret = str(exc).splitlines()
    assert first == "unexpected '<' (at position 14)"
    assert echoed.strip() == text
    assert caret.strip() == "^"
    assert caret.index("^") == echoed.index(text) + 14
    assert echoed[caret.index("^")] == "<"
    assert exc.position == 14 and exc.text == text
    assert exc.field == "filter" and isinstance(exc, InvalidArgument)
    assert exc.to_dict()["error"] == {"code": "BAD_FILTER", "message": exc.message, "field": "filter",
                                      "position": 14, "text": text}
