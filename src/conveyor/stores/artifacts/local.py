"""A local folder as an artifact backend.

Every key goes through :func:`~conveyor.core.uris.join_under`, so nothing is read
or written outside the root. Writes go to a temp file in the target's folder,
are fsynced, then renamed over the target with :func:`os.replace`: a reader sees
the old file or the whole new one, never a partial write.

:meth:`LocalBackend.put_files` stores a batch under the same rule at a fraction of the
cost: temp files are written and fsynced on several threads (the file system commits
them together), then renamed, and each distinct folder is fsynced once, not once a file.
A name under the root therefore only ever points to durable bytes.

:meth:`LocalBackend.put_links` is the same batch with hard links in place of copies
(``conveyor data add --link``): the source file is made read-only, since it now *is*
the stored blob, and its bytes are fsynced before the link is published.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat as stat_module
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from conveyor.core.errors import NotFound
from conveyor.core.uris import join_under, local_path, safe_relpath

#: Temp files start with this; :meth:`LocalBackend.list` never shows them.
TMP_MARKER = ".conveyor-tmp-"
_CHUNK = 1 << 20
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
_SENDFILE_MAX = 0x7FFFF000  # the most one sendfile call moves on Linux
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}
_Writer = Callable[[BinaryIO], object]
_BATCH = 4096  # temp files alive at once in put_files (each folder is synced once a batch)
_SYNC_WORKERS = 8  # copies + fsyncs in flight: the journal commits them as a group


def _copy(fin: BinaryIO, out: BinaryIO) -> None:
    """Copy one open file into another: in the kernel (``sendfile``) where it can.

    ``sendfile`` moves the bytes page cache to page cache, without the two copies
    through a Python buffer; other platforms, and files it refuses, get the buffer.
    """
    offset = 0
    try:
        while sent := os.sendfile(out.fileno(), fin.fileno(), offset, _SENDFILE_MAX):
            offset += sent
        return
    except (AttributeError, OSError) as exc:  # no sendfile, or not for these files
        if offset or (isinstance(exc, OSError) and exc.errno not in _NO_SENDFILE):
            raise
    shutil.copyfileobj(fin, out, _CHUNK)


def _copy_synced(src: Path, dest: Path) -> None:
    """Copy ``src`` to the new file ``dest`` and fsync it."""
    try:
        with open(src, "rb") as fin, open(dest, "xb") as out:
            _copy(fin, out)
            os.fsync(out.fileno())
    except FileNotFoundError:  # deleted since it was listed
        raise NotFound(f"cannot store {str(src)!r}: no such file") from None


def _link_synced(src: Path, dest: Path) -> None:
    """Make the new name ``dest`` a hard link to ``src``, read-only, its bytes fsynced.

    Copies instead where a link cannot be made (another file system, a file
    system without links) or the file cannot be made read-only (another owner's).
    """
    try:
        os.link(src, dest)
    except FileNotFoundError:  # deleted since it was listed
        raise NotFound(f"cannot store {str(src)!r}: no such file") from None
    except OSError:
        _copy_synced(src, dest)
        return
    try:
        fd = os.open(dest, os.O_RDONLY)
        try:
            os.fchmod(fd, stat_module.S_IMODE(os.fstat(fd).st_mode) & ~0o222)
            # The bytes must be durable before the version commits; the new name is
            # made durable by the folder's fsync, so fdatasync is enough (on ext4 the
            # new link count still costs a journal commit, which the threads share).
            _datasync(fd)
        finally:
            os.close(fd)
    except OSError:  # not ours to chmod: a writable link would let an edit change the store
        dest.unlink()
        _copy_synced(src, dest)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; not every platform can open a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalBackend:
    """Objects stored as plain files under a root folder.

    Args:
        root_uri: a folder path or ``file:///path``; the folder is created if missing.
    """

    def __init__(self, root_uri: str) -> None:
        self.root = local_path(root_uri).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._root_text = str(self.root).rstrip("/")
        self.uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        """``root / key``, refused if it would lead outside the root.

        Only a symlink below the root can lead out of it once ``key`` is a safe
        relative path, so one ``lstat`` per part looks for one; only then is the
        full check (:func:`~conveyor.core.uris.join_under`, which resolves the whole
        path) paid. A batch of 2,000 blobs spent a quarter of a second resolving.
        """
        parts = safe_relpath(key).split("/")
        current = self._root_text
        for part in parts:
            current = f"{current}/{part}"
            try:
                mode = os.lstat(current).st_mode
            except OSError:  # not there (yet): nothing below it is either
                break
            if stat_module.S_ISLNK(mode):
                return join_under(self.root, key)
        return self.root.joinpath(*parts)

    def _write_atomic(self, key: str, write: _Writer) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{TMP_MARKER}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(target.parent)

    def put_file(self, key: str, src: Path) -> None:
        """Copy ``src`` under ``key`` atomically."""
        src = Path(src)
        if not src.is_file():
            raise NotFound(f"cannot store {str(src)!r}: no such file")

        def write(out: BinaryIO) -> None:
            with open(src, "rb") as fin:
                out.flush()
                _copy(fin, out)

        self._write_atomic(key, write)

    def put_files(self, items: Sequence[tuple[str, Path]]) -> None:
        """Copy each ``(key, src)``; every object is durable when this returns.

        Same guarantee as :meth:`put_file` one by one (a key only ever names complete,
        fsynced bytes), with the fsyncs batched: temp files are written and fsynced
        in parallel, renamed, then each distinct folder is fsynced once.
        """
        self._put_all(items, _copy_synced)

    def put_links(self, items: Sequence[tuple[str, Path]]) -> None:
        """Store each ``(key, src)`` as a hard link to ``src``, made read-only.

        No byte is copied: ``src`` and the blob become one file, so ``src`` must not be
        edited in place afterwards (it is read-only; replace it with a new file instead).
        Falls back to a copy per file where no link can be made. Durable like
        :meth:`put_files`.
        """
        self._put_all(items, _link_synced)

    def _put_all(self, items: Sequence[tuple[str, Path]], write: Callable[[Path, Path], None]) -> None:
        checked = [(key, Path(src)) for key, src in items]
        for _, src in checked:
            if not src.is_file():
                raise NotFound(f"cannot store {str(src)!r}: no such file")
        with ThreadPoolExecutor(_SYNC_WORKERS, thread_name_prefix="conveyor-sync") as pool:
            for start in range(0, len(checked), _BATCH):
                self._put_batch(checked[start : start + _BATCH], pool, write)

    def _put_batch(
        self,
        items: Sequence[tuple[str, Path]],
        pool: ThreadPoolExecutor,
        write: Callable[[Path, Path], None],
    ) -> None:
        targets = [self._path(key) for key, _ in items]
        folders = sorted({target.parent for target in targets})
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        tmps = [t.parent / f"{TMP_MARKER}{uuid.uuid4().hex}" for t in targets]
        try:
            list(pool.map(write, [src for _, src in items], tmps))
            for tmp, target in zip(tmps, targets, strict=True):
                self._publish(tmp, target)
        finally:
            # Normally none is left; a rename onto a link to the same file (a concurrent
            # linked add of this very file) is a no-op that leaves the temp name behind.
            for tmp in tmps:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        list(pool.map(_fsync_dir, folders))

    @staticmethod
    def _publish(tmp: Path, target: Path) -> None:
        """Rename a durable temp file over its target (one step, so a reader sees either)."""
        os.replace(tmp, target)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically."""
        self._write_atomic(key, lambda out: out.write(data))

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"no object {key!r} in {self.uri}")
        return path

    def get_file(self, key: str, dest: Path) -> None:
        """Stream the object into ``dest`` in 1 MiB chunks."""
        path = self._existing(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "rb") as fin, open(dest, "wb") as out:
                shutil.copyfileobj(fin, out, _CHUNK)
        except FileNotFoundError:  # deleted between the check and the open
            raise NotFound(f"no object {key!r} in {self.uri}") from None

    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory."""
        try:
            return self._existing(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no object {key!r} in {self.uri}") from None

    def exists(self, key: str) -> bool:
        """Whether ``key`` names a stored file."""
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        """File size in bytes, ``None`` if missing."""
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size if stat_module.S_ISREG(st.st_mode) else None

    def delete(self, key: str) -> None:
        """Remove the file and any folders it leaves empty (never the root)."""
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:  # not empty, or raced with a writer: leave it
                break
            parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix, as on S3), sorted."""
        folder = self.root
        if prefix:
            # Only the folder part of the prefix narrows the walk; the rest filters.
            head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
            if head:
                folder = join_under(self.root, safe_relpath(head, field="prefix"))
        if not folder.is_dir():
            return iter(())
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not Path(dirpath, d).is_symlink()]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TMP_MARKER):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def stale(self, prefix: str, before: float) -> Sequence[str]:
        """Keys under ``prefix`` last written before ``before`` (seconds since the epoch)."""
        old = []
        for key in self.list(prefix):
            with contextlib.suppress(FileNotFoundError):
                if self._path(key).stat().st_mtime < before:
                    old.append(key)
        return old

    def local_path(self, key: str) -> Path | None:
        """The real file behind ``key`` (it may not exist yet)."""
        return self._path(key)
