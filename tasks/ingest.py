"""Ingest: read a dataset from its source, normalise obvious text noise, record where it came from.

The sources themselves (files, databases, bundled sets) are read by ``trainflow.sources``. Nothing is cast
here: types are validate's business, so a wrong type is reported rather than silently coerced.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
from prefect import task

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.credentials import mask
from trainflow.errors import DataError, is_transient
from trainflow.progress import run_logger
from trainflow.rowfilter import apply_filter
from trainflow.schema import DatasetSchema
from trainflow.sources import ContentHash, is_database, is_parquet, iter_source, normalise


def ingest_batches(schema: DatasetSchema, source: str | None = None, query: str | None = None,
                   missing_markers: list[str] | None = None, batch_rows: int | None = None,
                   report: dict | None = None) -> Iterator[pa.Table]:
    """Read and normalise a dataset as Arrow tables of at most ``batch_rows`` rows: the pure part of the ingest
    stage. Only a Parquet source is read in batches (its types are fixed by the file); the others are one table.

    Args:
        schema: The dataset's schema (gives the default source and missing markers).
        source: Overrides the schema's source.
        query: Overrides the schema's query: SQL for a database, a row filter otherwise (``trainflow.rowfilter``:
            columns, literals, comparisons, ``in``, ``and``/``or``/``not``, ``.isna()``; never evaluated).
        missing_markers: Overrides the schema's missing markers.
        batch_rows: Rows per batch for a Parquet source; None: everything at once.
        report: Filled, once the last batch is out, with the one-row report's fields (source, rows, columns,
            missing cells, content hash).

    Raises:
        DataError: The source cannot be read or is empty.
    """
    src = source or schema.source
    if not src:
        raise DataError(schema.name, "no source given and the schema names none", rule="source")
    markers = schema.missing_markers if missing_markers is None else missing_markers
    query = query or schema.query
    batches = iter_source(src, schema.name, query, batch_rows if is_parquet(src) else None, arrow=True)
    rows = missing = 0
    digest = table = None
    for batch in batches:
        table = normalise(batch, markers)
        if not isinstance(table, pa.Table):
            table = pa.Table.from_pandas(table, preserve_index=False)
        if query and not is_database(src):
            table = apply_filter(table, query, schema.name)  # parsed and checked: never evaluated as Python
        digest = digest or ContentHash(table.column_names)
        digest.update(table)
        rows, missing = rows + table.num_rows, missing + sum(c.null_count for c in table.columns)
        yield table
    if report is not None and table is not None:
        report.update({"dataset": schema.name, "source": mask(src), "query": query, "rows": rows,
                       "columns": table.num_columns, "column_names": table.column_names,
                       "dtypes": [str(t) for t in table.schema.types], "missing_cells": missing,
                       "content_sha256": digest.hexdigest()})


def ingest_table(schema: DatasetSchema, source: str | None = None, query: str | None = None,
                 missing_markers: list[str] | None = None) -> tuple[pa.Table, pd.DataFrame]:
    """All of :func:`ingest_batches` as one Arrow table, and the one-row report."""
    report: dict = {}
    tables = list(ingest_batches(schema, source, query, missing_markers, report=report))
    return (tables[0] if len(tables) == 1 else pa.concat_tables(tables)), pd.DataFrame([report])


def ingest_data(schema: DatasetSchema, source: str | None = None, query: str | None = None,
                missing_markers: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`ingest_table` with the rows as a DataFrame (as the ingest stage's artifact reads back)."""
    raw, report = ingest_table(schema, source, query, missing_markers)
    return raw.to_pandas(), report


@task(name="ingest", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=is_transient)
def ingest(store_root: str, run_id: str, schema: DatasetSchema, source: str | None = None, query: str | None = None,
           missing_markers: list[str] | None = None, batch_rows: int | None = None) -> ArtifactRef:
    """Prefect task: ingest the dataset and write ``ingest/raw`` and ``ingest/ingest_report``.

    A Parquet source is read, normalised and written ``batch_rows`` rows at a time (one row group each), so
    memory is bounded by a batch. Not cached on purpose: the source may change between runs under the same name.
    Retried, since reading a remote file or database can fail for a moment.

    Returns:
        The reference to ``ingest/raw``.
    """
    store = ArtifactStore(store_root)
    report: dict = {}
    ref = store.write_table_batches(run_id, "ingest", "raw",
                                    ingest_batches(schema, source, query, missing_markers, batch_rows, report))
    store.write_table(run_id, "ingest", "ingest_report", pd.DataFrame([report]))
    run_logger().info("ingest: %d rows x %d columns of dataset '%s' (sha256 %s)", report["rows"],
                      report["columns"], schema.name, ref.sha256[:12])
    return ref
