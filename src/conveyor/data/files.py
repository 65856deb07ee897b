"""Listing and hashing the files of a dataset: one walk, a stat cache, many threads.

The walk collects each file's ``stat`` once. Files whose (size, mtime, inode)
match the :class:`~conveyor.data.statcache.StatCache` keep their cached digest;
the rest are hashed on a thread pool (BLAKE3 releases the GIL, and big files
are hashed with several threads each). A symlink that points outside the folder
is refused: following it would version bytes the user never put in the dataset.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from conveyor.core.errors import InvalidArgument, NotFound, UnsafePath
from conveyor.core.uris import safe_relpath
from conveyor.data.statcache import Stat, StatCache
from conveyor.stores.artifacts.cas import hash_file

WORKERS = min(32, (os.cpu_count() or 1) * 4)
#: A file modified this close to the moment it was hashed is not put in the stat cache.
#: File systems stamp mtimes with a coarse clock (a few ms on ext4, 1-2 s on some), so
#: a write in the same tick after the hash would leave (size, mtime, inode) unchanged
#: and the cache would vouch for a stale digest ("racy git"). Such files are hashed again.
RACY_NS = 2_000_000_000


class LocalFile(NamedTuple):
    """A file found under the dataset's root, with its digest once hashed.

    ``path`` is text, not a :class:`~pathlib.Path`: a walk of 100,000 files would
    spend more on building ``Path`` objects than on the ``stat`` calls.
    """

    relpath: str
    path: str
    stat: Stat
    digest: str


def _stat(st: os.stat_result) -> Stat:
    return Stat(st.st_size, st.st_mtime_ns, st.st_ino)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def walk(source: Path) -> list[tuple[str, str, Stat]]:
    """``(relative POSIX path, path, stat)`` of every file of ``source`` (a file or folder).

    Raises:
        NotFound: ``source`` does not exist.
        UnsafePath: a symlink inside the folder points outside it.
        InvalidArgument: a broken symlink, or a folder with no files.
    """
    if not source.exists():
        raise NotFound(f"{str(source)!r} does not exist", field="path")
    if source.is_file():
        return [(safe_relpath(source.name), str(source), _stat(source.stat()))]
    root = source.resolve()
    found: list[tuple[str, str, Stat]] = []
    seen = {root}
    stack: list[tuple[str, str]] = [(str(source), "")]
    while stack:
        current, rel = stack.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                relpath = rel + entry.name
                if entry.is_symlink():
                    real = Path(entry.path).resolve()
                    if not _inside(real, root):
                        raise UnsafePath(
                            f"{relpath!r} in {str(source)!r} is a symlink to {str(real)!r}, "
                            "outside the folder; copy the file in instead",
                            field="path",
                        )
                    if not real.exists():
                        raise InvalidArgument(
                            f"{relpath!r} in {str(source)!r} is a broken symlink", field="path"
                        )
                if entry.is_dir():
                    real = Path(entry.path).resolve()
                    if real not in seen:  # a link back up would loop forever
                        seen.add(real)
                        stack.append((entry.path, relpath + "/"))
                elif entry.is_file():
                    found.append((relpath, entry.path, _stat(entry.stat())))
    if not found:
        raise InvalidArgument(f"{str(source)!r} holds no files", field="path")
    found.sort(key=lambda item: item[0])
    return found


def hash_files(source: Path, cache: StatCache | None) -> tuple[list[LocalFile], int]:
    """Every file of ``source`` with its digest, and how many files had to be read.

    Only files the stat cache does not vouch for are hashed.
    """
    started = time.time_ns()
    entries = walk(source)
    if source.is_dir():
        root = source.resolve()
        under = str(root).rstrip("/") + "/"  # the prefix lookup_under queries
        keys = [under + rel for rel, _, _ in entries]
        known = cache.lookup_under(root) if cache is not None else {}
    else:
        keys = [str(source.resolve())]
        hit = cache.lookup(source.resolve()) if cache is not None else None
        known = {keys[0]: hit} if hit is not None else {}
    digests: list[str] = []
    todo: list[int] = []
    for i, (key, (_, _, st)) in enumerate(zip(keys, entries, strict=True)):
        cached = known.get(key)
        if cached is not None and cached[0] == st:
            digests.append(cached[1])
        else:
            digests.append("")
            todo.append(i)
    if todo:
        workers = min(WORKERS, len(todo))
        with ThreadPoolExecutor(workers, thread_name_prefix="conveyor-hash") as pool:
            for i, (digest, _) in zip(todo, pool.map(lambda i: hash_file(entries[i][1]), todo), strict=True):
                digests[i] = digest
        if cache is not None:
            settled = started - RACY_NS
            cache.store(
                (keys[i], entries[i][2], digests[i]) for i in todo if entries[i][2].mtime_ns < settled
            )
    files = [
        LocalFile(rel, path, st, digest)
        for (rel, path, st), digest in zip(entries, digests, strict=True)
    ]
    return files, len(todo)
