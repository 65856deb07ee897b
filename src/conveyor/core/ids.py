"""Identifiers: time-ordered, random, 32 hex characters.

The first 12 hex digits are milliseconds since the epoch, so ids sort by
creation time and keep database indexes local; the remaining 80 bits are random.
"""

from __future__ import annotations

import os
import re
import time

from conveyor.core.errors import InvalidArgument

_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> str:
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{os.urandom(10).hex()}"


def check_id(value: object, field: str = "run_id") -> str:
    """Return ``value`` if it is a well-formed id, else raise naming ``field``."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidArgument(
            f"{field} must be 32 lowercase hex characters, got {value!r}", field=field
        )
    return value


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "fair", "gentle",
    "glad", "grand", "keen", "lively", "lucid", "merry", "nimble", "noble", "polite", "proud",
    "quick", "quiet", "rapid", "shiny", "silent", "smart", "steady", "swift", "tidy", "vivid",
    "warm", "wise",
)
_NOUNS = (
    "badger", "bear", "beaver", "bison", "crane", "deer", "dolphin", "eagle", "falcon", "fox",
    "gecko", "hare", "heron", "ibis", "jay", "koala", "lark", "lynx", "mole", "newt", "otter",
    "owl", "panda", "puffin", "raven", "robin", "seal", "swan", "tiger", "viper", "whale", "wren",
)


def friendly_name() -> str:
    """A readable default run name such as ``swift-otter-417``."""
    a, b, n = os.urandom(3)
    return f"{_ADJECTIVES[a % len(_ADJECTIVES)]}-{_NOUNS[b % len(_NOUNS)]}-{n * 4 % 1000:03d}"
