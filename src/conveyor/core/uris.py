"""URIs and user-supplied relative paths.

``scheme_of`` decides which backend a URI belongs to (a bare path is a local
folder or an SQLite file). ``safe_relpath`` is the single gate every
user-supplied artifact path passes: it refuses absolute paths, ``..``
segments, drive letters, NUL bytes and empty names, and normalises separators,
so a stored path can never point outside its root.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from conveyor.core.errors import InvalidArgument, UnsafePath

MAX_PATH_LENGTH = 1024


def scheme_of(uri: str) -> str:
    """The backend scheme of ``uri``: ``file`` for bare paths, else the URI scheme.

    ``postgresql+psycopg://`` maps to ``postgresql``; Windows drive letters are paths.
    """
    if not uri:
        raise InvalidArgument("empty URI", field="uri")
    if "://" not in uri and not uri.startswith("sqlite:"):
        return "file"
    scheme = urlsplit(uri).scheme.lower()
    if len(scheme) == 1:  # C:\... on Windows
        return "file"
    scheme = scheme.split("+", 1)[0]
    return "postgresql" if scheme == "postgres" else scheme


def local_path(uri: str) -> Path:
    """The local folder a ``file://`` URI or bare path names."""
    if uri.startswith("file://"):
        return Path(urlsplit(uri).path).expanduser()
    return Path(uri).expanduser()


def split_bucket(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    parts = urlsplit(uri)
    if not parts.netloc:
        raise InvalidArgument(f"{uri!r} has no bucket name (expected s3://bucket/prefix)", field="uri")
    return parts.netloc, parts.path.strip("/")


def safe_relpath(path: str | os.PathLike[str], field: str = "path") -> str:
    """Normalise a user-supplied relative path or refuse it.

    Returns a POSIX path with no leading ``./``, no empty or ``.`` segments.
    Raises :class:`UnsafePath` for absolute paths, ``..`` segments and other
    ways out of the root.
    """
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidArgument(f"{field} must be a string, got {type(text).__name__}", field=field)
    if not text or not text.strip():
        raise InvalidArgument(f"{field} is empty", field=field)
    if "\x00" in text:
        raise UnsafePath(f"{field} contains a NUL byte", field=field)
    if len(text) > MAX_PATH_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_PATH_LENGTH} characters", field=field)
    text = text.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafePath(f"{field} {path!r} is absolute; give a path relative to the run", field=field)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePath(f"{field} {path!r} contains '..'; paths must stay inside their root", field=field)
    if not parts:
        raise InvalidArgument(f"{field} {path!r} names no file", field=field)
    return posixpath.join(*parts)


def join_under(root: Path, relpath: str) -> Path:
    """``root / relpath`` after checking the result (symlinks resolved) stays in ``root``."""
    rel = safe_relpath(relpath)
    target = root.joinpath(*PurePosixPath(rel).parts)
    resolved_root = root.resolve()
    resolved = target.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafePath(f"path {relpath!r} resolves outside {root}", field="path")
    return target
