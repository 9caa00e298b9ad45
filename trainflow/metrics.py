"""Metrics and scoring shared by training (model selection), tuning, evaluation, promotion and drift checks."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn import metrics as skm

# metric -> True when larger is better
DIRECTION: dict[str, bool] = {
    "roc_auc": True, "pr_auc": True, "accuracy": True, "f1": True, "f1_macro": True, "precision": True,
    "recall": True, "balanced_accuracy": True, "log_loss": False, "brier": False,
    "rmse": False, "mae": False, "mape": False, "r2": True,
}
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}


def positive_index(classes: np.ndarray, positive: object) -> int:
    """Index of the positive class among ``classes`` (the last class when none is named)."""
    values = [str(c) for c in classes]
    return values.index(str(positive)) if positive is not None and str(positive) in values else len(values) - 1


def binary_roc_auc(hit: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC of scores ``p`` for the positives ``hit`` (0/1), as the Mann-Whitney U statistic of the scores'
    ranks (ties at their mean rank): scikit-learn's ``roc_auc_score`` to the last digit at a third of its time,
    which counts where the ensemble's greedy selection scores hundreds of blends."""
    from scipy.stats import rankdata

    positive = hit.astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(p)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(y: np.ndarray, proba: np.ndarray, classes: np.ndarray, positive: object = None,
                           only: Collection[str] | None = None) -> dict[str, float]:
    """Every classification metric the project reports (or those named in ``only``), from true labels and
    class probabilities (one column per class of ``classes``, in that order).

    The labels are numbered once (in the sorted order of their text, so every metric sees the labels in the
    order it would see the text) and the metrics computed on the numbers: scikit-learn would otherwise encode
    the text anew in every metric, which costs more than the metrics themselves.
    """
    classes = np.asarray(classes).astype(str)
    text = np.asarray(y).astype(str)
    _, codes = np.unique(np.concatenate([classes, text]), return_inverse=True)
    class_codes, truth = codes[: len(classes)], codes[len(classes):]
    if unknown := sorted(set(text[~np.isin(truth, class_codes)].tolist())):
        raise ValueError(f"y_true contains values {unknown} not belonging to the passed labels {classes.tolist()}")
    pred = class_codes[np.argmax(proba, axis=1)]
    found: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(truth, pred),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(truth, pred),
        "f1_macro": lambda: skm.f1_score(truth, pred, average="macro", zero_division=0),
        "precision_macro": lambda: skm.precision_score(truth, pred, average="macro", zero_division=0),
        "recall_macro": lambda: skm.recall_score(truth, pred, average="macro", zero_division=0),
        "log_loss": lambda: skm.log_loss(truth, np.clip(proba, 1e-15, 1), labels=class_codes),
    }
    present = len(np.unique(truth))
    if len(classes) == 2:
        k = positive_index(classes, positive)
        p, hit, said = proba[:, k], (truth == class_codes[k]).astype(int), (pred == class_codes[k]).astype(int)
        found.update({
            "precision": lambda: skm.precision_score(hit, said, zero_division=0),
            "recall": lambda: skm.recall_score(hit, said, zero_division=0),
            "f1": lambda: skm.f1_score(hit, said, zero_division=0),
            "brier": lambda: skm.brier_score_loss(hit, p),
        })
        if present == 2:
            found.update(roc_auc=lambda: binary_roc_auc(hit, p), pr_auc=lambda: skm.average_precision_score(hit, p))
    elif present == len(classes):
        found["roc_auc"] = lambda: skm.roc_auc_score(truth, proba, multi_class="ovr", average="macro",
                                                     labels=class_codes)
    return {k: float(f()) for k, f in found.items() if only is None or k in only}


def regression_metrics(y: np.ndarray, pred: np.ndarray, only: Collection[str] | None = None) -> dict[str, float]:
    """RMSE, MAE, MAPE (a fraction: 0.05 is 5%; only when no true value is zero) and R² (or those named in
    ``only``)."""
    y = np.asarray(y, dtype=float)
    found: dict[str, Callable[[], float]] = {"rmse": lambda: np.sqrt(skm.mean_squared_error(y, pred)),
                                             "mae": lambda: skm.mean_absolute_error(y, pred),
                                             "r2": lambda: skm.r2_score(y, pred)}
    if len(y) and np.all(y != 0):
        found["mape"] = lambda: skm.mean_absolute_percentage_error(y, pred)
    return {k: float(f()) for k, f in found.items() if only is None or k in only}


def better(metric: str, a: float, b: float) -> bool:
    """True when score ``a`` beats ``b`` under ``metric``."""
    return a > b if DIRECTION.get(metric, True) else a < b


PARALLEL_PREDICT_ROWS = 4096  # below it a thread per tree costs more than it saves (models.classic.fit_forest)


def predict_scores(model: Any, x: pd.DataFrame, task_type: str) -> np.ndarray:
    """Class probabilities for classifiers, predictions for regressors. Estimators that leave ``n_jobs`` to
    joblib (the forests) predict on the usable cores (``trainflow.threads``) from ``PARALLEL_PREDICT_ROWS`` rows, on one thread below."""
    from trainflow.threads import fit_threads

    with parallel_config(n_jobs=fit_threads() if len(x) >= PARALLEL_PREDICT_ROWS else 1):
        return model.predict(x) if task_type == "regression" else model.predict_proba(x)


def score(task_type: str, y: np.ndarray, scores: np.ndarray, classes: np.ndarray | None,
          positive: object, only: Collection[str] | None = None) -> dict[str, float]:
    """All metrics for one set of predictions (or those named in ``only``: model selection and permutation
    importances score one metric many times)."""
    if task_type == "regression":
        return regression_metrics(y, scores, only)
    return classification_metrics(y, scores, classes, positive, only)
