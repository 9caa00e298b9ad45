"""Metrics and scoring shared by training (model selection), tuning, evaluation, promotion and drift checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
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


def classification_metrics(y: np.ndarray, proba: np.ndarray, classes: np.ndarray,
                           positive: object = None) -> dict[str, float]:
    """Every classification metric the project reports, from true labels and class probabilities."""
    y = np.asarray(y).astype(str)
    classes = np.asarray(classes).astype(str)
    pred = classes[np.argmax(proba, axis=1)]
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0),
        "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y, pred, average="macro", zero_division=0),
        "log_loss": skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=classes),
    }
    present = np.unique(y)
    if len(classes) == 2:
        pos = classes[positive_index(classes, positive)]
        p = proba[:, positive_index(classes, positive)]
        truth = (y == pos).astype(int)
        out.update({
            "precision": skm.precision_score(truth, (pred == pos).astype(int), zero_division=0),
            "recall": skm.recall_score(truth, (pred == pos).astype(int), zero_division=0),
            "f1": skm.f1_score(truth, (pred == pos).astype(int), zero_division=0),
            "brier": skm.brier_score_loss(truth, p),
        })
        if len(present) == 2:
            out["roc_auc"] = skm.roc_auc_score(truth, p)
            out["pr_auc"] = skm.average_precision_score(truth, p)
    elif len(present) == len(classes):
        out["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, MAPE (a fraction: 0.05 is 5%; only when no true value is zero) and R²."""
    y = np.asarray(y, dtype=float)
    out = {"rmse": float(np.sqrt(skm.mean_squared_error(y, pred))), "mae": float(skm.mean_absolute_error(y, pred)),
           "r2": float(skm.r2_score(y, pred))}
    if len(y) and np.all(y != 0):
        out["mape"] = float(skm.mean_absolute_percentage_error(y, pred))
    return out


def better(metric: str, a: float, b: float) -> bool:
    """True when score ``a`` beats ``b`` under ``metric``."""
    return a > b if DIRECTION.get(metric, True) else a < b


def predict_scores(model: Any, x: pd.DataFrame, task_type: str) -> np.ndarray:
    """Class probabilities for classifiers, predictions for regressors."""
    return model.predict(x) if task_type == "regression" else model.predict_proba(x)


def score(task_type: str, y: np.ndarray, scores: np.ndarray, classes: np.ndarray | None,
          positive: object) -> dict[str, float]:
    """All metrics for one set of predictions."""
    if task_type == "regression":
        return regression_metrics(y, scores)
    return classification_metrics(y, scores, classes, positive)
