"""Tune: grid, random or Bayesian (Optuna TPE) search of one family's hyperparameters, cross-validated.

The objective is a k-fold cross-validated metric on the training and validation rows (the test split is
never seen); the metric and its direction come from the settings. Trial 0 is always the family's own
default parameters (Optuna ``enqueue_trial``), scored on the same folds, so the best trial, and with it the
final parameters, is never worse in CV than the defaults; for LightGBM, trial 1 is LightGBM's own defaults
(learning rate 0.1, every row and column), so the tuned model is not worse in CV than a plain
``LGBMClassifier`` either. Bad trials are pruned (median or successive
halving) on the running mean of the same CV metric after each fold, so a trial is only ever compared with
other trials' scores on the same folds; a pruned trial's partial mean has its own column, never ``mean``.
A trial that runs past the per-trial time limit is stopped (the defaults trials never are), and the study
stops starting trials when its time budget, scaled to the data size by default, is spent. A trial that
raises is recorded as failed and the study goes on; each finished trial is one log line.

The study lives in an Optuna RDB storage (SQLite under the artifacts root by default, any SQLAlchemy URL
for several machines). Each flow run has a study of its own (named from the data, the settings and the
flow run), so a retry of that flow run after a crash finishes its missing trials, while another run never
sees its trials; ``TuneSettings.study`` names a study to continue or extend on purpose. Workers
(``tune_trials`` tasks) run through the flow's task runner, threads by default, and share the study.

Each family declares its search space in its own module (``Family.search_space``); ``TuneSettings.space``
overrides it. For the networks the space includes the architecture (layers, widths, dropout, embedding
sizes).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import warnings
import uuid
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from prefect import task
from pydantic import AfterValidator, BaseModel, Field

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import BEST_SCORE_PLOT, TRIALS
from trainflow.credentials import mask, redact, resolve
from trainflow.errors import TrainflowError
from trainflow.features import TransformSettings
from trainflow.folds import cv_folds, fold_features, rows_of
from trainflow.forms import FormModel
from trainflow.metrics import DEFAULT_METRIC, DIRECTION
from trainflow.models.networks import NETWORKS, NNSettings, nn_settings_for
from trainflow.models.families import FAMILIES
from trainflow.models.family import ParamSpec
from trainflow.models.fit import build_estimator, fit_family
from trainflow.models.settings import families_for, TrainSettings
from trainflow.names import check_name
from trainflow.progress import run_logger
from trainflow.presets import DEFAULT_TRIALS
from trainflow.schema import DatasetSchema
from trainflow.threads import fit_threads
from trainflow.ui import embedded_png, publish, readable


StudyName = Annotated[str, AfterValidator(lambda v: check_name(v, "tune.study"))]




class TuneSettings(FormModel):
    """Hyperparameter search (a stage of the training flow; on by default with a small budget)."""

    enabled: bool = Field(True, description="tune before the final training (how much: n_trials)")
    family: str | None = Field(None, description="family to tune; empty: the first family to train that is not a "
                                                 "network (a network's trials take minutes each on a CPU: name it)")
    method: Literal["grid", "random", "tpe"] = Field("tpe", description="grid, random, or tpe (Bayesian, Optuna)")
    n_trials: int | None = Field(None, ge=0, description="trials in the study; empty: the preset's (fast: 0, no "
                                                         "tuning; default: 10; best: 40)")
    timeout_seconds: float | None = Field(None, gt=0, description="stop starting trials after this long; empty: a "
                                                                  "budget scaled to the data size (20 s to 10 min for "
                                                                  "up to 10 trials; in proportion for more)")
    trial_timeout_seconds: float | None = Field(None, gt=0, description="stop a trial that runs longer than this "
                                                                        "(never the defaults trial); empty: a third "
                                                                        "of the study's budget")
    cv_folds: int = Field(3, ge=2, description="k of the cross-validated objective")
    metric: str | None = Field(None, description="objective metric; empty: roc_auc, f1_macro or rmse by task")
    pruner: Literal["none", "median", "halving"] = Field("median", description="prune bad trials: median or "
                                                                               "successive halving")
    workers: int | None = Field(None, ge=1, description="trials run at once, as parallel tasks; empty: 1, or with "
                                                       "compute.engine dask one per worker of that cluster")
    dask_address: str | None = Field(None, description="run the workers on a Dask cluster through prefect-dask (the "
                                                       "'dask' extra): a scheduler address such as "
                                                       "tcp://10.0.0.5:8786, or 'local' for a temporary cluster of "
                                                       "`workers` processes here; empty: threads, or with "
                                                       "compute.engine dask the compute cluster")
    storage: str | None = Field(None, description="Optuna storage URL; empty: SQLite at ARTIFACTS_ROOT/tuning/"
                                                  "optuna.db")
    study: StudyName | None = Field(None, description="continue or extend this named study (its trials count toward "
                                                      "n_trials); empty: a new study for this flow run, which a "
                                                      "retry of the run continues")
    space: dict[str, ParamSpec] = Field({}, description="override the family's search space, by parameter")

    @property
    def parallel(self) -> int:
        """The trials run at once: ``workers``, 1 where it is empty (the flow fills it: ``with_preset``)."""
        return self.workers or 1


def tunable_families() -> list[str]:
    """The families that declare a search space (``Family.search_space``)."""
    return [name for name, family in FAMILIES.items() if family.tunable]


def search_space(family: str, settings: TuneSettings) -> dict[str, ParamSpec]:
    """The family's own space (``Family.search_space``, declared in its module) under the settings' overrides.

    Raises:
        TrainflowError: The family declares none (the training flow refuses it before it starts).
    """
    if family not in FAMILIES or not FAMILIES[family].tunable:
        raise TrainflowError(f"tune.family: '{family}' has no search space (tunable: {', '.join(tunable_families())})")
    return {**FAMILIES[family].search_space, **settings.space}


def to_train_params(family: str, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters as estimator or network settings, as the family translates them
    (``Family.from_trial``: a network's architecture parameters expanded)."""
    translate = getattr(FAMILIES.get(family), "from_trial", None)
    return translate(dict(params)) if translate is not None else dict(params)


def with_params(settings: TrainSettings, family: str, params: dict[str, Any]) -> TrainSettings:
    """Train settings with a family's parameters replaced (network fields go to ``nn``)."""
    params = to_train_params(family, params)
    if family in NETWORKS:
        nn = settings.nn.model_copy(update={k: v for k, v in params.items() if k in NNSettings.model_fields})
        nn.__pydantic_fields_set__ |= set(params)  # explicitly set: they win over the schema's defaults
        return settings.model_copy(update={"nn": nn})
    return settings.model_copy(update={"params": {**settings.params, family: {**settings.params.get(family, {}),
                                                                              **params}}})


def default_params(family: str, schema: DatasetSchema, train_settings: TrainSettings, space: dict[str, ParamSpec],
                   n_rows: int, seed: int) -> dict[str, Any]:
    """The values the family trains with when nothing is tuned, for each parameter of the space (trial 0).

    A number outside the space's range is moved to its nearest end (LightGBM's ``reg_lambda`` 0 becomes the
    range's 1e-8); a parameter without a default among the choices is left to the sampler.
    """
    if family in NETWORKS:
        nn = nn_settings_for(schema, train_settings).model_dump()
        values = {**nn, "n_layers": len(nn["hidden"]), "width": nn["hidden"][0], "n_blocks": len(nn["channels"]),
                  "base_channels": nn["channels"][0]}
    else:
        deep = build_estimator(family, schema.task, train_settings, seed, n_rows, schema=schema).get_params(deep=True)
        values = {}
        for key, value in deep.items():  # the outermost name wins: C of a calibrated SVC is estimator__C
            values.setdefault(key.rsplit("__", 1)[-1], value)
            if isinstance(value, dict):  # a wrapper's parameters as one dictionary (CatBoostModel's ``params``)
                for inner, setting in value.items():
                    values.setdefault(inner, setting)
    return _in_space(values, space)


def _in_space(values: dict[str, Any], space: dict[str, ParamSpec]) -> dict[str, Any]:
    out = {}
    for name, spec in space.items():
        ok, value = spec.nearest(values.get(name)) if name in values else (False, None)
        if ok:
            out[name] = value
    return out


def library_params(family: str, schema: DatasetSchema, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """The family's library's own defaults for each parameter of the space, where the project trains the family
    with others: LightGBM's learning rate 0.1 with every row and column per tree, where the project's defaults
    are a slower 0.025 on 80% of them (a plain ``LGBMClassifier()``, what a user compares with). Empty for the
    other families (their defaults are their library's)."""
    if family != "lightgbm":
        return {}
    import lightgbm

    estimator = lightgbm.LGBMRegressor() if schema.task == "regression" else lightgbm.LGBMClassifier()
    return _in_space(estimator.get_params(), space)


def _sampler(method: str, space: dict[str, ParamSpec], seed: int):  # noqa: ANN202
    import optuna

    if method == "grid":
        return optuna.samplers.GridSampler({k: v.grid_values() for k, v in space.items()}, seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, len(space))))


def _pruner(kind: str):  # noqa: ANN202
    import optuna

    # steps are folds: a trial is judged after each fold on its running CV mean, against the other trials' running
    # means after the same folds (never on boosting rounds, where a small learning rate looks bad by construction)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


HEARTBEAT_SECONDS = 10  # a running trial's worker writes a heartbeat this often
GRACE_SECONDS = 30  # a running trial without a heartbeat for this long is failed (its worker died) and re-run


def check_storage(storage: str) -> None:
    """A ``tune.storage`` URL that cannot be parsed, has no driver or cannot be reached, found before any work.

    Raises:
        TrainflowError: One line naming the setting, the masked URL and the driver's words.
    """
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(resolve(storage))
        with engine.connect():
            pass
        engine.dispose()
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        message = redact(str(getattr(exc, "orig", None) or exc).splitlines()[0][:300], storage)
        raise TrainflowError(f"tune.storage {mask(storage)} cannot be used: {type(exc).__name__}: {message}") from None


def open_study(storage: str, name: str, method: str, space: dict[str, ParamSpec], direction: str, seed: int,
               pruner: str):  # noqa: ANN201
    """Create or load a study in a storage several workers share (stale running trials are retried)."""
    import optuna

    import sqlalchemy as sa

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8; they are what resumes a crash
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:  # the URL's ${...} secrets are filled in here alone: the plan and every parameter keep the placeholder
            rdb = optuna.storages.RDBStorage(
                resolve(storage), engine_kwargs={"connect_args": {"timeout": 60}} if storage.startswith("sqlite")
                else None,
                heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,  # a crashed trial is retried
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except (sa.exc.SQLAlchemyError, ImportError, ValueError, KeyError) as exc:
            message = redact(str(getattr(exc, "orig", None) or exc).splitlines()[0][:300], storage)
            raise TrainflowError(f"tune.storage {mask(storage)} cannot be used: {type(exc).__name__}: "
                                 f"{message}") from None
    return optuna.create_study(storage=rdb, study_name=name, direction=direction, load_if_exists=True,
                               sampler=_sampler(method, space, seed), pruner=_pruner(pruner))


def objective(schema: DatasetSchema, data: pd.DataFrame, family: str, space: dict[str, ParamSpec],
              transform_settings: TransformSettings, train_settings: TrainSettings, metric: str, folds: list,
              seed: int, n_jobs: int | None = None, trial_seconds: float | None = None,
              deadline: float | None = None, fold_data: list | None = None):  # noqa: ANN201
    """The Optuna objective: the mean validation metric over the folds for one trial's parameters (each fold's
    rows from ``fold_data`` when given: the fold's own preprocessing, ``tasks.transform.fold_features``).

    After each fold but the last the running mean is reported (step = fold) for the pruner. A trial other
    than the reference trials (the defaults, the library's) that runs longer than ``trial_seconds`` is stopped
    as pruned, between boosting rounds or epochs, or between folds for the other families; ``stopped`` says
    why. The reference trials are never pruned nor stopped by ``trial_seconds``: the tuned parameters are
    measured against them whole. Every trial, the reference ones too, stops at ``deadline`` (``time.time()``),
    the study's budget: the run's time limit is kept whatever the defaults cost.
    """
    import optuna

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which process ran it
        trial.set_user_attr("thread", threading.current_thread().name)  # and which of its threads
        params = {name: spec.suggest(trial, name) for name, spec in space.items()}
        # a trial trains in its worker (tune.dask_address spreads the trials), never across the cluster
        settings = with_params(train_settings, family, params).model_copy(update={"dask_address": None})
        if n_jobs is not None:  # parallel workers share the cores
            settings = settings.model_copy(update={"n_jobs": n_jobs})
        scores, started = [], time.perf_counter()
        reference = trial.user_attrs.get("source") in REFERENCE_TRIALS  # never pruned nor stopped
        limit = None if reference else trial_seconds

        def stop(reason: str) -> None:
            trial.set_user_attr("stopped", reason)
            raise optuna.TrialPruned(reason)

        def check_time(step: int, value: float) -> None:  # after each boosting round or epoch
            if limit and time.perf_counter() - started > limit:
                stop(f"time limit {limit:.0f} s, in fold {len(scores) + 1} of {len(folds)}")
            if deadline is not None and time.time() > deadline:
                stop(f"the tuning budget ran out, in fold {len(scores) + 1} of {len(folds)}")

        for fold, (tr, va) in enumerate(folds):
            try:
                fit_rows, held_rows = fold_data[fold] if fold_data else (data.iloc[tr], data.iloc[va])
                _, info, _ = fit_family(family, schema, fit_rows, held_rows, transform_settings, settings,
                                        seed, on_iteration=check_time if limit or deadline is not None else None)
            except optuna.TrialPruned:
                raise
            except Exception as exc:  # recorded with the trial; the study goes on (catch= in optimize)
                trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                raise
            scores.append(info["metrics"][metric])
            trial.set_user_attr("fold_scores", scores)
            if fold == len(folds) - 1:
                break
            trial.report(float(np.mean(scores)), fold)
            if not reference and trial.should_prune():
                stop(f"{metric} after {fold + 1} of {len(folds)} folds is behind the other trials")
            if limit and time.perf_counter() - started > limit:
                stop(f"time limit {limit:.0f} s, after {fold + 1} of {len(folds)} folds")
            if deadline is not None and time.time() > deadline:
                stop(f"the tuning budget ran out, after {fold + 1} of {len(folds)} folds")
        trial.set_user_attr("seconds", time.perf_counter() - started)
        return float(np.mean(scores))

    return run


def study_name(schema: DatasetSchema, features: dict[str, ArtifactRef], family: str, settings: TuneSettings,
               metric: str, seed: int, run_key: str) -> str:
    """``settings.study`` when it is set; else a name of the data, family, method, space, folds, metric, seed
    and ``run_key`` (the flow run): a retry of the run finds its study, no other run does."""
    if settings.study:
        return settings.study
    key = json.dumps([features["train"].sha256, features["validation"].sha256, family, settings.method,
                      {k: v.model_dump() for k, v in search_space(family, settings).items()}, settings.cv_folds,
                      metric, settings.pruner, seed, run_key], sort_keys=True, default=str)
    return f"{schema.name}-{family}-{settings.method}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def storage_url(store_root: str, settings: TuneSettings) -> str:
    if settings.storage:
        return settings.storage
    folder = ArtifactStore(store_root).local_folder("tuning")
    if folder is None:
        raise TrainflowError("tuning on a remote artifacts root needs settings.tune.storage (an RDB URL)")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def trials_table(study: Any) -> pd.DataFrame:
    """One row per trial: number, source (``defaults``, ``library defaults`` or ``sampler``), state, params (JSON),
    fold
    scores, mean (the CV score: complete trials only), partial_mean (the mean over the folds a pruned or
    stopped trial finished), std, why it was stopped, seconds, started, worker (host:pid), thread, error.

    A trial whose worker died is failed by its stale heartbeat and re-run as a new trial: ``retry_of`` names the
    failed one and its ``error`` names the retry.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs["failed_trial"]: t.number for t in trials if "failed_trial" in t.system_attrs}
    rows = []
    for t in trials:
        folds = t.user_attrs.get("fold_scores", [])
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and \
            t.datetime_start else None
        error = ""
        if t.state.name == "FAIL":
            error = t.user_attrs.get("error") or (f"its worker stopped (stale heartbeat); retried as trial "
                                                  f"{retried[t.number]}" if t.number in retried else "no error "
                                                  "recorded: no finite objective value, or a worker stopped twice")
        complete = t.state.name == "COMPLETE"
        rows.append({"trial": t.number, "source": t.user_attrs.get("source", "sampler"), "state": t.state.name.lower(),
                     "params": json.dumps(t.params, default=str), "fold_scores": json.dumps(folds),
                     "mean": t.value if complete else np.nan,  # a pruned trial's value is an intermediate one
                     "partial_mean": float(np.mean(folds)) if folds and not complete else np.nan,
                     "std": float(np.std(folds, ddof=1)) if len(folds) > 1 else np.nan,
                     "folds_done": len(folds), "stopped": t.user_attrs.get("stopped", ""), "seconds": duration,
                     "started": t.datetime_start,
                     "worker": t.user_attrs.get("worker", ""), "thread": t.user_attrs.get("thread", ""),
                     "retry_of": t.system_attrs.get("failed_trial"),
                     "error": error})
    return pd.DataFrame(rows).astype({"retry_of": "Int64"}) if rows else pd.DataFrame(rows)


def trial_line(study: Any, trial: Any, metric: str) -> str:
    """One log line for a finished trial: number, state, CV score, best so far, seconds, parameters."""
    folds = trial.user_attrs.get("fold_scores", [])
    if trial.state.name == "COMPLETE":
        score = f"{metric} {trial.value:.4f} over {len(folds)} folds"
    else:  # a pruned trial's value is an intermediate one: its partial mean and why it stopped
        partial = f", partial {metric} {np.mean(folds):.4f}" if folds else ""
        score = f"after {len(folds)} completed folds{partial}" + (
            f" ({trial.user_attrs['stopped']})" if trial.user_attrs.get("stopped") else "")
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
        if trial.datetime_complete and trial.datetime_start else float("nan")
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:  # no trial has completed yet
        best = "no completed trial yet"
    error = f", error: {trial.user_attrs['error'][:200]}" if trial.user_attrs.get("error") else ""
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    source = trial.user_attrs.get("source")
    defaults = {"defaults": " (the defaults)", "library defaults": " (the library's defaults)"}.get(source, "")
    return (f"tune trial {trial.number}{defaults} {trial.state.name.lower()}: {score}; {best}; {seconds:.1f} s; "
            f"{params}{error}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


REFERENCE_TRIALS = ("defaults", "library defaults")  # enqueued trials (their ``source``), run whole


class _Plan(BaseModel):
    family: str
    metric: str
    direction: Literal["maximize", "minimize"]
    storage: str
    study: str
    left: int = 0  # trials still to run when the study was planned
    budget_seconds: float = 0.0  # the study's time budget
    trial_seconds: float | None = None  # a trial's time limit (not the defaults trial's)
    enqueued: int = 1  # trials enqueued before the sampler's (the defaults, the library's defaults)




def default_budget(n_rows: int, n_columns: int, n_trials: int = DEFAULT_TRIALS) -> float:
    """Seconds of tuning for a table: for 10 trials 1 s per 10,000 cells, at least 20 s and at most 10 minutes;
    in proportion for more trials. Fewer trials keep the 10 trials' budget: it only caps a study, which ends
    with its last trial, and a tenth of it would stop the defaults trial itself on a mid-sized table."""
    cells_seconds = float(min(600.0, max(20.0, n_rows * max(n_columns, 1) / 10_000)))
    return cells_seconds * max(n_trials, DEFAULT_TRIALS) / DEFAULT_TRIALS


def trials_of(settings: TuneSettings) -> int:
    """The study's number of trials (the setting, else the default preset's)."""
    return DEFAULT_TRIALS if settings.n_trials is None else settings.n_trials


def tunable_family(schema: DatasetSchema, train_settings: TrainSettings) -> str | None:
    """The first family to train that has a search space and is not a network (None: nothing to tune)."""
    return next((f for f in families_for(schema, train_settings) if FAMILIES[f].tunable and f not in NETWORKS), None)


def plan_study(store_root: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
               train_settings: TrainSettings, settings: TuneSettings, seed: int,
               run_key: str | None = None, max_seconds: float | None = None) -> dict[str, str] | None:
    """What to tune, where the study lives and its time budget; creates the study with the family's defaults
    as its first trial (no trial is run here).

    Args:
        run_key: What makes this run's study its own; None: the current flow run's id, else a new one.
        max_seconds: The run's time limit's share for tuning: the study's budget is at most this.

    Returns None when no family is named and none of the families to train is tunable by default.
    """
    family = settings.family or tunable_family(schema, train_settings)
    if family is None:
        return None
    metric = settings.metric or train_settings.selection_metric or DEFAULT_METRIC[schema.task]
    if metric not in DIRECTION:
        raise TrainflowError(f"unknown tuning metric '{metric}' (known: {', '.join(DIRECTION)})")
    if run_key is None:
        from prefect.runtime import flow_run

        run_key = flow_run.get_id() or uuid.uuid4().hex  # a retry of a flow run keeps its id
    rows = (features["train"].rows or 0) + (features["validation"].rows or 0)
    budget = settings.timeout_seconds or default_budget(rows, len(schema.features), trials_of(settings))
    if max_seconds is not None:
        budget = min(budget, max_seconds)
    plan = _Plan(family=family, metric=metric, direction="maximize" if DIRECTION[metric] else "minimize",
                 storage=storage_url(store_root, settings), budget_seconds=budget,
                 trial_seconds=settings.trial_timeout_seconds or budget / 3,
                 study=study_name(schema, features, family, settings, metric, seed, run_key))
    # create the storage's tables and the study once, before workers open it side by side
    space = search_space(family, settings)
    study = open_study(plan.storage, plan.study, settings.method, space, plan.direction, seed, settings.pruner)
    if not study.get_trials(deepcopy=False) and settings.method != "grid":  # a grid tries only its own points
        first = default_params(family, schema, train_settings, space, features["train"].rows or 0, seed)
        study.enqueue_trial(first, user_attrs={"source": "defaults"})
        library = library_params(family, schema, space)
        if library and library != first and trials_of(settings) > 1:
            study.enqueue_trial(library, user_attrs={"source": "library defaults"})
            plan.enqueued = 2
    plan.left = max(0, trials_of(settings) - _finished(study))
    return plan.model_dump()


def _finished(study: Any) -> int:
    """Trials that count against the budget: complete, pruned or failed (a crashed trial that is retried does not)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and t.number not in retried) for t in trials)


MIN_SEARCH_TRIALS = 4  # trials a search needs to be worth its time: fewer rarely beat the family's defaults


def search_unaffordable(trial: Any, deadline: float | None) -> str | None:
    """Why the search stops after a reference trial (the defaults, the library's), or None: when the study's
    time left holds fewer than ``MIN_SEARCH_TRIALS`` trials at that trial's pace, a search would be a few random
    draws that rarely beat the defaults (trial 0, which train uses anyway), so its time goes to train instead,
    as AutoGluon's ``medium_quality`` spends no time on tuning at all."""
    seconds = trial.user_attrs.get("seconds")
    if deadline is None or not seconds or trial.user_attrs.get("source") not in REFERENCE_TRIALS:
        return None
    left = max(0.0, deadline - time.time())
    if left >= MIN_SEARCH_TRIALS * seconds:
        return None
    return (f"trial {trial.number} took {seconds:.1f} s and {left:.0f} s of the tuning budget are left, fewer than "
            f"the {MIN_SEARCH_TRIALS} trials a search needs: tuning stops here, its time goes to train")


def run_trials(store_root: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
               transform_settings: TransformSettings, train_settings: TrainSettings, settings: TuneSettings,
               plan: dict[str, str], seed: int, deadline: float | None = None, worker: int = 0) -> int:
    """One worker of ``settings.parallel``: run its share of the trials the plan left, until the time is up.

    Returns:
        How many trials this worker ran.
    """
    p = _Plan(**plan)
    space = search_space(p.family, settings)
    # random and TPE: each worker samples with its own seed, or parallel workers would propose the same trials;
    # grid: one seed for all, as Optuna gives trial k the k-th point of the seed's shuffled grid (no point twice)
    sampler_seed = seed if settings.method == "grid" else seed + worker
    study = open_study(p.storage, p.study, settings.method, space, p.direction, sampler_seed, settings.pruner)
    share = p.left // settings.parallel + (1 if worker < p.left % settings.parallel else 0)
    left = min(share, trials_of(settings) - _finished(study))
    if left <= 0:
        return 0
    store = ArtifactStore(store_root)
    data = pd.concat([store.read_table(features["train"]), store.read_table(features["validation"])])
    folds = cv_folds(schema, data, settings.cv_folds, seed)
    rows = rows_of(store, features, schema) if transform_settings.in_folds else None
    fold_data = None if rows is None else fold_features(rows, folds, schema, transform_settings)
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    n_jobs = fit_threads(None, concurrent=settings.parallel) if settings.parallel > 1 else None
    ran: list[int] = []
    logger = run_logger()

    def after(st: Any, trial: Any) -> None:  # count this worker's trials; stop when the study's budget is spent
        ran.append(trial.number)
        logger.info("%s", trial_line(st, trial, p.metric))
        if _finished(st) >= trials_of(settings):
            st.stop()
        elif (why := search_unaffordable(trial, deadline)) is not None:
            logger.info("tune: %s", why)
            st.stop()

    study.optimize(objective(schema, data, p.family, space, transform_settings, train_settings, p.metric, folds, seed,
                             n_jobs, p.trial_seconds, deadline, fold_data),
                   n_trials=left, timeout=timeout, catch=(Exception,), callbacks=[after])
    if len(ran) < left and _finished(study) < trials_of(settings):  # Optuna's timeout ends the loop silently
        logger.info("tune: the tuning budget (%.0f s) stopped this worker after %d of its %d trials", p.budget_seconds,
                    len(ran), left)
    return len(ran)


def best_score_figure(trials: pd.DataFrame, metric: str, maximize: bool):  # noqa: ANN201
    """Each trial's CV score and the best so far, over trial numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    done = trials[trials["state"] == "complete"].sort_values("trial")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(done["trial"], done["mean"], s=12, alpha=0.6, label="trial")
    best = done["mean"].cummax() if maximize else done["mean"].cummin()
    ax.step(done["trial"], best, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, not 0.5 steps
    ax.set_ylabel(f"CV {metric}")
    ax.set_title("Best score over trials")
    ax.legend()
    return fig


def summarise(store_root: str, run_id: str, settings: TuneSettings, plan: dict[str, str],
              seed: int) -> dict | None:
    """Write ``tune/trials`` and ``tune/best_score.png``; return the best parameters and score (None: the time
    limit stopped every trial, the defaults' too)."""
    p = _Plan(**plan)
    study = open_study(p.storage, p.study, settings.method, search_space(p.family, settings), p.direction, seed,
                       settings.pruner)
    trials = trials_table(study)
    store = ArtifactStore(store_root)
    refs = {"trials": store.put(run_id, TRIALS, trials)}
    complete = trials[trials["state"] == "complete"]
    started = trials[~trials["state"].isin(["waiting"])] if len(trials) else trials
    budget_out = not len(started) or started["stopped"].str.startswith("the tuning budget ran out").any()
    if complete.empty and budget_out:  # no trial started, or the time limit stopped the reference trials too
        run_logger().warning("tune: no trial finished within the time limit's share for tuning (%.0f s): training "
                             "with the family's defaults", p.budget_seconds)
        return None
    if complete.empty:
        raise TrainflowError(f"tuning {p.family}: none of {len(trials)} trials completed (states: "
                             f"{trials['state'].value_counts().to_dict()}; errors: "
                             f"{sorted(set(trials['error']) - {''})[:3]})")
    refs["best_score"] = store.put(run_id, BEST_SCORE_PLOT, best_score_figure(
        trials, p.metric, p.direction == "maximize"))
    best = study.best_trial
    return {"family": p.family, "metric": p.metric, "best_score": float(best.value), "best_params": best.params,
            "best_trial": best.number, "trials": len(trials), "states": trials["state"].value_counts().to_dict(),
            "study": p.study, "storage": p.storage, "artifacts": {k: v.model_dump() for k, v in refs.items()}}


@task(name="plan_tuning")
def plan_tuning(store_root: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
                train_settings: TrainSettings, settings: TuneSettings, seed: int,
                max_seconds: float | None = None) -> dict[str, str] | None:
    """Prefect task: choose the family, metric, storage, study name and budget (None: nothing to tune;
    ``max_seconds``: the time limit's share for tuning)."""
    plan = plan_study(store_root, schema, features, train_settings, settings, seed, max_seconds=max_seconds)
    if plan is not None:
        p = _Plan(**plan)
        run_logger().info("tune: %s, %d %s to run%s, %d-fold CV %s; budget %.0f s, a trial at most %.0f s; "
                          "study %s", p.family, p.left, "trial" if p.left == 1 else "trials",
                          "" if settings.method == "grid" else
                          " (trial 0: the family's defaults" + (", trial 1: the library's" if p.enqueued > 1 else "")
                          + ")", settings.cv_folds, p.metric, p.budget_seconds, p.trial_seconds, p.study)
    return plan


@task(name="tune_trials")
def tune_trials(store_root: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
                transform_settings: TransformSettings, train_settings: TrainSettings, settings: TuneSettings,
                plan: dict[str, str], seed: int, deadline: float | None = None, worker: int = 0) -> int:
    """Prefect task: tuning worker number ``worker`` (submit ``settings.parallel`` of them to run trials in
    parallel on the flow's task runner)."""
    return run_trials(store_root, schema, features, transform_settings, train_settings, settings, plan, seed, deadline,
                      worker)


@task(name="tune")
def tune(store_root: str, run_id: str, settings: TuneSettings, plan: dict[str, str], seed: int) -> dict | None:
    """Prefect task: the study's trials as Parquet, the best parameters, a table and a plot for the UI (None:
    no trial finished within the time limit)."""
    result = summarise(store_root, run_id, settings, plan, seed)
    if result is None:
        return None
    store = ArtifactStore(store_root)
    trials = store.read_table(ArtifactRef(**result["artifacts"]["trials"]))
    top = trials[trials["state"] == "complete"].sort_values("mean", ascending=not DIRECTION[result["metric"]]).head(10)
    publish("table", [{"trial": int(r["trial"]), f"cv {result['metric']}": readable(r["mean"]),
                       "std": readable(r["std"]), "seconds": readable(r["seconds"], 3),
                       **{k: readable(v) for k, v in json.loads(r["params"]).items()}}  # a column per parameter
                      for r in top.to_dict("records")],
            f"tuning-{plan['study'][:40]}", f"Top trials of {result['study']}")
    plot = ArtifactRef(**result["artifacts"]["best_score"])
    states = ", ".join(f"{n} {state}" for state, n in result["states"].items())
    params = "\n".join(f"| {k} | {readable(v)} |" for k, v in result["best_params"].items())
    publish("markdown",
            f"# Tuning {result['family']} ({settings.method})\n\nBest CV {result['metric']} **{result['best_score']:.4f}** "
            f"at trial {result['best_trial']} of {result['trials']} ({states}).\n\n| best parameter | value |\n"
            f"| --- | --- |\n{params}\n\n{embedded_png(store.read_file(plot), 'Best score over trials')}\n\n"
            f"`{store.uri(plot)}`", f"tuning-plot-{plan['study'][:35]}", f"Tuning of run {run_id}")
    return result
