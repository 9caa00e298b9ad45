"""Cross-validation folds and each fold's features: shared by tuning, training and evaluation, which must
score every family on the same folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.features import TransformSettings, features_of, fit_features
from trainflow.schema import DatasetSchema


def cv_folds(schema: DatasetSchema, data: pd.DataFrame, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k cross-validation folds of ``data`` as row positions: forward chaining in time order when the schema
    names a time column (a fold only trains on rows older than the rows it scores), stratified on the label
    for classification, shuffled otherwise."""
    time_col = schema.role_column("time")
    if time_col and time_col in data:
        order = np.argsort(data[time_col].to_numpy(), kind="stable")
        return [(order[a], order[b]) for a, b in TimeSeriesSplit(k).split(order)]
    if schema.is_classification:
        y = data[schema.label].to_numpy().astype(str)
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(data, y))
    return list(KFold(k, shuffle=True, random_state=seed).split(data))


def fold_features(rows: pd.DataFrame, folds: list[tuple[np.ndarray, np.ndarray]], schema: DatasetSchema,
                  settings: TransformSettings) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Each cross-validation fold's training and held-out features, by a preprocessor fitted on that fold's
    training rows alone (``rows``: the raw rows the folds index by position), label appended, index 0..n-1."""
    out = []
    for tr, va in folds:
        pre, train = fit_features(rows.iloc[tr], schema, settings)
        out.append((train.reset_index(drop=True), features_of(pre, rows.iloc[va], schema).reset_index(drop=True)))
    return out


def rows_of(store: ArtifactStore, features: dict[str, ArtifactRef], schema: DatasetSchema) -> pd.DataFrame | None:
    """The raw training and validation rows behind ``features`` (``rows_train``, ``rows_validation``: the split
    stage's tables, which the transform stage passes on), in the order of the features; None without them."""
    if "rows_train" not in features or "rows_validation" not in features:
        return None
    return pd.concat([store.read_table(features[f"rows_{n}"], dictionary=schema.categorical_features)
                      for n in ("train", "validation")], ignore_index=True)
