"""Ingest: read a dataset from its source, normalise obvious text noise, record where it came from.

The sources themselves (files, databases, bundled sets) are read by ``trainflow.sources``. Nothing is cast
here: types are validate's business, so a wrong type is reported rather than silently coerced.
"""

from __future__ import annotations

import pandas as pd
from prefect import task

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.credentials import mask
from trainflow.errors import DataError, is_transient
from trainflow.progress import run_logger
from trainflow.rowfilter import apply_filter
from trainflow.schema import DatasetSchema
from trainflow.sources import content_hash, is_database, normalise, read_source


def ingest_data(schema: DatasetSchema, source: str | None = None, query: str | None = None,
                missing_markers: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and normalise a dataset: the pure part of the ingest stage.

    Args:
        schema: The dataset's schema (gives the default source and missing markers).
        source: Overrides the schema's source.
        query: Overrides the schema's query: SQL for a database, a row filter otherwise (``trainflow.rowfilter``:
            columns, literals, comparisons, ``in``, ``and``/``or``/``not``, ``.isna()``; never evaluated).
        missing_markers: Overrides the schema's missing markers.

    Returns:
        ``(raw, report)``: the normalised rows and a one-row report (source, rows, columns, content hash).

    Raises:
        DataError: The source cannot be read or is empty.
    """
    src = source or schema.source
    if not src:
        raise DataError(schema.name, "no source given and the schema names none", rule="source")
    markers = schema.missing_markers if missing_markers is None else missing_markers
    query = query or schema.query
    raw = normalise(read_source(src, schema.name, query), markers)
    if query and not is_database(src):
        raw = apply_filter(raw, query, schema.name)  # parsed and checked: never evaluated as Python
    report = pd.DataFrame([{
        "dataset": schema.name, "source": mask(src), "query": query, "rows": len(raw),
        "columns": len(raw.columns), "column_names": list(map(str, raw.columns)),
        "dtypes": [str(t) for t in raw.dtypes], "missing_cells": int(raw.isna().sum().sum()),
        "content_sha256": content_hash(raw),
    }])
    return raw, report


@task(name="ingest", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=is_transient)
def ingest(store_root: str, run_id: str, schema: DatasetSchema, source: str | None = None, query: str | None = None,
           missing_markers: list[str] | None = None) -> ArtifactRef:
    """Prefect task: ingest the dataset and write ``ingest/raw`` and ``ingest/ingest_report``.

    Not cached on purpose: the source may change between runs under the same name. Retried,
    since reading a remote file or database can fail for a moment.

    Returns:
        The reference to ``ingest/raw``.
    """
    store = ArtifactStore(store_root)
    raw, report = ingest_data(schema, source, query, missing_markers)
    store.write_table(run_id, "ingest", "ingest_report", report)
    ref = store.write_table(run_id, "ingest", "raw", raw)
    run_logger().info("ingest: %d rows x %d columns of dataset '%s' (sha256 %s)", len(raw), raw.shape[1], schema.name,
                      ref.sha256[:12])
    return ref
