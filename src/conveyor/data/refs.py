"""Dataset names and references: ``bikes-raw``, ``bikes-raw@2``, ``bikes-raw@latest``."""

from __future__ import annotations

from typing import NamedTuple

from conveyor.core import validation as v
from conveyor.core.errors import InvalidArgument

LATEST = "latest"


class Ref(NamedTuple):
    """A parsed reference; ``version`` is ``None`` for the newest version."""

    name: str
    version: int | None

    def __str__(self) -> str:
        return f"{self.name}@{LATEST if self.version is None else self.version}"


def check_dataset_name(name: object) -> str:
    """``name`` if it is a valid dataset name (no path characters), else InvalidArgument."""
    return v.check_name(name, "dataset")


def parse_ref(ref: object, field: str = "ref") -> Ref:
    """Parse ``NAME``, ``NAME@N`` (N ≥ 1) or ``NAME@latest``; errors name ``field``."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidArgument(
            f"{field} must be a dataset reference such as 'bikes-raw@1', got {ref!r}", field=field
        )
    name, at, version = ref.strip().partition("@")
    try:
        check_dataset_name(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{field} {ref!r}: {exc.message}", field=field) from None
    if not at or version == LATEST:
        return Ref(name, None)
    if not version.isdigit() or int(version) < 1:
        raise InvalidArgument(
            f"{field} {ref!r}: the version after '@' must be a positive number or 'latest'",
            field=field,
        )
    return Ref(name, int(version))
