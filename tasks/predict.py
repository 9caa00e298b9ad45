"""Predict: score raw rows with a model's own fitted pipeline, the way serving does.

Rows are normalised as ingest does, the schema's feature columns are checked, and categories the
model never saw are handled as the schema says (``unknown_categories``): ``ignore`` encodes them as
unknown and reports them, ``error`` stops with the column and the values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tasks.errors import DataError
from tasks.ingest import normalise
from tasks.schema import DatasetSchema
from tasks.train import predict_scores
from tasks.transform import as_model_input


def known_categories(pipeline: Pipeline, schema: DatasetSchema) -> dict[str, set[str]]:
    """The categories the pipeline's preprocessor saw in training, per categorical column."""
    codes = pipeline.named_steps["preprocess"].named_transformers_["cat"].named_steps["codes"]
    return {col: {str(v) for v in (*frequent, *rare)} for col, frequent, rare
            in zip(schema.categorical_features, codes.categories_, codes.infrequent_categories_)}


def unseen_categories(pipeline: Pipeline, schema: DatasetSchema, x: pd.DataFrame) -> dict[str, list[str]]:
    """Values of each categorical column that training never saw (missing values excluded)."""
    out = {}
    for col, known in known_categories(pipeline, schema).items():
        values = x[col].dropna().astype(str)
        new = sorted(set(values.unique()) - known)
        if new:
            out[col] = new
    return out


def predict_frame(pipeline: Pipeline, schema: DatasetSchema, df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Predictions (and class probabilities) for raw rows, indexed like ``df``.

    Returns:
        ``(predictions, report)``; the report lists unseen categories per column.

    Raises:
        DataError: A feature column is missing, or an unseen category meets ``unknown_categories: error``.
    """
    clean = normalise(df, schema.missing_markers)
    missing = [c.name for c in schema.features if c.name not in clean.columns]
    if missing:
        raise DataError(schema.name, f"feature column(s) {missing} missing from the rows to score",
                        column=missing[0], rule="expect_column_to_exist")
    x = as_model_input(clean, schema)
    unseen = unseen_categories(pipeline, schema, x)
    if unseen and schema.unknown_categories == "error":
        col, values = next(iter(unseen.items()))
        raise DataError(schema.name, f"categories never seen in training: {values[:10]} "
                                     f"(the schema sets unknown_categories: error)", column=col,
                        rule="known_categories")
    scores = predict_scores(pipeline, x, schema.task)
    out = pd.DataFrame(index=df.index)
    if schema.task == "regression":
        out["prediction"] = scores
    else:
        classes = np.asarray(pipeline.classes_).astype(str)
        out["prediction"] = classes[np.argmax(scores, axis=1)]
        for i, c in enumerate(classes):
            out[f"proba_{c}"] = scores[:, i]
    return out, {"unseen_categories": unseen}
