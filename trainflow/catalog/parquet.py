"""How the catalog stores tables as Parquet: the options it writes with, batches read back, the rows' index labels,
and which integer and boolean columns hold a missing value."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTS_INDEX = "_parts.json"  # a dataset's parts (file, sha256, rows, bytes); "_": Parquet readers skip it


def row_index(table: pa.Table, offset: int = 0) -> tuple[pa.Table, pa.ChunkedArray]:
    """A table written from a DataFrame, split into its data columns and each row's index label: the stored
    index column, or the labels of a range index (also for a table pandas never wrote). ``offset``: the
    table is a batch of a larger one starting at that row."""
    (entry,) = (table.schema.pandas_metadata or {}).get("index_columns") or [{"kind": "range", "start": 0, "step": 1}]
    if isinstance(entry, str):
        return table.drop_columns([entry]), table[entry]
    start, step = entry["start"] + offset * entry["step"], entry["step"]
    return table, pa.chunked_array([np.arange(start, start + step * table.num_rows, step, dtype=np.int64)])


def with_row_index(table: pa.Table, index: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` with ``index`` as its pandas index, as ``Table.from_pandas`` stores a DataFrame whose index is
    not a plain range: ``to_pandas`` (and ``ArtifactStore.read_table``) give each row its label back. The
    pandas metadata is pandas' own, made from the table's first zero rows."""
    empty = table.slice(0, 0).to_pandas()
    empty.index = pd.Index(index.slice(0, 0).to_pandas())
    meta = pa.Table.from_pandas(empty).schema.metadata
    return table.append_column("__index_level_0__", index).replace_schema_metadata(meta)


def batches(parquet: pq.ParquetFile, batch_rows: int) -> Iterator[pa.Table]:
    for batch in parquet.iter_batches(batch_size=batch_rows):
        yield pa.Table.from_batches([batch], parquet.schema_arrow)


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How the catalog writes Parquet: zstd, and statistics (min, max, missing values) of every column but text
    ones, whose minimum and maximum cost a third of a text-heavy table's write and are read by nothing here
    (:func:`with_nulls` needs the missing values of integer and boolean columns alone)."""
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    return {"compression": "zstd",
            "write_statistics": [f.name for f in schema if not any(is_text(f.type) for is_text in text)]}


def with_nulls(parquet: pq.ParquetFile) -> set[str]:
    """The integer and boolean top-level columns of a Parquet file holding a missing value, from its row
    groups' statistics (a column without statistics is read to count)."""
    meta, out = parquet.metadata, set()
    typed = {f.name for f in parquet.schema_arrow if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)}
    for j in range(meta.num_columns):
        name = meta.schema.column(j).path.split(".")[0]
        if name not in typed:
            continue
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(j).statistics
            if stats is None or not stats.has_null_count:
                if parquet.read(columns=[name]).column(0).null_count:
                    out.add(name)
                break
            if stats.null_count:
                out.add(name)
                break
    return out
