"""The shared metrics: computed on numbered labels, they must equal scikit-learn's on the labels' text; and the
prediction call every stage makes."""

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from trainflow.metrics import PARALLEL_PREDICT_ROWS, classification_metrics, predict_scores, score


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(0)
    classes = np.array(["10", "2", "9"])  # sorted as text, not as numbers
    y = rng.choice(classes, 400)
    proba = rng.dirichlet(np.ones(3), 400)
    proba[np.arange(400), np.searchsorted(classes, y)] += 0.5  # better than chance
    return y, proba / proba.sum(axis=1, keepdims=True), classes


def test_multiclass_metrics_equal_scikit_learn_on_the_text_labels(multiclass):
    y, proba, classes = multiclass
    pred = classes[proba.argmax(axis=1)]
    got = classification_metrics(y, proba, classes)
    assert got["accuracy"] == skm.accuracy_score(y, pred)
    assert got["f1_macro"] == skm.f1_score(y, pred, average="macro")
    assert got["balanced_accuracy"] == skm.balanced_accuracy_score(y, pred)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes), rel=1e-12)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes), rel=1e-12)
    for name, value in got.items():  # one metric alone is the same value
        assert score("multiclass", y, proba, classes, None, only=(name,)) == {name: value}


def test_binary_metrics_score_the_named_positive_class():
    rng = np.random.default_rng(1)
    classes = np.array(["<=50K", ">50K"])
    y = rng.choice(classes, 300, p=[0.7, 0.3])
    p = np.clip(0.3 + 0.4 * (y == ">50K") + rng.normal(0, 0.25, 300), 0, 1)
    proba = np.column_stack([1 - p, p])
    got = classification_metrics(y, proba, classes, positive=">50K")
    assert got["roc_auc"] == skm.roc_auc_score(y == ">50K", p)
    assert got["f1"] == skm.f1_score(y == ">50K", p > 0.5)
    first = classification_metrics(y, proba, classes, positive="<=50K")
    assert first["f1"] == skm.f1_score(y == "<=50K", p <= 0.5)  # the other class's F1
    assert set(score("binary", y, proba, classes, ">50K", only=("roc_auc", "brier"))) == {"roc_auc", "brier"}


def test_a_label_the_model_does_not_know_is_named(multiclass):
    y, proba, classes = multiclass
    y = y.astype(object)
    y[3] = "11"
    with pytest.raises(ValueError, match=r"\['11'\] not belonging"):
        classification_metrics(y, proba, classes)


class _Threads:
    """Predicts the number of threads joblib would give an estimator that leaves ``n_jobs`` to the caller."""

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.full(len(x), joblib.effective_n_jobs(None))  # None: as a forest asks


def test_predictions_use_one_thread_on_small_batches_and_every_core_on_large_ones():
    small, large = (pd.DataFrame({"a": np.zeros(n)}) for n in (1, PARALLEL_PREDICT_ROWS))
    assert predict_scores(_Threads(), small, "regression")[0] == 1
    assert predict_scores(_Threads(), large, "regression")[0] == joblib.cpu_count()
