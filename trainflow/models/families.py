"""Every model family by name: adding a family is a module with its ``Family`` and one entry here."""

from __future__ import annotations

from trainflow.models import baselines, classic, ensemble, networks
from trainflow.models.family import Family

FAMILIES: dict[str, Family] = {
    "lightgbm": classic.LIGHTGBM,
    "lightgbm_xt": classic.LIGHTGBM_XT,
    "catboost": classic.CATBOOST,
    "logistic": classic.LOGISTIC,
    "decision_tree": classic.DECISION_TREE,
    "random_forest": classic.RANDOM_FOREST,
    "extra_trees": classic.EXTRA_TREES,
    "svm": classic.SVM,
    "mlp": networks.MLP,
    "cnn": networks.CNN,
    "transformer": networks.TRANSFORMER,
    "gru": networks.GRU,
    "tfidf_logistic": baselines.TFIDF_LOGISTIC,
    "seasonal_naive": baselines.SEASONAL_NAIVE,
    "ensemble": ensemble.ENSEMBLE,  # made by the train stage from the others' out-of-fold predictions
}
