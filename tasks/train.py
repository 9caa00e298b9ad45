"""Train: fit each requested model family, score it on the validation split, keep the best.

Families: logistic regression (ridge for regression), decision tree, random forest, SVM (kernel SVM
up to a row limit, linear beyond it) and LightGBM with early stopping on the validation split.
Every family gets the same fitted preprocessor; the winner is saved with it as one serving
Pipeline (skops, and LightGBM's own text format for the booster).
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
from prefect import task
from pydantic import BaseModel, Field
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tasks.cache import CONTENT
from tasks.catalog import ArtifactRef, ArtifactStore
from tasks.device import detect_accelerator
from tasks.errors import TrainflowError
from tasks.metrics import DEFAULT_METRIC, DIRECTION, classification_metrics, regression_metrics
from tasks.modelio import bundle_files, load_skops
from tasks.nn import NNSettings
from tasks.progress import progress
from tasks.schema import DatasetSchema
from tasks.transform import TransformSettings, encoder_for, encoding_for

Family = Literal["lightgbm", "logistic", "decision_tree", "random_forest", "svm", "mlp"]
FAMILIES: tuple[str, ...] = ("lightgbm", "logistic", "decision_tree", "random_forest", "svm", "mlp")


class TrainSettings(BaseModel):
    """Which model families to train and how."""

    families: list[Family] = Field(["lightgbm", "logistic"], description="model families to train and compare")
    selection_metric: str | None = Field(
        None, description="validation metric that picks the winner; None: roc_auc, f1_macro or rmse by task")
    lightgbm_max_rounds: int = Field(2000, ge=1, description="LightGBM boosting rounds before early stopping")
    lightgbm_learning_rate: float = Field(0.05, gt=0, description="LightGBM learning rate")
    early_stopping_rounds: int = Field(100, ge=1, description="stop LightGBM after this many rounds without gain")
    svm_kernel_max_rows: int = Field(
        10_000, ge=0, description="kernel (RBF) SVM up to this many training rows, linear SVM beyond")
    n_jobs: int = Field(-1, description="parallel jobs for families that support them (-1: all cores)")
    params: dict[str, dict[str, Any]] = Field(
        {}, description='extra estimator parameters per family, e.g. {"lightgbm": {"num_leaves": 63}}')
    nn: NNSettings = Field(default_factory=NNSettings, description="the neural network families (mlp)")


def build_estimator(family: str, task_type: str, settings: TrainSettings, seed: int, n_rows: int,
                    overrides: dict[str, Any] | None = None, categorical: list[str] | None = None) -> Any:
    """An unfitted estimator for a family and task type (``categorical``: code columns, for the MLP)."""
    reg = task_type == "regression"
    extra = {**settings.params.get(family, {}), **(overrides or {})}
    if family == "mlp":
        from tasks.nn import MLPClassifier, MLPRegressor

        nn_settings = settings.nn.model_copy(update={k: v for k, v in extra.items()
                                                     if k in NNSettings.model_fields}).model_dump()
        return (MLPRegressor if reg else MLPClassifier)(categorical=categorical, settings=nn_settings, seed=seed)
    if family == "lightgbm":
        import lightgbm as lgb

        base = dict(n_estimators=settings.lightgbm_max_rounds, learning_rate=settings.lightgbm_learning_rate,
                    num_leaves=31, min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                    random_state=seed, n_jobs=settings.n_jobs, verbose=-1, deterministic=True, force_row_wise=True)
        return (lgb.LGBMRegressor if reg else lgb.LGBMClassifier)(**{**base, **extra})
    if family == "logistic":
        from sklearn.linear_model import LogisticRegression, Ridge

        return Ridge(**{"alpha": 1.0, **extra}) if reg else LogisticRegression(**{"max_iter": 3000, "C": 1.0, **extra})
    if family == "decision_tree":
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        cls = DecisionTreeRegressor if reg else DecisionTreeClassifier
        return cls(**{"max_depth": 10, "min_samples_leaf": 20, "random_state": seed, **extra})
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if reg else RandomForestClassifier
        return cls(**{"n_estimators": 300, "min_samples_leaf": 2, "random_state": seed, "n_jobs": settings.n_jobs,
                      **extra})
    if family == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

        if n_rows <= settings.svm_kernel_max_rows:
            if reg:
                return SVR(**extra)
            return CalibratedClassifierCV(SVC(**{"random_state": seed, **extra}), ensemble=False)
        if reg:
            return LinearSVR(**{"random_state": seed, "max_iter": 5000, **extra})
        return CalibratedClassifierCV(LinearSVC(**{"random_state": seed, "max_iter": 5000, **extra}), cv=3)
    raise TrainflowError(f"unknown model family '{family}' (known: {', '.join(FAMILIES)})")


def predict_scores(model: Any, x: pd.DataFrame, task_type: str) -> np.ndarray:
    """Class probabilities for classifiers, predictions for regressors."""
    return model.predict(x) if task_type == "regression" else model.predict_proba(x)


def score(task_type: str, y: np.ndarray, scores: np.ndarray, classes: np.ndarray | None,
          positive: object) -> dict[str, float]:
    """All metrics for one set of predictions."""
    if task_type == "regression":
        return regression_metrics(y, scores)
    return classification_metrics(y, scores, classes, positive)


def fit_family(family: str, schema: DatasetSchema, train: pd.DataFrame, validation: pd.DataFrame,
               transform_settings: TransformSettings, settings: TrainSettings,
               seed: int) -> tuple[Pipeline, dict, pd.DataFrame]:
    """Fit one family's encoding step and estimator on training features.

    Returns:
        ``(fitted encode+model pipeline, info, history)``; ``info`` holds the validation metrics,
        timings and the best iteration, ``history`` the per-iteration validation curve (LightGBM).
    """
    label = schema.label
    x_tr, y_tr = train.drop(columns=[label]), train[label].to_numpy()
    x_va, y_va = validation.drop(columns=[label]), validation[label].to_numpy()
    if schema.task == "regression":
        y_tr, y_va = y_tr.astype(float), y_va.astype(float)
    else:
        y_tr, y_va = y_tr.astype(str), y_va.astype(str)
    encoding = encoding_for(family, transform_settings.categorical_encoding)
    encoder = encoder_for(schema, encoding)
    if encoder != "passthrough":
        encoder = clone(encoder).set_output(transform="pandas").fit(x_tr)
        x_tr_e, x_va_e = encoder.transform(x_tr), encoder.transform(x_va)
    else:
        x_tr_e, x_va_e = x_tr, x_va
    est = build_estimator(family, schema.task, settings, seed, len(x_tr), categorical=schema.categorical_features)
    started = time.perf_counter()
    history = pd.DataFrame()
    best_iteration = None
    if family == "lightgbm":
        import lightgbm as lgb

        cats = schema.categorical_features if encoding == "native" else "auto"
        with warnings.catch_warnings():
            # LightGBM 4.7 deprecates eval_set for eval_X/eval_y, but its eval_X path does not encode
            # string class labels (ValueError: could not convert string to float); eval_set does.
            warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
            est.fit(x_tr_e, y_tr, eval_set=[(x_va_e, y_va)], eval_names=["validation"], categorical_feature=cats,
                    callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)])
        best_iteration = int(est.best_iteration_ or est.n_estimators)
        curves = est.evals_result_.get("validation", {})
        history = pd.DataFrame([{"family": family, "iteration": i + 1, "split": "validation", "metric": m, "value": v}
                                for m, values in curves.items() for i, v in enumerate(values)])
    elif family == "mlp":
        est.fit(x_tr_e, y_tr, X_val=x_va_e, y_val=y_va)
        best_iteration = est.best_epoch_
        history = est.history_.melt(id_vars="epoch", var_name="metric", value_name="value").rename(
            columns={"epoch": "iteration"}).assign(family=family, split="train/validation")
    else:
        est.fit(x_tr_e, y_tr)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = predict_scores(est, x_va_e, schema.task)
    predict_seconds = time.perf_counter() - started
    classes = getattr(est, "classes_", None)
    metrics = score(schema.task, y_va, scores, classes, schema.positive_class)
    pipe = Pipeline([("encode", encoder), ("model", est)])
    info = {"family": family, "encoding": encoding, "estimator": type(est).__name__, "metrics": metrics,
            "device": getattr(est, "device_", "cpu"),
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "best_iteration": best_iteration,
            "n_train": len(x_tr), "params": {k: v for k, v in est.get_params().items()
                                              if isinstance(v, (int, float, str, bool, type(None)))}}
    if history.empty:
        history = pd.DataFrame([{"family": family, "iteration": 1, "split": "validation",
                                 "metric": k, "value": v} for k, v in metrics.items()])
    return pipe, info, history


def train_models(schema: DatasetSchema, train: pd.DataFrame, validation: pd.DataFrame, preprocessor: Any,
                 transform_settings: TransformSettings, settings: TrainSettings,
                 seed: int) -> tuple[Pipeline, dict, pd.DataFrame, pd.DataFrame]:
    """Train every family and keep the best on the validation split: the pure part of the train stage.

    Args:
        schema: Dataset schema.
        train: Training features (from transform) with the label column.
        validation: Validation features with the label column.
        preprocessor: The fitted preprocessor, the first step of the saved Pipeline.
        transform_settings: Gives the categorical encoding.
        settings: Families and their settings.
        seed: Random seed.

    Returns:
        ``(serving pipeline, metadata, leaderboard, history)``.

    Raises:
        TrainflowError: No family given, an unknown family, or an unknown selection metric.
    """
    if not settings.families:
        raise TrainflowError("no model family to train: settings.train.families is empty")
    metric = settings.selection_metric or DEFAULT_METRIC[schema.task]
    if metric not in DIRECTION:
        raise TrainflowError(f"unknown selection metric '{metric}' (known: {', '.join(DIRECTION)})")
    accel = detect_accelerator()
    fitted, rows, histories = {}, [], []
    with progress(len(settings.families), "training") as bar:
        for family in dict.fromkeys(settings.families):
            pipe, info, hist = fit_family(family, schema, train, validation, transform_settings, settings, seed)
            fitted[family] = (pipe, info)
            histories.append(hist)
            rows.append({"family": family, "estimator": info["estimator"], "encoding": info["encoding"],
                         "metric": metric, "validation_score": info["metrics"].get(metric, np.nan),
                         "fit_seconds": info["fit_seconds"], "predict_seconds": info["predict_seconds"],
                         "best_iteration": info["best_iteration"], "n_train": info["n_train"],
                         "device": info["device"], "accelerator_present": accel["device"],
                         "validation_metrics": json.dumps(info["metrics"]), "params": json.dumps(info["params"],
                                                                                               default=str)})
            bar.advance(family)
    board = pd.DataFrame(rows).sort_values("validation_score", ascending=not DIRECTION[metric],
                                           na_position="last", ignore_index=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    board["selected"] = board["rank"] == 1
    best = board.iloc[0]["family"]
    pipe, info = fitted[best]
    serving = Pipeline([("preprocess", preprocessor), *pipe.steps])
    meta = {"family": best, "task": schema.task, "label": schema.label, "dataset": schema.name,
            "features": [c.name for c in schema.features], "positive_class": schema.positive_class,
            "selection_metric": metric, "validation_metrics": info["metrics"], "best_iteration": info["best_iteration"],
            "params": info["params"], "encoding": info["encoding"], "seed": seed, "device": info["device"],
            "accelerator": accel}
    return serving, meta, board, pd.concat(histories, ignore_index=True)


@task(name="train", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def train(store_root: str, run_id: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
          transform_settings: TransformSettings, settings: TrainSettings, seed: int) -> dict[str, ArtifactRef]:
    """Prefect task: write ``train/leaderboard``, ``train/training_history`` and the ``train/model`` bundle.

    Returns:
        References to the model bundle, the leaderboard and the history.
    """
    store = ArtifactStore(store_root)
    preprocessor = load_skops(store.read_file(features["preprocessor"]))
    serving, meta, board, history = train_models(
        schema, store.read_table(features["train"]), store.read_table(features["validation"]), preprocessor,
        transform_settings, settings, seed)
    meta["run_id"] = run_id
    return {
        "leaderboard": store.write_table(run_id, "train", "leaderboard", board),
        "history": store.write_table(run_id, "train", "training_history", history),
        "model": store.write_bundle(run_id, "train", "model", bundle_files(serving, meta)),
    }
