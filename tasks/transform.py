"""Transform: fit the preprocessing (``trainflow.features``) on the training split alone and apply it to every
split; the fitted preprocessor becomes the first step of every model's Pipeline.
"""

from __future__ import annotations

import pandas as pd
from prefect import task
from sklearn.compose import ColumnTransformer

from trainflow.cache import CONTENT
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import FEATURES, PREPROCESSOR
from trainflow.cluster import ComputeSettings, map_parts, on_dask
from trainflow.features import TransformSettings, as_model_input, build_preprocessor, features_of, fit_features
from trainflow.modelio import dump_skops
from trainflow.progress import run_logger
from trainflow.schema import DatasetSchema


def fit_preprocessor(train: pd.DataFrame, schema: DatasetSchema, settings: TransformSettings) -> ColumnTransformer:
    """The preprocessor (``trainflow.features.build_preprocessor``) fitted on training rows."""
    return build_preprocessor(schema, settings).fit(as_model_input(train, schema))


def fit_transform_splits(splits: dict[str, pd.DataFrame], schema: DatasetSchema,
                         settings: TransformSettings) -> tuple[ColumnTransformer, dict[str, pd.DataFrame]]:
    """Fit the preprocessor on ``splits['train']`` and apply it to every split: the pure transform stage.

    Returns:
        ``(preprocessor, features)``: the fitted preprocessor and, per split, the features with the label
        column appended and the original row index kept.
    """
    pre, train = fit_features(splits["train"], schema, settings)
    return pre, {name: train if name == "train" else features_of(pre, part, schema) for name, part in splits.items()}


def _transform_part(share: tuple[int, dict, int], store: ArtifactStore, data: ArtifactRef, pre: ColumnTransformer,
                    schema: DatasetSchema, folder: str, types: dict) -> dict:
    """On a Dask worker: one part of a split, transformed and written as a part of its features dataset."""
    rows = store.read_share(data, share, types, schema.categorical_features)
    return store.write_part(folder, share[0], features_of(pre, rows, schema))


def _transform_dask(store: ArtifactStore, run_id: str, name: str, data: ArtifactRef, pre: ColumnTransformer,
                    schema: DatasetSchema, compute: ComputeSettings) -> ArtifactRef:
    """``transform/features_{name}`` of one split on a Dask cluster: each part transformed by a worker (the
    fitted preprocessor sent to each worker once)."""
    with store.open(run_id, FEATURES.of(split=name), parts=True) as writer:
        return writer.close(map_parts(compute.dask_address, _transform_part, store.shares(data), store, data, pre,
                                      schema, writer.folder, store.pandas_types(data)))


@task(name="transform", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def transform(store_root: str, run_id: str, schema: DatasetSchema, splits: dict[str, ArtifactRef],
              settings: TransformSettings, batch_rows: int = 1_000_000,
              compute: ComputeSettings | None = None) -> dict[str, ArtifactRef]:
    """Prefect task: write ``transform/features_{split}`` and ``transform/preprocessor.skops``.

    The preprocessor is fitted on the training split, whose features come out of the fit and are written
    ``batch_rows`` rows to a row group; the other splits are read, transformed and written ``batch_rows`` rows
    at a time (memory: the training split, its features and one batch); with the Dask engine, every split by
    the cluster's workers, a part each.

    Returns:
        References to the three feature tables and the fitted preprocessor, and (``rows_train``,
        ``rows_validation``) to the training and validation rows they came from, for the preprocessing that
        cross-validation fits inside each fold (``TransformSettings.in_folds``).
    """
    store = ArtifactStore(store_root)
    codes = schema.categorical_features  # read as Parquet dictionaries: the coder counts and maps their codes
    if on_dask(compute):
        columns = [c.name for c in schema.features]
        pre = fit_preprocessor(store.read_table(splits["train"], columns, codes), schema, settings)
        refs = {name: _transform_dask(store, run_id, name, ref, pre, schema, compute) for name, ref in splits.items()}
    else:
        pre, train = fit_features(store.read_table(splits["train"], dictionary=codes), schema, settings)
        refs = {"train": store.put(run_id, FEATURES.of(split="train"),
                                   (train.iloc[i:i + batch_rows] for i in range(0, max(len(train), 1), batch_rows)))}
        del train
        refs |= {name: store.put(run_id, FEATURES.of(split=name),
                                 (features_of(pre, part, schema)
                                  for part in store.read_table_batches(ref, batch_rows, dictionary=codes)))
                 for name, ref in splits.items() if name != "train"}
    run_logger().info("transform: fitted on %d training rows; %d feature columns", splits["train"].rows,
                      len(pre.get_feature_names_out()) + 1)
    refs["preprocessor"] = store.put(run_id, PREPROCESSOR, dump_skops(pre))
    refs |= {f"rows_{n}": splits[n] for n in ("train", "validation") if n in splits}
    return refs
