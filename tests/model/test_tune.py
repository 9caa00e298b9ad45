"""Tuning on real data (breast_cancer, Adult rows): methods, budgets, failures, pruning, resume, parallel workers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from trainflow.catalog import ArtifactStore, new_run_id
from tasks.ingest import ingest_data
from trainflow.schema import load_schema
from tasks.split import SplitSettings, split_data
from trainflow.models.settings import TrainSettings
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings
from tasks.tune import (ParamSpec, TuneSettings, default_budget, plan_study, run_trials, search_unaffordable,
                        summarise, to_train_params, with_params)

pytestmark = pytest.mark.slow(seconds=45)  # studies on real data, killed and resumed workers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory):
    schema = load_schema("breast_cancer")
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), 0)
    _, feats = fit_transform_splits(splits, schema, TransformSettings())
    root = str(tmp_path_factory.mktemp("tune"))
    store, run = ArtifactStore(root), new_run_id()
    refs = {k: store.write_table(run, "transform", f"features_{k}", v) for k, v in feats.items()}
    return schema, root, refs, splits


def _study(cancer, settings: TuneSettings, train: TrainSettings | None = None, seed: int = 0, **kw):
    schema, root, refs, _ = cancer
    train = train or TrainSettings(families=["logistic"])
    plan = plan_study(root, schema, refs, train, settings, seed)
    ran = run_trials(root, schema, refs, TransformSettings(), train, settings, plan, seed, **kw)
    return plan, ran, summarise(root, new_run_id(), settings, plan, seed)


def _trials(root: str, result: dict) -> pd.DataFrame:
    ref = result["artifacts"]["trials"]
    return pd.read_parquet(Path(root) / ref["path"])


def test_grid_search_tries_every_listed_value(cancer) -> None:
    settings = TuneSettings(method="grid", n_trials=10, space={"C": ParamSpec(type="float", low=0.01, high=10,
                                                                             log=True, grid=[0.01, 1.0, 10.0])})
    _, ran, result = _study(cancer, settings)
    trials = _trials(cancer[1], result)
    assert ran == 3 and len(trials) == 3  # the grid is exhausted before the budget
    assert sorted(json.loads(p)["C"] for p in trials["params"]) == [0.01, 1.0, 10.0]
    assert result["metric"] == "roc_auc" and result["best_params"]["C"] in (0.01, 1.0, 10.0)
    folds = json.loads(trials.loc[0, "fold_scores"])
    assert len(folds) == 3 and trials.loc[0, "mean"] == pytest.approx(sum(folds) / 3)
    assert {"trial", "state", "params", "fold_scores", "mean", "std", "seconds"} <= set(trials.columns)


def test_parallel_grid_workers_try_each_point_once(cancer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    schema, root, refs, _ = cancer
    train = TrainSettings(families=["decision_tree"])
    settings = TuneSettings(method="grid", n_trials=8, workers=2, storage=f"sqlite:///{root}/grid2.db", space={
        "max_depth": ParamSpec(type="int", low=2, high=8, grid=[2, 4, 6, 8]),
        "min_samples_leaf": ParamSpec(type="int", low=1, high=20, grid=[1, 20])})
    plan = plan_study(root, schema, refs, train, settings, 0)
    with ThreadPoolExecutor(2) as pool:
        ran = list(pool.map(lambda w: run_trials(root, schema, refs, TransformSettings(), train, settings, plan, 0,
                                                 worker=w), range(2)))
    trials = _trials(root, summarise(root, new_run_id(), settings, plan, 0))
    assert ran == [4, 4] and len(trials) == 8 and trials["params"].nunique() == 8  # the whole 4 x 2 grid, no repeat


def test_random_search_is_repeatable_with_a_seed(cancer) -> None:
    params = []
    for root_suffix in ("a", "b"):
        schema, root, refs, splits = cancer
        settings = TuneSettings(method="random", n_trials=4, storage=f"sqlite:///{root}/{root_suffix}.db")
        _, _, result = _study(cancer, settings, seed=5)
        params.append(list(_trials(root, result)["params"]))
    assert params[0] == params[1] and len(set(params[0])) == 4


def test_a_failing_trial_is_recorded_and_the_study_goes_on(cancer) -> None:
    # C must be positive: scikit-learn raises for -1, that trial fails, the others complete
    settings = TuneSettings(method="grid", n_trials=5, space={
        "C": ParamSpec(type="float", low=0.1, high=10, grid=[0.1, -1.0, 10.0])})
    _, _, result = _study(cancer, settings)
    trials = _trials(cancer[1], result).set_index("trial")
    assert len(trials) == 3 and sorted(trials["state"]) == ["complete", "complete", "fail"]
    failed = trials[trials["state"] == "fail"].iloc[0]
    assert json.loads(failed["params"])["C"] == -1.0 and "C" in failed["error"]
    assert result["best_params"]["C"] in (0.1, 10.0)


def test_a_named_study_resumes_and_extends(cancer) -> None:
    schema, root, refs, _ = cancer
    storage = f"sqlite:///{root}/resume.db"
    first = _study(cancer, TuneSettings(method="tpe", n_trials=3, storage=storage, study="resume-me"))
    again = _study(cancer, TuneSettings(method="tpe", n_trials=3, storage=storage, study="resume-me"))
    assert first[1] == 3 and again[1] == 0 and again[0]["study"] == first[0]["study"]  # nothing left to do
    more = _study(cancer, TuneSettings(method="tpe", n_trials=5, storage=storage, study="resume-me"))
    assert more[0]["study"] == first[0]["study"] and more[1] == 2  # the same study, two trials more
    assert more[2]["trials"] == 5


def test_two_runs_with_the_same_settings_do_not_share_trials(cancer) -> None:
    # the same data and settings in one storage: each run (flow run) gets its own study and all of its trials
    settings = TuneSettings(method="tpe", n_trials=3, storage=f"sqlite:///{cancer[1]}/shared.db")
    first, second = _study(cancer, settings), _study(cancer, settings)
    assert first[0]["study"] != second[0]["study"] and first[1] == second[1] == 3
    assert second[2]["trials"] == 3 and second[2]["best_params"] == first[2]["best_params"]  # the same seed


def test_trial_0_is_the_defaults_and_the_best_is_never_worse(cancer) -> None:
    settings = TuneSettings(method="random", n_trials=4, storage=f"sqlite:///{cancer[1]}/defaults.db",
                            space={"C": ParamSpec(type="float", low=1e-4, high=1e-2, log=True)})
    train = TrainSettings(families=["logistic"], params={"logistic": {"C": 50.0}})  # outside: moved to the end
    _, _, result = _study(cancer, settings, train=train)
    trials = _trials(cancer[1], result).set_index("trial")
    assert trials.loc[0, "source"] == "defaults" and json.loads(trials.loc[0, "params"]) == {"C": 1e-2}
    assert (trials.loc[1:, "source"] == "sampler").all()
    assert result["best_score"] == trials["mean"].max() >= trials.loc[0, "mean"]


def test_a_killed_workers_trial_is_failed_and_retried_when_the_study_resumes(cancer, monkeypatch) -> None:
    import optuna

    from tasks import tune

    schema, root, refs, _ = cancer
    # slow LightGBM trials (a small fixed learning rate, no early stop for 1,500 rounds) so the kill lands mid-trial
    train = TrainSettings(families=["lightgbm"], lightgbm_max_rounds=1500, early_stopping_rounds=1500)
    settings = TuneSettings(method="random", n_trials=2, pruner="none", storage=f"sqlite:///{root}/crash.db",
                            study="crash", space={"learning_rate": ParamSpec(type="float", low=0.001, high=0.002)},
                            trial_timeout_seconds=600)  # a loaded machine must not stop the retry as too slow
    plan = plan_study(root, schema, refs, train, settings, 0)
    args = {"root": root, "refs": {k: v.model_dump(mode="json") for k, v in refs.items()},
            "train": train.model_dump(mode="json"), "tune": settings.model_dump(mode="json"), "plan": plan, "seed": 0}
    worker = subprocess.Popen([sys.executable, str(Path(__file__).with_name("tune_worker.py")), json.dumps(args)],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    study = optuna.load_study(study_name=plan["study"], storage=plan["storage"])
    state = optuna.trial.TrialState
    try:  # kill it once one trial is complete and the next has finished a fold
        deadline = time.time() + 120
        while time.time() < deadline and worker.poll() is None:
            trials = study.get_trials(deepcopy=False)
            if any(t.state == state.COMPLETE for t in trials) and any(
                    t.state == state.RUNNING and t.user_attrs.get("fold_scores") for t in trials):
                break
            time.sleep(0.05)
    finally:
        worker.kill()
    assert worker.wait() == -signal.SIGKILL  # it was still working when killed
    killed = next(t for t in study.get_trials(deepcopy=False) if t.state == state.RUNNING)

    monkeypatch.setattr(tune, "GRACE_SECONDS", 2)  # not the 30 s a real cluster waits for a slow heartbeat
    time.sleep(3)
    plan = plan_study(root, schema, refs, train, settings, 0)
    assert plan["left"] == 1  # the running trial is not done: it is left to do
    run_trials(root, schema, refs, TransformSettings(), train, settings, plan, 0)
    trials = _trials(root, summarise(root, new_run_id(), settings, plan, 0)).set_index("trial")
    failed = trials.loc[killed.number]
    retry = trials[trials["retry_of"] == killed.number]
    assert failed["state"] == "fail" and f"retried as trial {retry.index[0]}" in failed["error"]
    assert len(retry) == 1 and retry.iloc[0]["state"] == "complete" and retry.iloc[0]["params"] == failed["params"]
    assert len(trials) == 3 and (trials["state"] == "complete").sum() == 2  # the crashed one does not count


def test_time_budget_stops_starting_trials(cancer) -> None:
    settings = TuneSettings(method="random", n_trials=200, storage=f"sqlite:///{cancer[1]}/budget.db")
    deadline = time.time() + 3
    _, ran, result = _study(cancer, settings, deadline=deadline)
    started = pd.to_datetime(_trials(cancer[1], result)["started"])
    assert 1 <= ran < 200 and len(started) == ran
    # Optuna stamps trials with naive local time, which datetime.timestamp() reads as local time
    # no trial started after the budget ran out: Optuna stamps a trial's start just after deciding to run it, a few
    # milliseconds that a loaded machine can stretch (seen: 2 ms); trials that ignored the budget would start seconds late
    assert started.max().to_pydatetime().timestamp() <= deadline + 0.25


def test_fewer_trials_than_ten_keep_the_ten_trials_budget(cancer) -> None:
    # the budget caps a study, which ends with its last trial: a tenth of it for one trial stopped the defaults
    # trial itself after two of Adult's three folds
    schema, root, refs, _ = cancer
    budget = {n: plan_study(root, schema, refs, TrainSettings(families=["logistic"]), TuneSettings(n_trials=n), 0)[
        "budget_seconds"] for n in (1, 3, 10, 20)}
    assert budget == {1: 20.0, 3: 20.0, 10: 20.0, 20: 40.0}  # 483 rows x 30 columns of breast_cancer: the 20 s floor
    assert default_budget(27_676, 13, 1) == default_budget(27_676, 13, 10) == pytest.approx(35.98, abs=0.01)
    assert default_budget(27_676, 13, 40) == pytest.approx(4 * 35.98, abs=0.05)


def test_a_budget_too_short_for_a_search_stops_after_the_reference_trials() -> None:
    # when the defaults' trial leaves time for fewer than four trials like it, the few random draws left would
    # rarely beat it: tuning ends there and its time goes to train
    import optuna

    def trial(source: str, seconds: float) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(value=0.9, user_attrs={"source": source, "seconds": seconds})

    now = time.time()
    why = search_unaffordable(trial("defaults", 10.0), now + 25)
    assert why is not None and "took 10.0 s" in why and "fewer than the 4 trials a search needs" in why
    assert search_unaffordable(trial("library defaults", 10.0), now + 25) is not None
    assert search_unaffordable(trial("defaults", 10.0), now + 300) is None  # room for a search
    assert search_unaffordable(trial("sampler", 10.0), now + 25) is None  # only a reference trial decides
    assert search_unaffordable(trial("defaults", 10.0), None) is None  # no budget


def test_lightgbm_trials_are_pruned_on_cv_folds(adult_raw, adult_schema, tmp_path: Path) -> None:
    splits, _ = split_data(adult_raw.sample(6000, random_state=1), adult_schema, SplitSettings(), 0)
    _, feats = fit_transform_splits(splits, adult_schema, TransformSettings())
    store, run = ArtifactStore(str(tmp_path)), new_run_id()
    refs = {k: store.write_table(run, "transform", f"features_{k}", v) for k, v in feats.items()}
    train = TrainSettings(families=["lightgbm"], lightgbm_max_rounds=300)
    settings = TuneSettings(method="random", n_trials=12, pruner="halving", trial_timeout_seconds=600)
    plan = plan_study(str(tmp_path), adult_schema, refs, train, settings, 0)
    run_trials(str(tmp_path), adult_schema, refs, TransformSettings(), train, settings, plan, 0)
    result = summarise(str(tmp_path), new_run_id(), settings, plan, 0)
    trials = _trials(str(tmp_path), result)
    pruned, complete = trials[trials["state"] == "pruned"], trials[trials["state"] == "complete"]
    assert len(pruned) >= 1 and len(complete) >= 3
    # judged on the CV metric after whole folds: a partial mean of the same ROC-AUC, never in ``mean``
    assert pruned["mean"].isna().all() and (pruned["folds_done"] >= 1).all()
    assert pruned["partial_mean"].between(0.5, 1).all() and pruned["stopped"].str.contains("behind").all()
    assert complete["partial_mean"].isna().all() and complete["mean"].between(0.85, 1).all()
    assert result["best_score"] >= 0.90  # CV ROC-AUC on 6,000 Adult rows


def test_a_trial_past_its_time_limit_is_stopped_but_never_the_defaults(cancer) -> None:
    train = TrainSettings(families=["lightgbm"], lightgbm_max_rounds=400, early_stopping_rounds=400)
    settings = TuneSettings(method="random", n_trials=3, pruner="none", trial_timeout_seconds=0.05,
                            storage=f"sqlite:///{cancer[1]}/limit.db")
    _, _, result = _study(cancer, settings, train=train)
    trials = _trials(cancer[1], result).set_index("trial")
    assert trials.loc[0, "source"] == "defaults" and trials.loc[0, "state"] == "complete"
    assert trials.loc[1, "source"] == "library defaults" and trials.loc[1, "state"] == "complete"  # a reference too
    assert json.loads(trials.loc[1, "params"]) == {"num_leaves": 31, "learning_rate": 0.1, "min_child_samples": 20,
                                                   "colsample_bytree": 1.0, "subsample": 1.0, "reg_lambda": 1e-8}
    assert (trials.loc[2:, "state"] == "pruned").all() and trials.loc[2:, "stopped"].str.startswith("time limit").all()
    assert result["best_trial"] in (0, 1)


def test_architecture_is_part_of_the_network_space() -> None:
    assert to_train_params("mlp", {"n_layers": 3, "width": 128, "dropout": 0.2}) == {
        "hidden": [128, 64, 32], "dropout": 0.2}
    assert to_train_params("cnn", {"n_blocks": 2, "base_channels": 16}) == {"channels": [16, 32]}
    tuned = with_params(TrainSettings(), "mlp", {"n_layers": 1, "width": 40, "learning_rate": 0.01})
    assert tuned.nn.hidden == [40] and tuned.nn.learning_rate == 0.01
    assert {"hidden", "learning_rate"} <= tuned.nn.model_fields_set  # win over a schema's network defaults
    assert with_params(TrainSettings(), "lightgbm", {"num_leaves": 7}).params == {"lightgbm": {"num_leaves": 7}}


def test_network_trials_search_the_architecture(cancer) -> None:
    train = TrainSettings(families=["mlp"], nn={"max_epochs": 12, "patience": 12, "batch_size": 64})
    settings = TuneSettings(family="mlp", method="random", n_trials=4, pruner="median",
                            storage=f"sqlite:///{cancer[1]}/mlp.db",  # time limits far away: a busy machine
                            timeout_seconds=3600, trial_timeout_seconds=3600)  # must not stop a trial here
    _, ran, result = _study(cancer, settings, train=train)
    trials = _trials(cancer[1], result)
    assert ran == 4 and (trials["state"] == "complete").sum() >= 3
    assert {"n_layers", "width", "dropout", "embedding_dim"} <= set(result["best_params"])
    assert result["best_score"] >= 0.95  # CV ROC-AUC of an MLP on breast_cancer


@pytest.mark.parametrize("family", ["lightgbm", "lightgbm_xt", "catboost", "logistic", "decision_tree",
                                    "random_forest", "extra_trees", "svm"])
def test_each_familys_own_space_trains_at_its_ends(family: str) -> None:
    """A family's search space (declared in its module) names parameters its builder takes: every parameter at
    the low end of its grid, then at the high end, trains on 150 rows (a name scikit-learn or CatBoost
    does not take fails the fit)."""
    from trainflow.models.families import FAMILIES
    from trainflow.models.fit import fit_family

    schema = load_schema("breast_cancer")
    splits, _ = split_data(ingest_data(schema)[0].head(150), schema, SplitSettings(), 0)
    _, feats = fit_transform_splits(splits, schema, TransformSettings())
    space = FAMILIES[family].search_space
    assert space, f"{family} declares no search space"
    from tasks.tune import default_params

    # trial 0 is the family's defaults: every parameter of its space has one (none left to the sampler)
    assert set(default_params(family, schema, TrainSettings(), space, 150, 0)) == set(space)
    for end in (0, -1):
        point = {name: spec.grid_values()[end] for name, spec in space.items()}
        settings = with_params(TrainSettings(lightgbm_max_rounds=20), family, point)
        pipe, info, _ = fit_family(family, schema, feats["train"], feats["validation"], TransformSettings(),
                                   settings, seed=0)
        assert pipe.predict_proba(feats["test"].drop(columns=[schema.label])).shape[1] == 2
