"""Baselines the networks are measured against, trained and scored by the same flow.

- ``seasonal_naive``: a forecast that repeats the value one season ago (``lag_{season}``);
- ``tfidf_logistic``: TF-IDF of the text column (words and word pairs) and logistic regression.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from trainflow.errors import TrainflowError
from trainflow.models.family import BuildRequest, Family, param


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Predicts the value of the same step one season earlier.

    Args:
        lag_column: The window column holding that value (``lag_12`` for monthly data).
    """

    def __init__(self, lag_column: str = "lag_12"):
        self.lag_column = lag_column

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> "SeasonalNaive":  # noqa: N803
        if self.lag_column not in X.columns:
            raise ValueError(f"seasonal naive needs the column {self.lag_column}; the window is shorter than a season")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return X[self.lag_column].to_numpy(dtype=float)


def tfidf_logistic(text_column: str, seed: int, **params: object):  # noqa: ANN201
    """TF-IDF (uni- and bigrams, sublinear tf) of one text column, then logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=100_000)
    return Pipeline([("tfidf", ColumnTransformer([("text", vec, text_column)])),
                     ("logistic", LogisticRegression(**{"C": 4.0, "max_iter": 3000, "random_state": seed, **params}))])


def build_seasonal_naive(r: BuildRequest) -> SeasonalNaive:
    if r.schema is None or r.schema.series is None:
        raise TrainflowError("the seasonal_naive family needs a time series (a schema with a series block)")
    return SeasonalNaive(lag_column=r.schema.series.lag(r.schema.series.season))


def build_tfidf_logistic(r: BuildRequest):  # noqa: ANN201
    if r.schema is None or not r.schema.text_features:
        raise TrainflowError("the tfidf_logistic family needs a text column")
    return tfidf_logistic(r.schema.text_features[0], r.seed, **r.params)


SEASONAL_NAIVE = Family(build_seasonal_naive, cost=0.1, skops_types=frozenset({f"{__name__}.SeasonalNaive"}))
TFIDF_LOGISTIC = Family(build_tfidf_logistic, cost=0.5, search_space={"C": param("float", 0.1, 100.0, log=True)})
