"""LightGBM trained across a Dask cluster's workers (lightgbm.dask on a 2-worker LocalCluster), against the same
fit in this process."""

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from tasks.split import SplitSettings, split_data
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings
from trainflow.modelio import LightGBMClassifierModel, bundle_files, load_bundle
from trainflow.models import TrainSettings, fit_family
from trainflow.schema import DatasetSchema


def test_lightgbm_across_a_local_cluster_scores_as_it_does_here(adult_raw: pd.DataFrame,
                                                                adult_schema: DatasetSchema) -> None:
    splits, _ = split_data(adult_raw, adult_schema, SplitSettings(), seed=0)
    _, features = fit_transform_splits(splits, adult_schema, TransformSettings())
    test_x, test_y = features["test"].drop(columns=["income"]), features["test"]["income"] == ">50K"
    fitted = {}
    for where in (None, "local"):
        settings = TrainSettings(lightgbm_max_rounds=300, lightgbm_learning_rate=0.05, dask_address=where)
        fitted[where] = fit_family("lightgbm", adult_schema, features["train"], features["validation"],
                                   TransformSettings(), settings, 0)
    (here, here_info, _), (cluster, info, history) = fitted[None], fitted["local"]
    assert isinstance(cluster[-1], LightGBMClassifierModel) and list(cluster[-1].classes_) == ["<=50K", ">50K"]
    assert 1 <= info["best_iteration"] <= 300 and history["iteration"].max() == 300  # every round, the best kept
    assert abs(info["metrics"]["roc_auc"] - here_info["metrics"]["roc_auc"]) < 0.01  # validation rows
    scores = cluster.predict_proba(test_x)[:, 1]
    assert abs(roc_auc_score(test_y, scores) - roc_auc_score(test_y, here.predict_proba(test_x)[:, 1])) < 0.01
    loaded, _ = load_bundle(bundle_files(cluster, {"family": "lightgbm"}))  # as the registry stores and loads it
    np.testing.assert_allclose(loaded.predict_proba(test_x)[:, 1], scores)
