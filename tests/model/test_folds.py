"""Cross-validation fits the preprocessing inside each fold: the held-out rows are scored with imputation,
clipping, scaling and category codes learnt without them (``TransformSettings.in_folds``)."""

import numpy as np
import pandas as pd

from tasks.split import SplitSettings, split_data
from tasks.train import _folds, train_models
from tasks.transform import fit_transform_splits
from trainflow.folds import fold_features
from trainflow.features import TransformSettings
from trainflow.models.settings import TrainSettings
from trainflow.models.fit import fit_family


def test_the_out_of_fold_predictions_come_from_each_folds_own_preprocessing(adult_raw, adult_schema) -> None:
    schema = adult_schema
    splits, _ = split_data(adult_raw.head(3000), schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    rows = pd.concat([splits["train"], splits["validation"]], ignore_index=True)
    settings = TrainSettings(families=["logistic"], cv_folds=3)

    def oof(transform: TransformSettings) -> np.ndarray:
        meta = train_models(schema, feats["train"], feats["validation"], pre, transform, settings, 0, rows=rows)[1]
        return meta["oof"].sort_values("row")["proba_>50K"].to_numpy()

    inside, shared = oof(TransformSettings()), oof(TransformSettings(in_folds=False))
    data = pd.concat([feats["train"], feats["validation"]], ignore_index=True)
    folds = _folds(schema, data, 3, 0)
    by_hand = np.empty(len(data))
    for (fit_rows, held_rows), (_, va) in zip(fold_features(rows, folds, schema, TransformSettings()), folds):
        info = fit_family("logistic", schema, fit_rows, held_rows, TransformSettings(), settings, 0)[1]
        by_hand[va] = info["validation_scores"][:, 1]
    np.testing.assert_allclose(inside, by_hand)
    assert not np.allclose(inside, shared)  # off: the training split's preprocessor, fitted with held-out rows
    assert np.corrcoef(inside, shared)[0, 1] > 0.99  # the same model, scored a little differently
