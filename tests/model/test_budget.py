"""The time limit inside the stages: what a fit, a family, tuning and evaluate's CV do when the time is up.

Every deadline here has already passed (or never comes), so what is cut does not depend on how busy the machine
is: the fits stop at their first round, epoch or tree probe, the families after the first are skipped."""

import json
import logging
import time

import numpy as np
import optuna
import pandas as pd
import pytest

from tasks.evaluate import cross_validate
from tasks.ingest import ingest_data
from tasks.split import SplitSettings, split_data
from trainflow.folds import cv_folds
from tasks.train import train_models
from tasks.transform import fit_transform_splits
from tasks.tune import TuneSettings, objective, plan_study, run_trials, search_space, summarise
from trainflow.budget import FitClock
from trainflow.catalog import ArtifactStore, new_run_id
from trainflow.features import TransformSettings
from trainflow.models.settings import TrainSettings
from trainflow.models.fit import fit_family
from trainflow.schema import load_schema

PAST = 0.0  # a deadline (time.time()) long gone


@pytest.fixture(scope="module")
def cancer():
    schema = load_schema("breast_cancer")
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    return schema, splits, pre, feats


@pytest.mark.parametrize("family, unit", [("lightgbm", "rounds"), ("catboost", "rounds"), ("mlp", "epochs")])
def test_a_fit_past_its_deadline_stops_at_once_and_keeps_what_it_has(cancer, family: str, unit: str) -> None:
    schema, _, _, feats = cancer
    settings = TrainSettings(lightgbm_max_rounds=500, nn={"max_epochs": 30, "patience": 30, "batch_size": 64})
    clock = FitClock(PAST, f"test: {family}")
    pipe, info, _ = fit_family(family, schema, feats["train"], feats["validation"], TransformSettings(), settings, 0,
                               clock=clock)
    assert info["stopped_by_time_limit"] == 1 == clock.stopped_at  # after the first round or epoch
    if unit == "epochs":  # and that epoch after its first step: an epoch of a large table outlasts a short limit
        assert 0 < info["last_epoch_share"] < 1
    assert info["best_iteration"] == 1 and info["metrics"]["roc_auc"] > 0.8  # a usable model, not an error
    assert pipe.predict(feats["test"].drop(columns=[schema.label])).shape == (len(feats["test"]),)
    unlimited = FitClock(None, f"test: {family}")
    _, free, _ = fit_family(family, schema, feats["train"], feats["validation"], TransformSettings(), settings, 0,
                            clock=unlimited)
    assert "stopped_by_time_limit" not in free and free["best_iteration"] > 1 and unlimited.stopped_at is None


def test_a_forest_past_its_deadline_keeps_its_probe_trees(cancer) -> None:
    schema, _, _, feats = cancer
    settings = TrainSettings(params={"random_forest": {"oob_score": True}})
    pipe, info, _ = fit_family("random_forest", schema, feats["train"], None, TransformSettings(), settings, 0,
                               clock=FitClock(PAST, "test: random_forest"))
    forest = pipe.named_steps["model"]
    assert info["stopped_by_time_limit"] == 30 and len(forest.estimators_) == 30  # a tenth of 300, timed
    assert forest.oob_decision_function_.shape == (len(feats["train"]), 2) and not forest.warm_start


def test_families_after_the_limit_are_skipped_and_the_leaderboard_says_so(cancer) -> None:
    schema, _, pre, feats = cancer
    settings = TrainSettings(families=["lightgbm", "logistic", "random_forest", "ensemble"], cv_folds=3)
    serving, meta, board, _ = train_models(schema, feats["train"], feats["validation"], pre, TransformSettings(),
                                           settings, 0, deadline=PAST)
    notes = board.set_index("family")["budget"]
    # the first one trains: at the highest learning rate, since no round fits in its share
    assert notes["lightgbm"] == ("learning rate 0.025 -> 0.3 to fit its share of the time limit; "
                                 "rounds cut by the time limit in 3 of 3 folds and the refit")
    assert json.loads(board.set_index("family").loc["lightgbm", "params"])["learning_rate"] == 0.3
    assert notes["logistic"].startswith("skipped: over budget") and notes["random_forest"].startswith("skipped")
    skipped = board[board["family"].isin(["logistic", "random_forest"])]
    assert skipped["score"].isna().all() and not skipped["selected"].any()
    assert meta["family"] == "lightgbm" and board.loc[board["selected"], "family"].tolist() == ["lightgbm"]
    assert serving.predict(feats["test"].drop(columns=[schema.label])).shape == (len(feats["test"]),)
    _, _, free, _ = train_models(schema, feats["train"], feats["validation"], pre, TransformSettings(),
                                 settings.model_copy(update={"families": ["lightgbm", "logistic"]}), 0)
    assert free["budget"].eq("").all() and free["score"].notna().all()  # no limit: nothing cut


def test_evaluates_cross_validation_refit_stops_at_the_limit(cancer) -> None:
    schema, splits, _, _ = cancer
    data = pd.concat([splits["train"], splits["validation"]], ignore_index=True)
    meta = {"family": "logistic", "encoding": "onehot", "best_iteration": None}
    cut = cross_validate(schema, data, meta, TransformSettings(), TrainSettings(), 5, 0, deadline=PAST)
    assert cut.empty and list(cut.columns) == ["fold", "metric", "value"]
    whole = cross_validate(schema, data, meta, TransformSettings(), TrainSettings(), 3, 0,
                           deadline=time.time() + 3600)
    assert sorted(whole["fold"].unique()) == [0, 1, 2]


def test_the_tuning_deadline_stops_the_reference_trials_too(cancer, tmp_path, caplog) -> None:
    schema, _, _, feats = cancer
    data = pd.concat([feats["train"], feats["validation"]], ignore_index=True)
    folds = cv_folds(schema, data, 3, 0)
    space = search_space("lightgbm", TuneSettings())
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs={"source": "defaults"})  # never stopped by the per-trial limit
    study.optimize(objective(schema, data, "lightgbm", space, TransformSettings(), TrainSettings(), "roc_auc",
                             folds, 0, trial_seconds=3600, deadline=PAST), n_trials=1, catch=(Exception,))
    trial = study.trials[0]
    assert trial.state.name == "PRUNED" and trial.user_attrs["stopped"] == "the tuning budget ran out, in fold 1 of 3"

    # the whole study: no trial finished within the time limit, so the run trains with the defaults (None)
    root, run = str(tmp_path), new_run_id()
    store = ArtifactStore(root)
    refs = {k: store.write_table(run, "transform", f"features_{k}", v) for k, v in feats.items()}
    settings = TuneSettings(n_trials=3, storage=f"sqlite:///{tmp_path}/t.db")
    train = TrainSettings(families=["lightgbm"])
    plan = plan_study(root, schema, refs, train, settings, 0, max_seconds=0.5)
    assert plan["budget_seconds"] == 0.5 and plan["trial_seconds"] == pytest.approx(0.5 / 3)
    with caplog.at_level(logging.INFO, logger="trainflow"):
        assert run_trials(root, schema, refs, TransformSettings(), train, settings, plan, 0, deadline=PAST) == 0
    assert "stopped this worker after 0 of its 3 trials" in caplog.text  # never silent about what it skipped
    assert summarise(root, new_run_id(), settings, plan, 0) is None
    assert np.isfinite(plan["budget_seconds"])
