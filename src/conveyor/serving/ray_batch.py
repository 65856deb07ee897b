"""Batch scoring on Ray: a pool of actors scores the row groups of Parquet files.

``score_on_ray("local", registry.content, mv.package_digest, src, dest)`` splits
one Parquet file or a folder of them into row groups (a CSV file is one piece),
hands them to a pool of Ray actors, which read them in batches of up to
``chunk_rows`` rows, and writes the input columns plus the prediction to
``dest``: one Parquet file when ``dest`` ends in ``.parquet`` (streamed through
the driver in input order), else a folder with one file per row group
(``part-00000.parquet``..., in input order, written by the workers). On a
cluster, input and output folder must be paths every node sees (a shared
mount). Each actor loads the model once: the driver sends
the package's stored bytes, and the actor loads them through the same
content-addressed store the local path uses, so every file is checked against
its BLAKE3 digest and the package manifest before the model is built. A
tampered package is refused on the actor, not loaded.

Every batch passes the signature check of :func:`~conveyor.serving.batch.score_chunk`;
the first failing block stops the job, its error (naming the column) is raised
on the driver and the actors are stopped. The output appears under its name only when every block
succeeded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conveyor.core.errors import ConveyorError, InvalidArgument, NotFound


class _MemoryBackend:
    """Read-only bytes by key: the package's blobs, as sent by the driver (checked when read)."""

    uri = "memory://model-package"

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self._blobs = blobs

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._blobs[key]
        except KeyError:
            raise NotFound(f"blob {key} was not sent with the model package") from None

    def get_file(self, key: str, dest: Path) -> None:
        Path(dest).write_bytes(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        return key in self._blobs

    def size(self, key: str) -> int | None:
        blob = self._blobs.get(key)
        return None if blob is None else len(blob)

    def local_path(self, key: str) -> Path | None:
        return None

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(k for k in self._blobs if k.startswith(prefix))

    def put_file(self, key: str, src: Path) -> None:
        raise InvalidArgument("a model package sent to Ray is read-only")

    def put_bytes(self, key: str, data: bytes) -> None:
        raise InvalidArgument("a model package sent to Ray is read-only")

    def delete(self, key: str) -> None:
        raise InvalidArgument("a model package sent to Ray is read-only")


def package_blobs(content: Any, digest: str) -> dict[str, bytes]:
    """The stored bytes of package ``digest`` and its files, by backend key, as stored (unchecked here)."""
    from conveyor.stores.artifacts.cas import blob_key

    digests = [digest, *(f.digest for f in content.get_manifest(digest))]
    return {blob_key(d): content.backend.get_bytes(blob_key(d)) for d in digests}


class BlockFailed(Exception):
    """A block's error, carried back from a Ray worker in a form that survives pickling."""

    def __init__(self, kind: str, message: str, field: str | None = None,
                 problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.field, self.problems = kind, message, field, problems

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockFailed, (self.kind, self.message, self.field, self.problems))

    @classmethod
    def wrap(cls, exc: BaseException) -> BlockFailed:
        kind = f"{type(exc).__module__}:{type(exc).__qualname__}"
        message = exc.message if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
        problems = getattr(exc, "problems", None)
        return cls(kind, message, getattr(exc, "field", None), list(problems) if problems else None)

    def rebuild(self) -> ConveyorError:
        """The driver-side error: the same Conveyor error class (so the same exit code) when it was one."""
        import importlib

        from conveyor.registry.signature import SignatureMismatch

        module, _, name = self.kind.partition(":")
        cls = None
        if module == "conveyor" or module.startswith("conveyor."):  # only our own error classes come back
            with contextlib.suppress(ImportError, AttributeError):
                cls = getattr(importlib.import_module(module), name)
        if cls is SignatureMismatch and self.problems:
            return SignatureMismatch([tuple(p) for p in self.problems])  # type: ignore[misc]
        if isinstance(cls, type) and issubclass(cls, ConveyorError):
            try:
                return cls(self.message, field=self.field)
            except TypeError:  # a subclass with its own constructor
                pass
        return ConveyorError(f"a block failed on Ray: {self.message}", field=self.field)


class _Scorer:
    """One Ray actor: loads the model once, then scores the row groups it is given."""

    def __init__(self, blobs: dict[str, bytes], digest: str, metadata: dict[str, Any],
                 prediction_column: str) -> None:
        from conveyor.registry import package
        from conveyor.stores.artifacts.cas import ContentStore

        self._column = prediction_column
        self._model: Any = None
        self._error: BlockFailed | None = None
        try:
            content = ContentStore(_MemoryBackend(blobs))
            label = metadata.get("uri", "the model")
            self._model = package.load(content, digest, label=label, metadata=metadata)
        except Exception as exc:  # reported by the first call: an actor that fails to start says less
            self._error = BlockFailed.wrap(exc)

    def score(self, piece: tuple[str, int | None], chunk_rows: int, dest: str | None) -> Any:
        """Score one row group (or a whole CSV file); the table, or its row count once written to ``dest``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from conveyor.serving.batch import _chunks, score_chunk

        if self._error is not None:
            raise self._error
        path, group = piece
        try:
            if group is None:
                chunks: Iterator[Any] = _chunks(Path(path), chunk_rows)
            else:
                batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, row_groups=[group])
                chunks = (batch.to_pandas() for batch in batches)
            tables = [pa.Table.from_pandas(score_chunk(self._model, chunk, self._column), preserve_index=False)
                      for chunk in chunks]
        except Exception as exc:
            raise BlockFailed.wrap(exc) from None
        table = pa.concat_tables(tables, promote_options="permissive") if tables else None
        if dest is None or table is None:
            return table
        pq.write_table(table, dest, compression="zstd")
        return table.num_rows


def _failure(exc: BaseException) -> BlockFailed | None:
    """The :class:`BlockFailed` somewhere in the chain Ray wraps around a worker's error."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, BlockFailed):
            return item
        todo += [item.__cause__, item.__context__, getattr(item, "cause", None)]
    return None


def pieces(src: str | Path) -> list[tuple[str, int | None]]:
    """The units of work, in input order: each row group of each Parquet file (name order), or a CSV file."""
    import pyarrow.parquet as pq

    path = Path(src)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".pq"))
        if not files:
            raise InvalidArgument(f"{path}: the folder has no .parquet files", field="input")
    elif not path.is_file():
        raise NotFound(f"no input file or folder {path}", field="input")
    elif path.suffix.lower() == ".csv":
        return [(str(path.resolve()), None)]
    elif path.suffix.lower() in (".parquet", ".pq"):
        files = [path]
    else:
        raise InvalidArgument(f"{path.name}: give a .parquet or .csv file, or a folder of .parquet files",
                              field="input")
    return [(str(f.resolve()), group) for f in files for group in range(pq.ParquetFile(f).num_row_groups)]


def score_on_ray(address: str, content: Any, digest: str, src: str | Path, dest: str | Path, *,
                 metadata: dict[str, Any] | None = None, chunk_rows: int = 100_000,
                 prediction_column: str = "prediction", actors: int | None = None) -> int:
    """Score ``src`` into ``dest`` on Ray (``"local"``, ``RAY_ADDRESS`` or ``ray://host:port``); returns rows.

    Args:
        address: ``"local"`` starts Ray here unless ``RAY_ADDRESS`` names a cluster.
        content: the content store holding the package; digest: the package's digest.
        actors: size of the actor pool (default: the cluster's CPUs, at most one per row group).

    Raises:
        SignatureMismatch: a block does not fit the model's signature (the first one found).
        ArtifactCorrupted: the package's bytes do not match its manifest; nothing was written.
        BackendUnavailable: Ray cannot be reached. MissingExtra: Ray is not installed.
    """
    from conveyor.pipelines.ray_executor import connect

    if chunk_rows < 1:
        raise InvalidArgument("chunk_rows must be at least 1", field="chunk_rows")
    if actors is not None and actors < 1:
        raise InvalidArgument("the actor pool needs at least 1 actor", field="actors")
    work = pieces(src)
    dest = Path(dest)
    single = dest.suffix.lower() in (".parquet", ".pq")
    if not single and dest.exists():
        raise InvalidArgument(f"the output folder {dest} exists; remove it or choose another name", field="output")
    blobs = package_blobs(content, digest)
    if address == "local" and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    ray = connect(address, field="ray")
    size = min(len(work), actors or max(1, int(ray.cluster_resources().get("CPU", 1))))
    # Ray's retries are off: a block that fails, fails the command (it is not a lost worker to retry).
    remote = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Scorer)
    blobs_ref = ray.put(blobs)
    pool = [remote.remote(blobs_ref, digest, metadata or {}, prediction_column) for _ in range(size)]
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        if not single:
            partial.mkdir(parents=True)
        targets = [None if single else str((partial / f"part-{i:05d}.parquet").resolve()) for i in range(len(work))]
        results = ray.util.ActorPool(pool).map(
            lambda actor, item: actor.score.remote(item[0], chunk_rows, item[1]), list(zip(work, targets, strict=True)))
        rows = _write_file(results, partial) if single else sum(n or 0 for n in results)
        if rows == 0:
            raise InvalidArgument(f"{Path(src).name} has no rows", field="input")
        if single:
            os.replace(partial, dest)
        else:
            partial.rename(dest)
    except Exception as exc:
        failed = _failure(exc)
        if failed is not None:
            raise failed.rebuild() from None
        raise
    finally:
        for actor in pool:
            ray.kill(actor)
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
    return rows


def _write_file(tables: Iterator[Any], partial: Path) -> int:
    """The scored tables, in input order, into one Parquet file."""
    import pyarrow.parquet as pq

    writer = None
    rows = 0
    try:
        for table in tables:
            if table is None or table.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
