"""Presets fill what the settings leave empty, from the command line and from the UI form alike."""

import pytest

from cli.config import parse_settings
from flows.training import TrainingSettings
from trainflow.presets import with_preset
from trainflow.schema import load_schema


def _resolved(payload: dict, dataset: str = "adult") -> TrainingSettings:
    return with_preset(TrainingSettings.model_validate(payload), load_schema(dataset))


def test_the_form_submitted_unchanged_but_for_the_preset_gets_the_presets_values() -> None:
    # the Prefect UI submits every field of the form, its defaults included
    form = TrainingSettings().model_dump(mode="json")
    best = _resolved({**form, "preset": "best"})
    assert best.tune.n_trials == 40 and best.train.cv_folds == 8
    assert best.train.bag == "on"  # LightGBM served as its fold models' average
    fast = _resolved({**form, "preset": "fast"})
    assert fast.tune.n_trials == 0 and fast.train.cv_folds == 0 and fast.train.families == ["lightgbm", "logistic"]
    assert fast.compress.enabled == "off" and best.compress.enabled == "on"
    default = _resolved(form)
    assert default.tune.n_trials == 10 and default.train.cv_folds == 5 and "ensemble" in default.train.families
    assert default.compress.enabled == "on" and default.train.bag == "off" and fast.train.bag == "off"
    assert best.train.families == default.train.families  # more trials and folds, and bagging: the same families


def test_a_field_set_explicitly_wins_over_the_preset() -> None:
    form = TrainingSettings().model_dump(mode="json")
    s = _resolved({**form, "preset": "best", "tune": {**form["tune"], "n_trials": 3},
                   "train": {**form["train"], "families": ["logistic"], "cv_folds": 2, "bag": False}})
    assert s.tune.n_trials == 3 and s.train.families == ["logistic"] and s.train.cv_folds == 2 and s.train.bag == "off"
    flags = parse_settings(TrainingSettings, ["--preset", "fast", "--tune.n-trials", "5", "--compress.enabled", "true"],
                           "x")
    assert with_preset(flags, load_schema("adult")).tune.n_trials == 5
    assert with_preset(flags, load_schema("adult")).compress.enabled == "on"  # compression asked for, preset or not


def test_a_schema_that_names_its_families_or_networks_keeps_them() -> None:
    digits = _resolved({"dataset": "digits", "preset": "best"}, "digits")  # cnn, logistic from the schema
    assert digits.train.families is None and digits.train.cv_folds is None
    assert digits.tune.n_trials == 40


def test_the_dask_engine_sends_training_and_tuning_to_its_cluster() -> None:
    form = TrainingSettings().model_dump(mode="json")
    dask = {**form, "compute": {"engine": "dask", "dask_address": "local"}}
    s = _resolved(dask)  # the form's empty tune.workers: one trial per worker of the 2-worker local cluster
    assert (s.train.dask_address, s.tune.dask_address, s.tune.workers, s.tune.parallel) == ("local", "local", 2, 2)
    three = _resolved({**dask, "tune": {**form["tune"], "workers": 3}})
    assert (three.tune.dask_address, three.tune.workers) == ("local", 3)
    assert _resolved({**dask, "preset": "fast"}).tune.dask_address is None  # nothing to tune, no cluster for it
    local = _resolved(form)
    assert (local.train.dask_address, local.tune.dask_address, local.tune.parallel) == (None, None, 1)


def test_the_tuning_runner_is_threads_unless_a_dask_cluster_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    from trainflow.cluster import task_runner
    from trainflow.errors import TrainflowError

    runner = task_runner(None, 3)
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    monkeypatch.delenv("TRAINFLOW_DASK_SCHEDULERS", raising=False)
    with pytest.raises(TrainflowError, match="^tune.dask_address 'tcp://127.0.0.1:1' is not a Dask scheduler"):
        task_runner("tcp://127.0.0.1:1", 2)  # not one the deployment trusts: refused before any cluster starts
