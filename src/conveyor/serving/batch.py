"""Batch scoring: a model over a large file, chunk by chunk, never the whole file in memory.

``score_file("models:/bike-demand@champion", "in.parquet", "out.parquet")`` reads
Parquet (or CSV) in chunks of ``chunk_rows``, checks each chunk against the
model's signature, predicts, and appends the input columns plus the prediction
column(s) to the output Parquet file. The output appears under its name only
when every chunk succeeded (written to a temporary name, then renamed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument, NotFound


def _chunks(path: Path, chunk_rows: int) -> Iterator[Any]:
    """pandas DataFrames of up to ``chunk_rows`` rows."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    elif suffix == ".csv":
        import pandas as pd

        yield from pd.read_csv(path, chunksize=chunk_rows)
    else:
        raise InvalidArgument(f"{path.name}: give a .parquet or .csv file", field="input")


def score_chunk(model: Any, chunk: Any, prediction_column: str = "prediction") -> Any:
    """``chunk`` (a DataFrame) plus the model's prediction column(s), after the signature check.

    Raises:
        SignatureMismatch: a column is missing, extra or of the wrong type; each is named.
    """
    from conveyor.serving.variants import conform

    frame = chunk
    if model.signature is not None:
        frame = conform(chunk, model.signature)
        model.signature.validate(frame)
    output = model.predict(frame)
    if hasattr(output, "columns"):
        return chunk.reset_index(drop=True).join(output.reset_index(drop=True), rsuffix="_prediction")
    return chunk.assign(**{prediction_column: list(output) if getattr(output, "ndim", 1) > 1 else output})


def score_file(model: Any, src: str | Path, dest: str | Path, *, chunk_rows: int = 100_000,
               prediction_column: str = "prediction") -> int:
    """Score ``src`` into ``dest`` with a loaded model (``.predict``, ``.signature``); returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, dest = Path(src), Path(dest)
    if src.is_dir():
        raise InvalidArgument(f"{src} is a folder: give one file, or score the folder on Ray (--ray)",
                              field="input")
    if not src.is_file():
        raise NotFound(f"no input file {src}", field="input")
    if chunk_rows < 1:
        raise InvalidArgument("chunk_rows must be at least 1", field="chunk_rows")
    partial = dest.with_name(f".{dest.name}.partial")
    writer = None
    rows = 0
    try:
        for chunk in _chunks(src, chunk_rows):
            out = score_chunk(model, chunk, prediction_column)
            table = pa.Table.from_pandas(out, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
            rows += len(chunk)
        if writer is None:
            raise InvalidArgument(f"{src.name} has no rows", field="input")
        writer.close()
        writer = None
        os.replace(partial, dest)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    return rows
