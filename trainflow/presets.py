"""Presets: what ``fast``, ``default`` and ``best`` set where the training flow's settings leave a field empty,
as AutoGluon's presets trade time for quality. A field the user set always wins."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from trainflow.cluster import worker_count
from trainflow.models.families import FAMILIES
from trainflow.models.settings import DEFAULT_CV_FOLDS, DEFAULT_FAMILIES, families_for
from trainflow.schema import DatasetSchema

S = TypeVar("S", bound=BaseModel)
DEFAULT_TRIALS = 10  # the default preset's tuning trials

Preset = Literal["fast", "default", "best"]
# what each preset sets where the settings leave a field empty (tabular data; families only when the schema names
# none, cv_folds only without a network family); a field given explicitly always wins
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {"tune": {"n_trials": 0}, "train": {"families": ["lightgbm", "logistic"], "cv_folds": 0, "bag": "off"},
             "compress": {"enabled": "off"}},
    "default": {"tune": {"n_trials": DEFAULT_TRIALS},
                "train": {"families": DEFAULT_FAMILIES["tabular"], "cv_folds": DEFAULT_CV_FOLDS, "bag": "off"},
                "compress": {"enabled": "on"}},
    # best: the default families (extra trees, once added here, got ensemble weight from fitting the out-of-fold
    # predictions' noise: replayed on 27 benchmark runs, leaving it out changed the served model on 6, each for
    # the better; benchmarks/README.md)
    "best": {"tune": {"n_trials": 40},
             "train": {"families": DEFAULT_FAMILIES["tabular"], "cv_folds": 8, "bag": "on"},
             "compress": {"enabled": "on"}},
}


def with_preset(settings: S, schema: DatasetSchema) -> S:
    """The training flow's settings (``flows.training.TrainingSettings``: ``preset``, ``compute``, ``tune``,
    ``train`` and ``compress`` blocks) with the fields they leave empty filled from ``settings.preset`` (see
    ``PRESETS``), and with the Dask engine LightGBM's and tuning's Dask scheduler from ``compute`` (tuning: one
    trial at a time per worker of that cluster, unless ``tune.workers`` says how many)."""
    preset = PRESETS[settings.preset]
    tune = settings.tune.model_copy(update={k: v for k, v in preset["tune"].items()
                                            if getattr(settings.tune, k) is None})
    train_update = {}
    if settings.compute.engine == "dask":
        if settings.train.dask_address is None:
            train_update["dask_address"] = settings.compute.dask_address
        if tune.dask_address is None and tune.enabled and tune.n_trials:  # trials spread over the compute cluster
            tune = tune.model_copy(update={"dask_address": settings.compute.dask_address,
                                           "workers": tune.workers or worker_count(settings.compute.dask_address)})
    if schema.modality == "tabular":
        if settings.train.families is None and not schema.families:
            train_update["families"] = list(preset["train"]["families"])
        families = train_update.get("families") or families_for(schema, settings.train)
        if settings.train.cv_folds is None and not any(FAMILIES[f].network for f in families):
            train_update["cv_folds"] = preset["train"]["cv_folds"]
        if settings.train.bag == "auto":
            train_update["bag"] = preset["train"]["bag"]
    compress = settings.compress.model_copy(update={k: v for k, v in preset["compress"].items()
                                                    if getattr(settings.compress, k) in (None, "auto")})
    return settings.model_copy(update={"tune": tune, "train": settings.train.model_copy(update=train_update),
                                       "compress": compress})
