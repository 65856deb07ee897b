"""The environment recorded with every run.

What is captured: git commit, branch and dirty flag of the code's repository;
Python version and implementation; a digest of the installed packages
(``name==version`` sorted, BLAKE3) and their count; host, user, platform,
process id and command line. The costly parts (git, the package list) are
computed once per process: a run created later in the same process reuses them.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from conveyor.core.settings import current_user


@functools.lru_cache(maxsize=1)
def packages() -> tuple[str, ...]:
    from importlib.metadata import distributions

    names = set()
    for dist in distributions():
        name, version = _name_and_version(dist)
        if name:
            names.add(f"{name.lower()}=={version}")
    return tuple(sorted(names))


def _name_and_version(dist: Any) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from the metadata's header block, as ``dist.metadata`` gives them.

    ``dist.metadata`` runs the e-mail parser over the whole file, long description
    included: about 1 ms per package, a quarter of a second for a data-science
    environment, paid by the first run of every process. The two headers sit at
    the top; the first of each counts, as with the parser.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or dist.read_text("") or ""
    name = version = None
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the headers
        field, sep, value = line.partition(":")
        if not sep or line[0] in " \t":
            continue  # a continuation line
        field = field.lower()
        if field == "name" and name is None:
            name = value.lstrip(" \t")
        elif field == "version" and version is None:
            version = value.lstrip(" \t")
        if name is not None and version is not None:
            break
    return name, version


@functools.lru_cache(maxsize=1)
def packages_digest() -> str:
    import blake3

    return "blake3:" + blake3.blake3("\n".join(packages()).encode()).hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_dir() -> Path:
    """The folder of the running script (the current folder for notebooks and -c)."""
    main = sys.argv[0] if sys.argv else ""
    if main and os.path.exists(main):
        return Path(main).resolve().parent
    return Path.cwd()


@functools.lru_cache(maxsize=8)
def git_info(folder: Path) -> dict[str, Any] | None:
    commit = _git(["rev-parse", "HEAD"], folder)
    if commit is None:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], folder)
    return {
        "commit": commit,
        "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], folder),
        "dirty": bool(status),
        "root": _git(["rev-parse", "--show-toplevel"], folder),
    }




def capture() -> dict[str, Any]:
    """The environment of this process, as stored on a run (``Run.env``)."""
    pkgs = packages()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "user": current_user(),
        "pid": os.getpid(),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "git": git_info(code_dir()),
        "packages_digest": packages_digest(),
        "packages_count": len(pkgs),
    }
