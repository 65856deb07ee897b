"""Plain typed records shared by every layer.

Entities are immutable ``msgspec.Struct`` values: cheap to build, hashable
where it matters, and serialisable to JSON unchanged by the server. They are
converted from database rows by the stores and never carry a connection.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import msgspec


class RunStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING

    @classmethod
    def parse(cls, value: RunStatus | str) -> RunStatus:
        """``value`` as a status (case-insensitive), or an error listing the valid ones."""
        from conveyor.core.errors import InvalidArgument

        try:
            return cls(value.upper() if isinstance(value, str) else value)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise InvalidArgument(
                f"unknown run status {value!r}; expected one of {valid}", field="status"
            ) from None


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    created_at: int  # ms since epoch
    description: str = ""


class MetricPoint(msgspec.Struct, frozen=True, array_like=True):
    """One logged value. NaN and +/-inf are stored as given."""

    key: str
    value: float
    step: int
    timestamp: int  # ms since epoch

    def __eq__(self, other: object) -> bool:  # NaN == NaN for stored points
        if not isinstance(other, MetricPoint):
            return NotImplemented
        same_value = self.value == other.value or (
            math.isnan(self.value) and math.isnan(other.value)
        )
        return (
            same_value
            and self.key == other.key
            and self.step == other.step
            and self.timestamp == other.timestamp
        )

    def __hash__(self) -> int:
        return hash((self.key, self.step, self.timestamp))


class ArtifactFile(msgspec.Struct, frozen=True, kw_only=True):
    """A file logged to a run: its path inside the run and its content hash."""

    path: str
    digest: str
    size: int


class Run(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project: str
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None = None
    parent_id: str | None = None
    user: str = ""
    heartbeat_at: int | None = None
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}  # latest value per key (highest step, then newest)
    tags: dict[str, str] = {}
    env: dict[str, Any] = {}
    artifacts: tuple[ArtifactFile, ...] = ()

    @property
    def duration_ms(self) -> int | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class Page(list):
    """A page of search results; ``next_page_token`` is ``None`` on the last page."""

    def __init__(self, items: Any = (), next_page_token: str | None = None) -> None:
        super().__init__(items)
        self.next_page_token = next_page_token
