"""The fit of one family: its estimator built from the settings, fitted (by its own ``fit`` when it has one),
timed and scored on the validation rows; the library versions recorded with every model."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from trainflow.errors import TrainflowError
from trainflow.features import TransformSettings, encoder_for
from trainflow.metrics import predict_scores, score
from trainflow.models.families import FAMILIES
from trainflow.models.family import BuildRequest, FitRequest, scalar_params
from trainflow.models.settings import TrainSettings
from trainflow.schema import DatasetSchema
from trainflow.threads import fit_threads, limited


def build_estimator(family: str, task_type: str, settings: TrainSettings, seed: int, n_rows: int,
                    overrides: dict[str, Any] | None = None, schema: DatasetSchema | None = None) -> Any:
    """An unfitted estimator for a family and task type (``schema``: what networks and baselines read).

    Raises:
        TrainflowError: An unknown family, or one the data does not suit.
    """
    if family not in FAMILIES:
        raise TrainflowError(f"unknown model family '{family}' (known: {', '.join(FAMILIES)})")
    params = {**settings.params.get(family, {}), **(overrides or {})}
    return FAMILIES[family].build(BuildRequest(family, task_type, settings, seed, n_rows, params, schema))


def fit_family(family: str, schema: DatasetSchema, train: pd.DataFrame, validation: pd.DataFrame | None,
               transform_settings: TransformSettings, settings: TrainSettings, seed: int,
               checkpoint_dir: str | None = None, init_weights: dict | None = None,
               on_iteration: Any = None, clock: Any = None) -> tuple[Pipeline, dict, pd.DataFrame]:
    """Fit one family's encoding step and estimator on training features.

    Args:
        validation: Rows for early stopping and the validation metrics; None: fit on ``train`` alone (a refit
            with a number of rounds or epochs found before), with no metrics.
        checkpoint_dir: Networks checkpoint every epoch to ``<dir>/<family>.pt`` and resume from it.
        init_weights: A state dict a network starts from (transfer learning).
        on_iteration: ``f(step, score)`` after each LightGBM round or network epoch, with the validation
            score (larger is better: LightGBM's first metric, negated when it is a loss; the network's
            epoch metric); tuning prunes trials with it by raising.
        clock: A ``trainflow.budget.FitClock``: boosting and networks stop at its deadline, keeping their best
            round or epoch so far (``info["stopped_by_time_limit"]`` says at which), and log a heartbeat.

    Returns:
        ``(fitted encode+model pipeline, info, history)``; ``info`` holds the validation metrics and
        predictions (``validation_scores``: probabilities or values; None without validation rows),
        timings and the best iteration, ``history`` the per-iteration validation curve (LightGBM)
        or the per-epoch history (networks).
    """
    label = schema.label
    as_label = float if schema.task == "regression" else str
    x_tr, y_tr = train.drop(columns=[label]), train[label].to_numpy().astype(as_label)
    x_va = y_va = None
    if validation is not None:
        x_va, y_va = validation.drop(columns=[label]), validation[label].to_numpy().astype(as_label)
    encoding = FAMILIES[family].encoding(transform_settings.categorical_encoding)
    encoder = encoder_for(schema, encoding)
    x_tr_e, x_va_e = x_tr, x_va
    if encoder != "passthrough":
        encoder = clone(encoder).set_output(transform="pandas").fit(x_tr)
        x_tr_e = encoder.transform(x_tr)
        x_va_e = encoder.transform(x_va) if x_va is not None else None
    est = build_estimator(family, schema.task, settings, seed, len(x_tr), schema=schema)
    with limited(fit_threads(settings.n_jobs)):  # BLAS, OpenMP and torch pools too, not only the n_jobs libraries
        started = time.perf_counter()
        fitted = FAMILIES[family].fit(est, FitRequest(family, x_tr_e, y_tr, x_va_e, y_va, schema, settings, encoding,
                                                      on_iteration, checkpoint_dir, init_weights, clock))
        fit_seconds = time.perf_counter() - started
        est = est if fitted.estimator is None else fitted.estimator
        started = time.perf_counter()
        metrics: dict[str, float] = {}
        scores = None
        if x_va_e is not None:
            scores = predict_scores(est, x_va_e, schema.task)
            metrics = score(schema.task, y_va, scores, getattr(est, "classes_", None), schema.positive_class)
        predict_seconds = time.perf_counter() - started
    pipe = Pipeline([("encode", encoder), ("model", est)])
    info = {"family": family, "encoding": encoding, "estimator": type(est).__name__, "metrics": metrics,
            "device": getattr(est, "device_", "cpu"),
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "best_iteration": fitted.best_iteration,
            "validation_scores": scores,
            "n_train": len(x_tr), "params": scalar_params(est.get_params(deep=False))}
    extra = dict(fitted.extra or {})
    info["params"].update(extra.pop("params", {}))
    info.update(extra)
    history = fitted.history if fitted.history is not None else pd.DataFrame()
    if history.empty:
        history = pd.DataFrame([{"family": family, "iteration": 1, "split": "validation",
                                 "metric": k, "value": v} for k, v in metrics.items()])
    return pipe, info, history


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model depends on (recorded in its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for lib in ("scikit-learn", "lightgbm", "torch", "numpy", "pandas"):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            continue
    return out
