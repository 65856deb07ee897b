"""Checks on names and values a user logs, shared by the SDK and every store.

Limits (documented in docs/tracking.md):
- keys (params, metrics, tags): 1-250 characters of letters, digits and ``_ - . / : space``;
  no leading ``/``, no ``..`` segment (keys become paths in exports);
- param values: strings up to 6,000 characters once converted with ``str()``;
- tag values: strings up to 8,000 characters;
- metric values: real numbers (int, float, NumPy scalars; not bool, not str);
  NaN and +/-inf are accepted and stored as given;
- steps: integers in the signed 64-bit range.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conveyor.core.errors import InvalidArgument

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_NAME_LENGTH = 250
_INT64 = 2**63 - 1

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-. /:]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")


def check_key(key: object, kind: str = "metric") -> str:
    if not isinstance(key, str):
        raise InvalidArgument(f"{kind} key must be a string, got {type(key).__name__}", field="key")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(
            f"{kind} key {key[:60]!r} must have 1 to {MAX_KEY_LENGTH} characters", field="key"
        )
    if not _KEY_RE.match(key):
        raise InvalidArgument(
            f"{kind} key {key!r} may contain only letters, digits and _ - . / : and spaces",
            field="key",
        )
    if key.startswith("/") or ".." in key.split("/"):
        raise InvalidArgument(f"{kind} key {key!r} may not start with '/' or contain '..'", field="key")
    return key


def check_name(name: object, kind: str = "project") -> str:
    """Names of projects (and later models, datasets): URL- and path-safe."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{kind} name must be a non-empty string", field="name")
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.match(name):
        raise InvalidArgument(
            f"{kind} name {name[:60]!r} must start with a letter or digit and contain only "
            f"letters, digits, '_', '-' and '.' (at most {MAX_NAME_LENGTH} characters)",
            field="name",
        )
    return name


def check_run_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidArgument(f"run name must be a string, got {type(name).__name__}", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"run name is longer than {MAX_NAME_LENGTH} characters", field="name")
    return name


def metric_value(key: str, value: Any) -> float:
    """``value`` as a float, or an error naming the metric."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if kind is bool or isinstance(value, (str, bytes)) or value is None:
        raise InvalidArgument(
            f"metric {key!r} must be a number, got {kind.__name__} {value!r}", field=key
        )
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"metric {key!r} must be a number, got {kind.__name__}", field=key
        ) from None


def metric_step(key: str, step: Any) -> int:
    if type(step) is int and -_INT64 <= step <= _INT64:
        return step
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise InvalidArgument(f"step of metric {key!r} must be an integer, got {step!r}", field="step")
    value = int(step.__index__())
    if not -_INT64 <= value <= _INT64:
        raise InvalidArgument(f"step of metric {key!r} is out of range", field="step")
    return value


def param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise InvalidArgument(
            f"param {key!r} is {len(text)} characters long; the limit is {MAX_PARAM_VALUE_LENGTH}. "
            "Log large values as an artifact instead",
            field=key,
        )
    return text


def tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise InvalidArgument(
            f"tag {key!r} is {len(text)} characters long; the limit is {MAX_TAG_VALUE_LENGTH}",
            field=key,
        )
    return text


def check_params(params: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(params, Mapping):
        raise InvalidArgument("params must be a mapping of names to values", field="params")
    return {check_key(k, "param"): param_value(k, v) for k, v in params.items()}


def check_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(tags, Mapping):
        raise InvalidArgument("tags must be a mapping of names to values", field="tags")
    return {check_key(k, "tag"): tag_value(k, v) for k, v in tags.items()}

