"""What a model family is: how to build its unfitted estimator, how to fit it when plain ``fit(X, y)`` is not
enough (early stopping on the validation rows, checkpoints, a per-iteration history), the hyperparameters
tuning may search (``ParamSpec``), how its fitted model is saved (``ModelFormat``), exported to ONNX
(``Family.onnx_converters``, ``Family.to_onnx``) and compressed (``Family.compressions``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from trainflow.forms import FormModel

if TYPE_CHECKING:
    from trainflow.budget import FitClock
    from trainflow.models.settings import TrainSettings
    from trainflow.schema import DatasetSchema


class ParamSpec(FormModel):
    """One hyperparameter's range."""

    type: Literal["float", "int", "categorical"]
    low: float | None = Field(None, description="lowest value (float, int)")
    high: float | None = Field(None, description="highest value (float, int)")
    log: bool = Field(False, description="sample on a log scale")
    choices: list[Any] | None = Field(None, description="values (categorical)")
    grid: list[Any] | None = Field(None, description="values for grid search; empty: choices, or low, middle, high")

    def suggest(self, trial: Any, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def nearest(self, value: Any) -> tuple[bool, Any]:
        """``(True, value)`` moved into the range when it is a value of this parameter's type; ``(False, None)``
        otherwise (a categorical value that is not a choice, a missing number)."""
        if self.type == "categorical":
            return (value in self.choices, value) if self.choices else (False, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False, None
        value = min(max(value, self.low), self.high)
        return True, int(round(value)) if self.type == "int" else float(value)

    def grid_values(self) -> list[Any]:
        if self.grid is not None:
            return list(self.grid)
        if self.type == "categorical":
            return list(self.choices)
        mid = math.sqrt(self.low * self.high) if self.log and self.low > 0 else (self.low + self.high) / 2
        values = [self.low, mid, self.high]
        return sorted({int(round(v)) for v in values}) if self.type == "int" else values


def param(type_: str, low: float | None = None, high: float | None = None, log: bool = False,
          choices: list | None = None) -> ParamSpec:
    """One parameter of a family's search space: ``param("float", 0.01, 0.3, log=True)``,
    ``param("categorical", choices=[8, 16, 32])``."""
    return ParamSpec(type=type_, low=low, high=high, log=log, choices=choices)


@dataclass(frozen=True)
class BuildRequest:
    """What a family's builder reads.

    Args:
        family: The family's name.
        task_type: binary, multiclass or regression.
        settings: The train settings (rounds, jobs, network settings).
        seed: Random seed.
        n_rows: Training rows (the SVM picks a kernel by it).
        params: Estimator parameters the settings or a tuning trial set.
        schema: The dataset (what networks and baselines read); None when a caller has none.
    """

    family: str
    task_type: str
    settings: TrainSettings
    seed: int
    n_rows: int
    params: dict[str, Any]
    schema: DatasetSchema | None

    @property
    def regression(self) -> bool:
        return self.task_type == "regression"


@dataclass(frozen=True)
class FitRequest:
    """The training and validation rows (after the family's encoding) and what the fit may use beside them.

    Args:
        family: The family's name.
        on_iteration: ``f(step, score)`` after each boosting round or epoch with the validation score (larger
            is better); tuning prunes a trial by raising from it.
        checkpoint_dir: Where a network checkpoints each epoch (None: no checkpoints).
        init_weights: A state dict a network starts from (transfer learning).
        encoding: The categorical encoding the family got (LightGBM's native categoricals need to know).
        clock: Checked after every boosting round or epoch: a heartbeat log line, and whether the time limit
            has passed (the fit then stops and keeps its best round or epoch so far); None: no limit, no lines.
    """

    family: str
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_validation: pd.DataFrame | None
    y_validation: np.ndarray | None
    schema: DatasetSchema
    settings: TrainSettings
    encoding: str
    on_iteration: Callable[[int, float], None] | None = None
    checkpoint_dir: str | None = None
    init_weights: dict | None = None
    clock: FitClock | None = None


@dataclass(frozen=True)
class FitResult:
    """What a family's fit reports beside the fitted estimator: its best iteration and its learning curve
    (rows of family, iteration, split, metric, value; empty when it has none)."""

    best_iteration: int | None = None
    history: pd.DataFrame | None = None
    extra: dict[str, Any] | None = None  # family facts for the model's metadata (network precision...)
    estimator: Any = None  # the fitted estimator, when the fit made another object than the one it was given


def scalar_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a leaderboard and a model's metadata record: those with a plain value (numbers, text,
    booleans, None), not nested estimators or dictionaries."""
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool, type(None)))}


def plain_fit(est: Any, request: FitRequest) -> FitResult:
    """``est.fit(X, y)`` on the training rows: the families without early stopping."""
    est.fit(request.x_train, request.y_train)
    return FitResult()


def model_classes(model: Any) -> list | None:
    """A classifier's class labels as plain values for ``model.json``; None for a regressor."""
    if not hasattr(model, "classes_"):
        return None
    return [c.item() if hasattr(c, "item") else c for c in model.classes_]


@dataclass(frozen=True)
class ModelFormat:
    """How a family's fitted model is saved in its own safe format beside the Pipeline's skops file, and rebuilt
    (``trainflow.models.bundle``). Never pickled: a format is text, weights or a library's own model file.

    Args:
        name: ``model.json``'s ``model_format``; a bundle is loaded by the format of this name.
        claims: Whether a fitted model is one this format saves.
        dump: ``(model, dump_member)`` -> ``(files, metadata for model.json)``; ``dump_member(pipeline, family)``
            saves a nested model as a bundle of its own (an ensemble's members).
        load: ``(files, metadata, load_member)`` -> the model; ``load_member(files)`` rebuilds a nested bundle.
    """

    name: str
    claims: Callable[[Any], bool]
    dump: Callable[[Any, Callable[[Any, str], dict[str, bytes]]], tuple[dict[str, bytes], dict[str, Any]]]
    load: Callable[[dict[str, bytes], dict[str, Any], Callable[[dict[str, bytes]], Any]], Any]


@dataclass(frozen=True)
class Compressed:
    """One smaller or faster form of a fitted model that its family's ``compressions`` made; the compress stage
    measures it against the native model on the test rows and keeps it only where it keeps the predictions.

    Args:
        name: Its name in the compression report when measured as it is (``torch_pruned_50``).
        model: The serving Pipeline with the compressed model in it.
        note: How it was made, for the report.
        native: Measured as it is, in the family's own runtime.
        onnx: Also (or only, when not ``native``) measured in ONNX Runtime under this name; None: not exported.
        servable: It has safe files the registry can store and load (torchao's int8 tensors have none).
        size: Its bytes as stored (0: the compress stage counts its bundle).
    """

    name: str
    model: Any
    note: str
    native: bool = True
    onnx: str | None = None
    servable: bool = True
    size: int = 0


@dataclass(frozen=True)
class CompressRequest:
    """What a family's ``compressions`` reads.

    Args:
        pipeline: The serving Pipeline as trained.
        meta: Its ``model.json`` (family, selection metric, how it was selected).
        schema: The dataset.
        validation: The validation split, rows a model trained on the training split did not learn from.
        history: The train stage's learning curves (``train/training_history``), None when it wrote none.
        options: The compress stage's settings (``prune_sparsity``, ``fewer_trees``, ``max_metric_drop``...).
        native_size: The native bundle's bytes.
        bundle_size: ``f(pipeline)``: the bytes of a Pipeline saved as the registry saves a model.
    """

    pipeline: Any
    meta: dict[str, Any]
    schema: DatasetSchema
    validation: pd.DataFrame
    history: pd.DataFrame | None
    options: Mapping[str, Any]
    native_size: int
    bundle_size: Callable[[Any], int]


# A family's compressions: its compressed forms, and a report row (variant, runtime, status, reason) for each
# form it could not make or that does not apply
Compressions = Callable[[CompressRequest], tuple[list[Compressed], list[dict[str, Any]]]]


@dataclass(frozen=True)
class Family:
    """A model family, declared whole in its own module: ``build`` makes the unfitted estimator, ``fit`` trains it
    (default: plain ``fit``), and the fields below say how it is tuned, saved, loaded and scheduled."""

    build: Callable[[BuildRequest], Any]
    fit: Callable[[Any, FitRequest], FitResult] = plain_fit
    network: bool = False  # trained by the torch loop (epochs, checkpoints, a device)
    out_of_bag: bool = False  # bagged: scored on its out-of-bag predictions instead of k fits (tasks.train)
    # boosts until early stopping: refitted with the folds' mean best round, or served as its fold models
    # averaged with ``train.bag`` (tasks.train)
    boosted: bool = False
    # its time against LightGBM's on the same rows, for sharing a time limit among families (trainflow.budget);
    # what a family leaves unused goes to the next, so a rough figure costs little
    cost: float = 1.0
    # the parameters tuning searches, by the builder's parameter name (tasks.tune; ``tune.space`` overrides
    # them); empty: the family has nothing to tune, and naming it as tune.family is refused before the flow runs
    search_space: Mapping[str, ParamSpec] = field(default_factory=dict)
    # a trial's parameters as the settings the family trains with, where the space names them otherwise (a
    # network's layer count and width become its list of widths); None: the same names
    from_trial: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # how its fitted model is saved beside the Pipeline (None: inside the Pipeline's skops file)
    model_format: ModelFormat | None = None
    # the exact types (full names, no prefixes) its skops file may name beyond skops' trusted set and the
    # preprocessor's (trainflow.modelio.ALLOWED_TYPES); loading its bundle trusts these and nothing more
    skops_types: frozenset[str] = frozenset()
    # teaches skl2onnx its own estimator classes (``update_registered_converter``), once per process before the
    # first export (trainflow.export); None: skl2onnx already converts what it fits
    onnx_converters: Callable[[], None] | None = None
    # ``(pipeline, schema, export)`` -> the ONNX graph's bytes, for a family whose serving Pipeline skl2onnx cannot
    # walk as one (a torch network, an ensemble joining its members' graphs); ``export(pipeline, family)`` is the
    # project's exporter, for nested pipelines. None: skl2onnx converts the Pipeline, preprocessing included
    to_onnx: Callable[[Any, DatasetSchema, Callable[[Any, str], bytes]], bytes] | None = None
    # the family's own compressed forms beside the ONNX and ONNX-int8 variants every family gets (tasks.compress)
    compressions: Compressions | None = None
    # the categorical encodings it takes (``transform.categorical_encoding``), the first the one ``auto`` gives it:
    # one-hot codes, integer codes, or integer codes the model splits on as categories ("native")
    encodings: tuple[str, ...] = ("onehot", "ordinal")

    @property
    def tunable(self) -> bool:
        return bool(self.search_space)

    def encoding(self, setting: str) -> str:
        """The encoding it gets under ``setting``: its first for ``auto``, the setting where it takes it, else integer
        codes where it takes them, else its first (a network's embeddings need codes, whatever the setting)."""
        if setting == "auto":
            return self.encodings[0]
        if setting in self.encodings:
            return setting
        return "ordinal" if "ordinal" in self.encodings else self.encodings[0]

    @property
    def interruptible(self) -> bool:
        """Whether a fit stops at its deadline by itself (after a boosting round or an epoch)."""
        return self.boosted or self.network
