"""A local cache of file hashes keyed by what ``stat`` says about the file.

``(path, size, mtime_ns, inode) -> digest``: when all four are unchanged the file
is taken to be unchanged and is not read again, which is what makes re-adding a
large folder cheap (DVC keeps the same kind of cache). It lives in one small
SQLite file under the Conveyor home; losing it only costs a rehash.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    digest TEXT NOT NULL
)
"""


class Stat(NamedTuple):
    size: int
    mtime_ns: int
    inode: int


class StatCache:
    """Hashes of local files by absolute path; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        with self._lock, contextlib.suppress(sqlite3.OperationalError):
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode and str(mode[0]).lower() == "wal":
                # No fsync per commit: a power cut may forget the newest entries (those
                # files are hashed again), never leave a wrong one; it saves a disk
                # flush on every add.
                self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock, self._conn:
            self._conn.execute(_SCHEMA)

    def lookup_under(self, root: Path) -> dict[str, tuple[Stat, str]]:
        """Every cached entry whose path lies under the folder ``root`` (one query)."""
        prefix = str(root).rstrip("/") + "/"
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, size, mtime_ns, inode, digest FROM stat_cache "
                "WHERE path >= ? AND path < ?",
                (prefix, prefix[:-1] + "0"),  # '0' is the character after '/'
            ).fetchall()
        return {r[0]: (Stat(r[1], r[2], r[3]), r[4]) for r in rows}

    def lookup(self, path: Path) -> tuple[Stat, str] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT size, mtime_ns, inode, digest FROM stat_cache WHERE path = ?", (str(path),)
            ).fetchone()
        return None if row is None else (Stat(row[0], row[1], row[2]), row[3])

    def store(self, entries: Iterable[tuple[str | Path, Stat, str]]) -> None:
        rows = [(str(p), s.size, s.mtime_ns, s.inode, d) for p, s, d in entries]
        if not rows:
            return
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO stat_cache VALUES (?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
