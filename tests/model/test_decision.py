"""A binary model's decision: the threshold chosen on its out-of-fold predictions, stored with it and used
wherever it predicts a class (issue 32: on a 5%-positive table every family predicted the majority class)."""

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, matthews_corrcoef

from tasks.evaluate import EvaluateSettings, evaluate_model
from tasks.predict import predict_frame
from tasks.split import SplitSettings, split_data
from tasks.train import train_models
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings
from trainflow.metrics import choose_threshold, decide, decision_metric, threshold_of
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.models.settings import TrainSettings
from trainflow.schema import infer_schema


@pytest.fixture(scope="module")
def rare():
    """3,000 rows, 5% positive ("yes"), weakly separated: no row's probability of "yes" reaches 0.5."""
    x, y = make_classification(n_samples=3000, n_features=8, n_informative=3, n_redundant=0, weights=[0.95],
                               class_sep=0.5, flip_y=0, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    frame["y"] = np.where(y == 1, "yes", "no")
    schema = infer_schema(frame, "rare")
    splits, _ = split_data(frame, schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    serving, meta, _, _ = train_models(schema, feats["train"], feats["validation"], pre, TransformSettings(),
                                       TrainSettings(families=["logistic", "lightgbm"]), 0)
    return schema, splits, serving, meta


def test_a_rare_positive_class_gets_a_threshold_that_finds_it(rare) -> None:
    schema, splits, serving, meta = rare
    assert schema.positive_class == "yes"  # schema infer: the rarer class is the positive one
    decision = meta["decision"]
    assert decision["metric"] == "f1" and decision["positive_class"] == "yes"
    assert decision["threshold"] < 0.5 and decision["score"] > decision["score_at_half"]
    rows, truth = splits["test"].drop(columns=["y"]), splits["test"]["y"]
    at_half = predict_frame(serving, schema, rows)[0]["prediction"]
    served = predict_frame(serving, schema, rows, threshold=threshold_of(meta))[0]["prediction"]
    assert f1_score(truth, at_half, pos_label="yes") == 0.0  # what the issue saw: "no" for every row
    assert f1_score(truth, served, pos_label="yes") > 0.2
    # stored in model.json and read back by whatever loads the bundle
    _, loaded = load_bundle(bundle_files(serving, meta))
    assert threshold_of(loaded) == decision["threshold"]


def test_evaluate_scores_the_decision_and_warns_when_one_class_is_predicted(rare, caplog) -> None:
    schema, splits, serving, meta = rare
    tv = pd.concat([splits["train"], splits["validation"]])
    settings = EvaluateSettings(cv_folds=0, permutation_repeats=0, plots=False)
    args = (splits["test"], tv, settings, TransformSettings(), TrainSettings(), 0)
    with caplog.at_level(logging.WARNING, logger="trainflow"):
        decided = evaluate_model(schema, serving, meta, *args)["metrics"]
    assert "predicts" not in caplog.text
    test = decided[(decided["split"] == "test") & decided["class"].isna()].set_index("metric")["value"]
    assert test["f1"] > 0.2
    undecided = {k: v for k, v in meta.items() if k != "decision"}  # a model from before thresholds
    with caplog.at_level(logging.WARNING, logger="trainflow"):
        evaluate_model(schema, serving, undecided, *args)
    assert "predicts 'no' for every one of the" in caplog.text


@pytest.mark.parametrize("metric, scorer", [("f1", f1_score), ("balanced_accuracy", balanced_accuracy_score),
                                            ("accuracy", accuracy_score), ("mcc", matthews_corrcoef)])
def test_the_chosen_threshold_is_the_best_of_the_grid(metric: str, scorer) -> None:
    rng = np.random.default_rng(1)
    hit = (rng.random(2000) < 0.1).astype(int)
    p = np.clip(0.05 + 0.3 * hit * rng.random(2000) + 0.2 * rng.random(2000), 0, 1)
    threshold, value, at_half = choose_threshold(hit, p, metric)
    by_hand = {t: scorer(hit, (p >= t).astype(int)) for t in np.round(np.arange(1, 100) / 100, 2)}
    assert value == pytest.approx(max(by_hand.values())) == pytest.approx(by_hand[threshold])
    assert at_half == pytest.approx(by_hand[0.5])


def test_decisions_and_the_auto_metric() -> None:
    proba = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    classes = np.array(["no", "yes"])
    assert decide(proba, classes, "yes", None).tolist() == ["no", "no", "yes"]
    assert decide(proba, classes, "yes", 0.3).tolist() == ["no", "yes", "yes"]
    assert decide(proba[:, ::-1], classes[::-1], "yes", 0.3).tolist() == ["no", "yes", "yes"]  # by name, not place
    assert decision_metric("auto", "roc_auc", 0.05) == "f1"
    assert decision_metric("auto", "roc_auc", 0.4) is None  # balanced enough: 0.5, as AutoGluon leaves it
    assert decision_metric("auto", "balanced_accuracy", 0.4) == "balanced_accuracy"
    assert decision_metric("none", "f1", 0.05) is None and decision_metric("mcc", "roc_auc", 0.4) == "mcc"
