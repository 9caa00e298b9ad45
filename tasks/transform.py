"""Transform: fit the preprocessing (``trainflow.features``) on the training split alone and apply it to every
split; the fitted preprocessor becomes the first step of every model's Pipeline.
"""

from __future__ import annotations

import pandas as pd
from prefect import task
from sklearn.compose import ColumnTransformer

from trainflow.cache import CONTENT
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.features import TransformSettings, as_model_input, build_preprocessor
from trainflow.modelio import dump_skops
from trainflow.progress import run_logger
from trainflow.schema import DatasetSchema


def fit_transform_splits(splits: dict[str, pd.DataFrame], schema: DatasetSchema,
                         settings: TransformSettings) -> tuple[ColumnTransformer, dict[str, pd.DataFrame]]:
    """Fit the preprocessor on ``splits['train']`` and apply it to every split: the pure transform stage.

    Returns:
        ``(preprocessor, features)``: the fitted preprocessor and, per split, the features with the label
        column appended and the original row index kept.
    """
    pre = build_preprocessor(schema, settings)
    pre.fit(as_model_input(splits["train"], schema))
    features = {}
    for name, part in splits.items():
        out = pre.transform(as_model_input(part, schema))
        out.index = part.index
        out[schema.label] = part[schema.label].to_numpy()
        features[name] = out
    return pre, features


@task(name="transform", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def transform(store_root: str, run_id: str, schema: DatasetSchema, splits: dict[str, ArtifactRef],
              settings: TransformSettings) -> dict[str, ArtifactRef]:
    """Prefect task: write ``transform/features_{split}`` and ``transform/preprocessor.skops``.

    Returns:
        References to the three feature tables and the fitted preprocessor.
    """
    store = ArtifactStore(store_root)
    frames = {name: store.read_table(ref) for name, ref in splits.items()}
    pre, features = fit_transform_splits(frames, schema, settings)
    refs = {name: store.write_table(run_id, "transform", f"features_{name}", f) for name, f in features.items()}
    run_logger().info("transform: fitted on %d training rows; %d feature columns", len(frames["train"]),
                      features["train"].shape[1])
    refs["preprocessor"] = store.write_file(run_id, "transform", "preprocessor.skops", dump_skops(pre))
    return refs
