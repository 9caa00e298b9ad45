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
from trainflow.catalog.artifacts import INGEST_REPORT, RAW
from trainflow.cluster import ComputeSettings, map_parts, on_dask
from trainflow.credentials import mask
from trainflow.errors import DataError, is_transient
from trainflow.progress import run_logger
from trainflow.rowfilter import apply_filter
from trainflow.schema import DatasetSchema
from trainflow.sources import ContentHash, is_database, is_parquet, iter_source, normalise, parquet_pieces, read_piece


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
    batches = iter_source(src, schema.name, query, batch_rows if is_parquet(src) else None, arrow=True,
                          dictionary=few_values(schema))
    tally = _Tally()
    for batch in batches:
        table = _clean(batch, schema, markers, None if is_database(src) else query)
        tally.add(table)
        yield table
    if report is not None and tally.table is not None:
        report.update(tally.report(schema, src, query))


def few_values(schema: DatasetSchema) -> list[str]:
    """The columns the schema says hold few distinct values (categories, a classification label): read from
    Parquet as dictionaries, their text is normalised once per distinct value instead of once per row."""
    return [c.name for c in schema.columns if c.type == "category" or (c.name == schema.label
                                                                       and schema.is_classification)]


class _Tally:
    """The ingest report's figures of the tables ingested, in order: rows, missing cells, content hash."""

    def __init__(self) -> None:
        self.rows = self.missing = 0
        self.digest: ContentHash | None = None
        self.table: pa.Table | None = None

    def add(self, table: pa.Table) -> None:
        self.digest = self.digest or ContentHash(table.column_names)
        self.digest.update(table)
        self.rows, self.missing = self.rows + table.num_rows, self.missing + sum(c.null_count for c in table.columns)
        self.table = table

    def report(self, schema: DatasetSchema, source: str, query: str | None) -> dict:
        table = self.table
        return {"dataset": schema.name, "source": mask(source), "query": query, "rows": self.rows,
                "columns": table.num_columns, "column_names": table.column_names,
                "dtypes": [str(t) for t in table.schema.types], "missing_cells": self.missing,
                "content_sha256": self.digest.hexdigest()}


def _clean(batch: pa.Table | pd.DataFrame, schema: DatasetSchema, markers: list[str],
           row_filter: str | None) -> pa.Table:
    """A batch as read, normalised (``sources.normalise``) and filtered, as an Arrow table."""
    table = normalise(batch, markers)
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if row_filter:
        table = apply_filter(table, row_filter, schema.name)  # parsed and checked: never evaluated as Python
    return table


def _ingest_piece(numbered: tuple[int, object], store: ArtifactStore, folder: str, schema: DatasetSchema,
                  arrow_schema: pa.Schema, markers: list[str], row_filter: str | None) -> dict:
    """On a Dask worker: read, clean and write one piece of a Parquet source as part of ``ingest/raw``."""
    number, piece = numbered
    return store.write_part(folder, number, _clean(read_piece(piece, arrow_schema, schema.name), schema, markers,
                                                   row_filter))


def _ingest_dask(store: ArtifactStore, run_id: str, schema: DatasetSchema, source: str, query: str | None,
                 markers: list[str], batch_rows: int, compute: ComputeSettings) -> tuple[ArtifactRef, dict]:
    """The ingest stage of a Parquet source on a Dask cluster: each piece (``sources.parquet_pieces``) read,
    cleaned and written as a part of the ``ingest/raw`` dataset by a worker; then the content hash over the
    parts in order here, the same as the local path's."""
    arrow_schema, pieces = parquet_pieces(source, schema.name, batch_rows)
    with store.open(run_id, RAW, parts=True) as writer:
        parts = map_parts(compute.dask_address, _ingest_piece, [(k, piece) for k, (piece, _) in enumerate(pieces)],
                          store, writer.folder, schema, arrow_schema, markers, query)
        if not sum(p["rows"] for p in parts):
            raise DataError(schema.name, f"source {mask(source)} has no rows", rule="non_empty")
        ref = writer.close(parts)
    tally = _Tally()
    for table in store.read_arrow_batches(ref, batch_rows):
        tally.add(table)
    return ref, tally.report(schema, source, query)


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
           missing_markers: list[str] | None = None, batch_rows: int | None = None,
           compute: ComputeSettings | None = None) -> ArtifactRef:
    """Prefect task: ingest the dataset and write ``ingest/raw`` and ``ingest/ingest_report``.

    A Parquet source is read, normalised and written ``batch_rows`` rows at a time (one row group each), so
    memory is bounded by a batch; with the Dask engine, by the cluster's workers, a part each (``ingest/raw`` is
    then a dataset of parts). Not cached on purpose: the source may change between runs under the same name.
    Retried, since reading a remote file or database can fail for a moment.

    Returns:
        The reference to ``ingest/raw``.
    """
    store = ArtifactStore(store_root)
    report: dict = {}
    src = source or schema.source
    if on_dask(compute) and src and is_parquet(src):
        markers = schema.missing_markers if missing_markers is None else missing_markers
        ref, report = _ingest_dask(store, run_id, schema, src, query or schema.query, markers,
                                   batch_rows or 1_000_000, compute)
    else:
        ref = store.put(run_id, RAW, ingest_batches(schema, source, query, missing_markers, batch_rows, report))
    store.put(run_id, INGEST_REPORT, pd.DataFrame([report]))
    run_logger().info("ingest: %d rows x %d columns of dataset '%s' (sha256 %s)", report["rows"],
                      report["columns"], schema.name, ref.sha256[:12])
    return ref
