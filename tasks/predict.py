"""Predict: score raw rows with a registered model's own fitted pipeline, the way serving does.

Batch inference reads the source in batches, validates each against the dataset's suite (without the
label's rules), quarantines the rows that break row-level error rules, and scores the rest.

Rows are normalised as ingest does, the schema's feature columns are checked, and categories the
model never saw are handled as the schema says (``unknown_categories``): ``ignore`` encodes them as
unknown and reports them, ``error`` stops with the column and the values.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task
from pydantic import Field
from sklearn.pipeline import Pipeline

from tasks.validate import ValidationEngine, validate_data
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import PREDICTIONS, PREDICT_QUARANTINE, PREDICT_REPORT, PREDICT_VALIDATION_RESULTS
from trainflow.cluster import ComputeSettings, dask_client, map_parts, on_dask
from trainflow.credentials import mask
from trainflow.errors import ArtifactError, DataError, RegistryError, ValidationFailed, clipped
from trainflow.features import as_model_input, known_categories
from trainflow.forms import FormModel
from trainflow.metrics import decide, predict_scores, threshold_of
from trainflow.names import ModelName
from trainflow.progress import run_logger
from trainflow.registry import Registry
from trainflow.schema import DatasetSchema
from trainflow.sources import is_parquet, iter_source, normalise, normalise_row, parquet_pieces, read_piece

UNSEEN_KEPT = 100  # unseen categories a report keeps per column (sorted): a batch may hold millions
UNSEEN_CHARS = 80  # characters kept of each


def unseen_categories(pipeline: Pipeline, schema: DatasetSchema, x: pd.DataFrame) -> dict[str, list[str]]:
    """Values of each categorical column that training never saw (missing values excluded), as reported: the
    first ``UNSEEN_KEPT`` in sorted order, each clipped to ``UNSEEN_CHARS`` (a 50 MB cell is a short line)."""
    out = {}
    for col, known in known_categories(pipeline, schema).items():
        new = sorted({str(v) for v in x[col].dropna().unique()} - known)  # the distinct values only, as text
        if new:
            out[col] = reported(new)
    return out


def reported(values: Iterable[str]) -> list[str]:
    """Unseen categories as a report keeps them: sorted, at most ``UNSEEN_KEPT``, each clipped."""
    return sorted({clipped(v, UNSEEN_CHARS) for v in values})[:UNSEEN_KEPT]


def _require_features(schema: DatasetSchema, columns: Iterable[str]) -> None:
    missing = [c.name for c in schema.features if c.name not in columns]
    if missing:
        raise DataError(schema.name, f"feature column(s) {missing} missing from the rows to score",
                        column=missing[0], rule="expect_column_to_exist")


def _refuse_unseen(schema: DatasetSchema, unseen: dict[str, list[str]]) -> None:
    """The schema's ``unknown_categories: error``: the first column with categories training never saw."""
    if unseen and schema.unknown_categories == "error":
        col, values = next(iter(unseen.items()))
        raise DataError(schema.name, f"categories never seen in training: {values[:10]} "
                                     f"(the schema sets unknown_categories: error)", column=col,
                        rule="known_categories")


def predict_frame(pipeline: Pipeline, schema: DatasetSchema, df: pd.DataFrame,
                  normalised: bool = False, scorer: Any = None,
                  threshold: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Predictions (and class probabilities) for raw rows, indexed like ``df``.

    Args:
        pipeline: The native serving pipeline (preprocessing + model): its categories are the known ones.
        scorer: What scores the rows, when not ``pipeline``: a serving variant (``trainflow.export``) with the
            same prediction API; the checks before scoring are the same either way.
        schema: The dataset's schema.
        df: Raw rows (the label, if present, is ignored).
        normalised: The rows already went through ingest's normalisation.
        threshold: A binary model's decision threshold (its metadata's, ``trainflow.metrics.threshold_of``): the
            positive class is predicted where its probability reaches it; None: the most probable class.

    Returns:
        ``(predictions, report)``; the report lists unseen categories per column.

    Raises:
        DataError: A feature column is missing, or an unseen category meets ``unknown_categories: error``.
    """
    clean = df if normalised else normalise(df, schema.missing_markers)
    _require_features(schema, clean.columns)
    x = as_model_input(clean, schema)
    unseen = unseen_categories(pipeline, schema, x)
    _refuse_unseen(schema, unseen)
    model = pipeline if scorer is None else scorer
    scores = predict_scores(model, x, schema.task)
    out = pd.DataFrame(index=df.index)
    if schema.task == "regression":
        out["prediction"] = scores
    else:
        classes = np.asarray(model.classes_).astype(str)
        out["prediction"] = decide(scores, classes, schema.positive_class, threshold)
        for i, c in enumerate(classes):
            out[f"proba_{c}"] = scores[:, i]
    return out, {"unseen_categories": unseen}


def predict_records(pipeline: Pipeline, schema: DatasetSchema, rows: list[dict[str, Any]], scorer: Any = None,
                    threshold: float | None = None) -> tuple[list[dict[str, Any]], dict]:
    """``predict_frame`` for rows given as plain Python mappings (online scoring's JSON rows, typed by its row
    model): the same checks and predictions, as one dict a row. An ONNX serving variant scores them without a
    DataFrame (pandas' per-call costs were most of scoring one row); any other model through ``predict_frame``.

    Raises:
        DataError: As ``predict_frame``.
    """
    if not hasattr(scorer, "record_feeds"):  # not an ONNX serving variant (trainflow.export.OnnxModel)
        frame, report = predict_frame(pipeline, schema, pd.DataFrame(rows), scorer=scorer, threshold=threshold)
        return frame.to_dict("records"), report
    clean = [normalise_row(row, schema.missing_markers) for row in rows]
    for row in clean:
        _require_features(schema, row)
    unseen = {}
    for column, known in scorer.known_categories.items():
        new = {str(row[column]) for row in clean if row.get(column) is not None} - known
        if new:
            unseen[column] = reported(new)
    _refuse_unseen(schema, unseen)
    scores = predict_scores(scorer, clean, schema.task)
    if schema.task == "regression":
        return [{"prediction": value} for value in scores.tolist()], {"unseen_categories": unseen}
    classes = np.asarray(scorer.classes_).astype(str)
    decided = decide(scores, classes, schema.positive_class, threshold).tolist()
    names = [f"proba_{c}" for c in classes]
    return ([{"prediction": label, **dict(zip(names, probabilities))}
             for label, probabilities in zip(decided, scores.tolist())], {"unseen_categories": unseen})


class PredictSettings(FormModel):
    """Which registered model scores the rows, and how."""

    model_name: ModelName | None = Field(None, description="registered model; empty: the dataset name")
    version: int | None = Field(None, description="model version; empty: the version the alias points to")
    alias: str = Field("production", description="alias to use when no version is given")
    registry_url: str | None = Field(None, description="SQLAlchemy URL of the registry; empty: data/registry")
    batch_rows: int = Field(250_000, ge=1, description="rows read, validated and scored at a time (bounds memory)")
    max_quarantine_fraction: float = Field(0.05, ge=0, le=1, description="fail a batch above this share of "
                                                                          "quarantined rows")
    validation_engine: ValidationEngine = Field("arrow", description="arrow: each batch's rules computed with "
                                                                     "pyarrow.compute (GX's results); gx: by Great "
                                                                     "Expectations")
    variant: Literal["serving", "native"] = Field(
        "serving", description="serving: the variant the compress stage chose for the version (ONNX Runtime where "
                               "it passed the parity gate), the native model when there is none or it cannot load; "
                               "native: always the model as trained")


@functools.lru_cache(maxsize=4)
def scoring_model(registry_url: str | None, name: str, version: int,
                  variant: str) -> tuple[Any, Any, str, float | None]:
    """``(pipeline, scorer, scored_by, threshold)`` of a registered version, loaded once per process (a Dask
    worker keeps it for every batch it scores): the native pipeline, with ``variant="serving"`` the variant
    compress chose when it is not the native model and loads (None and ``"native"`` otherwise), and the
    model's decision threshold (None: the most probable class)."""
    registry = Registry(registry_url, must_exist=True)
    try:
        pipeline, meta = registry.load(name, version)
        threshold = threshold_of(meta)
        if variant == "serving":
            try:
                served, meta = registry.load(name, version, variant="serving")
                if meta["variant"] != "native":
                    return pipeline, served, meta["variant"], threshold
            except (RegistryError, ArtifactError) as exc:  # the native model is the fallback
                run_logger().warning("predict: %s v%d: the serving variant cannot be used (%s); scoring with the "
                                     "native model", name, version, exc)
        return pipeline, None, "native", threshold
    finally:
        registry.close()


@dataclass
class ScoredBatch:
    """What scoring one batch gave: predictions (None when no row was left), the validation results, the
    quarantined rows, error-severity failures, rows in, unseen categories."""

    predictions: pd.DataFrame | None
    results: pd.DataFrame
    quarantine: pd.DataFrame
    errors: list
    rows_in: int
    unseen: dict[str, list[str]]
    part: dict | None = None  # scored on a worker that wrote its predictions itself: the part it wrote


def score_batch(batch: pd.DataFrame, i: int, schema: DatasetSchema, settings: PredictSettings, name: str,
                version: int, scored_at: dt.datetime) -> ScoredBatch:
    """Normalise, validate (quarantine on), and score batch ``i`` of a source: the per-batch work of batch
    inference, the same in this process and on a Dask worker."""
    pipeline, scorer, scored_by, threshold = scoring_model(settings.registry_url, name, version, settings.variant)
    clean = normalise(batch, schema.missing_markers)
    outcome = validate_data(clean, schema.for_scoring(), quarantine=True,
                            max_quarantine_fraction=settings.max_quarantine_fraction,
                            engine=settings.validation_engine)
    scored = ScoredBatch(None, outcome.results.assign(batch=i), outcome.quarantine.assign(batch=i), outcome.errors,
                         len(clean), {})
    if outcome.errors or outcome.valid.empty:
        return scored
    preds, report = predict_frame(pipeline, schema, outcome.valid, normalised=True, scorer=scorer,
                                  threshold=threshold)
    id_col = schema.role_column("id")
    row_id = outcome.valid[id_col] if id_col else pd.Series(outcome.valid.index, index=outcome.valid.index)
    preds.insert(0, "row_id", row_id.to_numpy())
    preds["model_name"], preds["model_version"], preds["scored_at"] = name, version, scored_at
    preds["scored_by"] = scored_by
    scored.predictions, scored.unseen = preds.reset_index(drop=True), report["unseen_categories"]
    return scored


def _scored_in_order(batches: Iterator[pd.DataFrame], score: Any,
                     compute: ComputeSettings | None) -> Iterator[ScoredBatch]:
    """``score(batch, i)`` of every batch, in order: here, or with the Dask engine on the cluster's workers
    (at most two batches per worker in flight, so the batches read ahead stay bounded)."""
    if not on_dask(compute):
        yield from (score(batch, i) for i, batch in enumerate(batches))
        return
    client = dask_client(compute.dask_address)
    in_flight: deque = deque()
    limit = 2 * max(1, len(client.scheduler_info()["workers"]))
    try:
        for i, batch in enumerate(batches):
            in_flight.append(client.submit(score, batch, i, pure=False))
            if len(in_flight) >= limit:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        client.cancel(list(in_flight))  # a failed batch: the rest are not scored for nothing


def _score_piece(item: tuple[int, Any, int], dataset: str, arrow_schema: Any, score: Any, store: ArtifactStore,
                 folder: str) -> ScoredBatch:
    """On a Dask worker: read one piece of a Parquet source (``sources.parquet_pieces``; its rows labelled from
    its first row in the source), score it as a batch, and write its predictions as a part of ``folder``."""
    number, piece, offset = item
    batch = read_piece(piece, arrow_schema, dataset).to_pandas()
    batch.index = pd.RangeIndex(offset, offset + len(batch))
    scored = score(batch, number)
    if scored.predictions is not None:
        rows = pa.Table.from_pandas(scored.predictions, preserve_index=False)  # its row ids are a column
        scored.part, scored.predictions = store.write_part(folder, number, rows), None
    return scored


def _score_pieces(store: ArtifactStore, run_id: str, src: str, schema: DatasetSchema, score: Any,
                  settings: PredictSettings, compute: ComputeSettings, tally: Any) -> ArtifactRef:
    """Batch inference of a Parquet source on a Dask cluster: each worker reads the pieces it scores from the
    source and writes their predictions as parts of ``predict/predictions`` (nothing passes through here but
    each batch's validation results and counts, given to ``tally`` in order)."""
    arrow_schema, pieces = parquet_pieces(src, schema.name, settings.batch_rows)
    offsets = np.cumsum([0] + [rows for _, rows in pieces])
    items = [(k, piece, int(offsets[k])) for k, (piece, _) in enumerate(pieces)]
    with store.open(run_id, PREDICTIONS, parts=True) as writer:
        scored = map_parts(compute.dask_address, _score_piece, items, schema.name, arrow_schema, score, store,
                           writer.folder)
        for batch in scored:
            tally(batch)
        return writer.close([batch.part for batch in scored if batch.part is not None])


@task(name="predict")
def predict(store_root: str, run_id: str, schema: DatasetSchema, source: str | None, query: str | None,
            settings: PredictSettings, compute: ComputeSettings | None = None) -> dict[str, Any]:
    """Prefect task: score a batch source with a registered model; writes ``predict/predictions`` (row id,
    prediction, class probabilities, model name and version, time), ``predict/validation_results``,
    ``predict/quarantine`` (rows set aside, with the rule) and ``predict/predict_report``.

    Reads, validates and scores ``batch_rows`` rows at a time, so memory is bounded by the batch; with the
    Dask engine (``compute``) the batches are validated and scored on a Dask cluster's workers, which read a Parquet
    source's pieces themselves and write the predictions as parts (``predict/predictions`` is then a dataset:
    a folder any Parquet reader reads).

    Returns:
        References and counts: predictions, rows scored and quarantined, model version, unseen categories.

    Raises:
        DataError: The source is unreadable, or a batch breaks an error-severity rule that quarantine cannot
            handle; the validation results are written first and no predictions file appears.
    """
    store = ArtifactStore(store_root)
    name = settings.model_name or schema.name
    registry = Registry(settings.registry_url, must_exist=True)
    try:
        version = registry.resolve(name, settings.version, settings.alias)
    finally:
        registry.close()
    scored_by = scoring_model(settings.registry_url, name, version, settings.variant)[2]
    scored_at = dt.datetime.now(dt.UTC)
    results, quarantined, unseen, counts = [], [], {}, {"rows_in": 0, "rows_scored": 0, "rows_quarantined": 0}
    src = source or schema.source
    score = functools.partial(score_batch, schema=schema, settings=settings, name=name, version=version,
                              scored_at=scored_at)

    def tally(batch: ScoredBatch) -> None:
        results.append(batch.results)
        if batch.errors:
            raise ValidationFailed(schema.name, batch.errors, f"{store.run_uri(run_id)}/predict/"
                                                              "validation_results.parquet")
        counts["rows_in"] += batch.rows_in
        if len(batch.quarantine):
            quarantined.append(batch.quarantine)
            counts["rows_quarantined"] += batch.quarantine.index.nunique()
        for col, values in batch.unseen.items():
            unseen[col] = reported([*unseen.get(col, []), *values])
        if batch.part is not None or batch.predictions is not None:
            counts["rows_scored"] += batch.part["rows"] if batch.part else len(batch.predictions)

    def scored_batches() -> Iterator[pd.DataFrame]:
        batches = iter_source(src, schema.name, query, settings.batch_rows)
        for batch in _scored_in_order(batches, score, compute):
            tally(batch)
            if batch.predictions is not None:
                yield batch.predictions

    try:
        if on_dask(compute) and is_parquet(src) and not query:
            predictions = _score_pieces(store, run_id, src, schema, score, settings, compute, tally)
        else:
            predictions = store.put(run_id, PREDICTIONS, scored_batches())
    finally:
        if results:
            store.put(run_id, PREDICT_VALIDATION_RESULTS, pd.concat(results, ignore_index=True))
        if quarantined:
            store.put(run_id, PREDICT_QUARANTINE, pd.concat(quarantined))
    summary = {**counts, "model_name": name, "model_version": version, "scored_by": scored_by,
               "unseen_categories": unseen}
    store.put(run_id, PREDICT_REPORT, pd.DataFrame([{
        **{k: v for k, v in summary.items() if k != "unseen_categories"}, "source": mask(src),
        "unseen_categories": json.dumps(unseen), "scored_at": scored_at}]))
    run_logger().info("predict: %s v%d (%s) scored %d of %d rows, %d quarantined%s", name, version, scored_by,
                      counts["rows_scored"],
                      counts["rows_in"], counts["rows_quarantined"],
                      f"; unseen categories in {', '.join(unseen)}" if unseen else "")
    return {**summary, "predictions": predictions}
