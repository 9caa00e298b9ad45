"""Metrics and scoring shared by training (model selection), tuning, evaluation, promotion and drift checks."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sklearn
from joblib import parallel_config
from sklearn import metrics as skm

if TYPE_CHECKING:
    from trainflow.schema import DatasetSchema

# metric -> True when larger is better
DIRECTION: dict[str, bool] = {
    "roc_auc": True, "pr_auc": True, "accuracy": True, "f1": True, "f1_macro": True, "precision": True,
    "recall": True, "balanced_accuracy": True, "log_loss": False, "brier": False,
    "mcc": True, "rmse": False, "mae": False, "mape": False, "r2": True,
}
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
# metrics of a binary model's decisions (not of its scores), for which its threshold can be chosen
DECISION_METRICS = ("f1", "balanced_accuracy", "accuracy", "mcc")
RARE_POSITIVES = 0.2  # below this share of positive rows the default threshold of 0.5 is chosen anew, for F1


def positive_index(classes: np.ndarray, positive: object) -> int:
    """Index of the positive class among ``classes`` (the last class when none is named)."""
    values = [str(c) for c in classes]
    return values.index(str(positive)) if positive is not None and str(positive) in values else len(values) - 1


def decide(proba: np.ndarray, classes: np.ndarray, positive: object = None,
           threshold: float | None = None) -> np.ndarray:
    """The predicted class of each row: the most probable one, or with two classes and a ``threshold`` the
    positive class where its probability reaches the threshold (the model's ``decision``, see
    ``choose_threshold``)."""
    classes = np.asarray(classes)
    if threshold is None or len(classes) != 2:
        return classes[np.argmax(proba, axis=1)]
    k = positive_index(classes, positive)
    return np.where(proba[:, k] >= threshold, classes[k], classes[1 - k])


def decision_metric(setting: str, selection_metric: str, positive_share: float) -> str | None:
    """The metric a binary model's threshold is chosen for: the ``train.decision_metric`` setting; ``auto``:
    the selection metric when it scores decisions, else F1 when positives are rare (under ``RARE_POSITIVES``,
    as AutoGluon's ``calibrate_decision_threshold`` does), else none (the threshold stays 0.5)."""
    if setting != "auto":
        return None if setting == "none" else setting
    if selection_metric in DECISION_METRICS:
        return selection_metric
    return "f1" if positive_share < RARE_POSITIVES else None


def choose_threshold(hit: np.ndarray, p: np.ndarray, metric: str) -> tuple[float, float, float]:
    """The threshold on the positive class's probability ``p`` that scores best under ``metric`` (one of
    ``DECISION_METRICS``) for the positives ``hit`` (0/1): tried at 0.01, 0.02, ... 0.99, a tie going to the
    threshold nearest 0.5.

    Returns:
        ``(threshold, its score, the score at 0.5)``.
    """
    grid = np.round(np.arange(1, 100) / 100, 2)
    positive = np.sort(p[hit.astype(bool)])
    negative = np.sort(p[~hit.astype(bool)])
    n_pos, n_neg = len(positive), len(negative)
    tp = (n_pos - np.searchsorted(positive, grid, side="left")).astype(float)  # positives with p >= t
    fp = (n_neg - np.searchsorted(negative, grid, side="left")).astype(float)
    fn, tn = n_pos - tp, n_neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "f1": 2 * tp / (2 * tp + fp + fn),
            "balanced_accuracy": (tp / max(n_pos, 1) + tn / max(n_neg, 1)) / 2,
            "accuracy": (tp + tn) / max(n_pos + n_neg, 1),
            "mcc": (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)),
        }[metric]
    values = np.nan_to_num(values, nan=0.0)
    best = max(range(len(grid)), key=lambda i: (round(float(values[i]), 12), -abs(grid[i] - 0.5)))
    return float(grid[best]), float(values[best]), float(values[list(grid).index(0.5)])


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
                           only: Collection[str] | None = None, threshold: float | None = None) -> dict[str, float]:
    """Every classification metric the project reports (or those named in ``only``), from true labels and
    class probabilities (one column per class of ``classes``, in that order); the metrics of decisions
    (accuracy, F1...) of a binary model with a ``threshold`` are those of its decisions at that threshold.

    The labels are numbered once (in the sorted order of their text, so every metric sees the labels in the
    order it would see the text) and the metrics computed on the numbers: scikit-learn would otherwise encode
    the text anew in every metric, which costs more than the metrics themselves. For the same reason precision,
    recall and F1 come from one ``precision_recall_fscore_support`` call (per averaging), and scikit-learn does
    not validate the parameters again (they are made here; slices and model selection score hundreds of times).
    """
    classes = np.asarray(classes).astype(str)
    text = np.asarray(y).astype(str)
    _, codes = np.unique(np.concatenate([classes, text]), return_inverse=True)
    class_codes, truth = codes[: len(classes)], codes[len(classes):]
    if unknown := sorted(set(text[~np.isin(truth, class_codes)].tolist())):
        raise ValueError(f"y_true contains values {unknown} not belonging to the passed labels {classes.tolist()}")
    pred = decide(proba, class_codes, class_codes[positive_index(classes, positive)], threshold)
    macro = functools.cache(lambda: skm.precision_recall_fscore_support(truth, pred, average="macro",
                                                                        zero_division=0))
    found: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(truth, pred),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(truth, pred),
        "f1_macro": lambda: macro()[2],
        "precision_macro": lambda: macro()[0],
        "recall_macro": lambda: macro()[1],
        "log_loss": lambda: skm.log_loss(truth, np.clip(proba, 1e-15, 1), labels=class_codes),
    }
    present = len(np.unique(truth))
    if len(classes) == 2:
        k = positive_index(classes, positive)
        p, hit, said = proba[:, k], (truth == class_codes[k]).astype(int), (pred == class_codes[k]).astype(int)
        binary = functools.cache(lambda: skm.precision_recall_fscore_support(hit, said, average="binary",
                                                                             zero_division=0))
        found.update({
            "precision": lambda: binary()[0],
            "recall": lambda: binary()[1],
            "f1": lambda: binary()[2],
            "mcc": lambda: skm.matthews_corrcoef(hit, said),
            "brier": lambda: skm.brier_score_loss(hit, p),
        })
        if present == 2:
            found.update(roc_auc=lambda: binary_roc_auc(hit, p), pr_auc=lambda: skm.average_precision_score(hit, p))
    elif present == len(classes):
        found["roc_auc"] = lambda: skm.roc_auc_score(truth, proba, multi_class="ovr", average="macro",
                                                     labels=class_codes)
    with sklearn.config_context(skip_parameter_validation=True):
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


def relative_drop(metric: str, reference: float, value: float) -> float:
    """How much worse ``value`` is than ``reference`` as a fraction of it (negative: better)."""
    worse = reference - value if DIRECTION.get(metric, True) else value - reference
    return float(worse / max(abs(reference), 1e-12))


def predict_scores(model: Any, x: pd.DataFrame, task_type: str) -> np.ndarray:
    """Class probabilities for classifiers, predictions for regressors. Estimators that leave ``n_jobs`` to
    joblib (the forests) predict on the usable cores (``trainflow.threads``) from ``PARALLEL_PREDICT_ROWS`` rows, on one thread below."""
    from trainflow.threads import fit_threads

    with parallel_config(n_jobs=fit_threads() if len(x) >= PARALLEL_PREDICT_ROWS else 1):
        return model.predict(x) if task_type == "regression" else model.predict_proba(x)


def score(task_type: str, y: np.ndarray, scores: np.ndarray, classes: np.ndarray | None,
          positive: object, only: Collection[str] | None = None, threshold: float | None = None) -> dict[str, float]:
    """All metrics for one set of predictions (or those named in ``only``: model selection and permutation
    importances score one metric many times); a binary model's decisions at its ``threshold``."""
    if task_type == "regression":
        return regression_metrics(y, scores, only)
    return classification_metrics(y, scores, classes, positive, only, threshold)


def threshold_of(meta: dict) -> float | None:
    """A model's decision threshold from its metadata (``model.json``'s ``decision``); None: the most probable
    class (multiclass, regression, or a model trained before thresholds were chosen)."""
    return (meta.get("decision") or {}).get("threshold")


def label_values(df: pd.DataFrame, schema: DatasetSchema) -> np.ndarray:
    """The label column as the metrics expect it: floats for regression, strings for classes."""
    y = df[schema.label].to_numpy()
    return y.astype(float) if schema.task == "regression" else y.astype(str)


def headline(metrics: pd.DataFrame, task_type: str) -> dict[str, float]:
    """The test metrics a person reads first, in a fixed order."""
    order = {"binary": ["roc_auc", "accuracy", "f1", "pr_auc", "log_loss"],
             "multiclass": ["accuracy", "f1_macro", "roc_auc", "log_loss"],
             "regression": ["rmse", "mae", "mape", "r2"]}[task_type]
    test = metrics[(metrics["split"] == "test") & metrics["class"].isna()].set_index("metric")["value"]
    return {m: float(test[m]) for m in order if m in test.index}
