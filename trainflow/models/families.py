"""Every model family by name: adding a family is a module with its ``Family`` and one entry here."""

from __future__ import annotations

from trainflow.models import baselines, classic, networks
from trainflow.models.family import Family

FAMILIES: dict[str, Family] = {
    "lightgbm": classic.LIGHTGBM,
    "logistic": classic.LOGISTIC,
    "decision_tree": classic.DECISION_TREE,
    "random_forest": classic.RANDOM_FOREST,
    "svm": classic.SVM,
    "mlp": networks.NETWORK,
    "cnn": networks.NETWORK,
    "transformer": networks.NETWORK,
    "gru": networks.NETWORK,
    "tfidf_logistic": baselines.TFIDF_LOGISTIC,
    "seasonal_naive": baselines.SEASONAL_NAIVE,
}
