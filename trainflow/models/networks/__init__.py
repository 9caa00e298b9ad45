"""The neural network families: one training loop (``loop``), the estimator they share (``base``) and one
short module per network (``mlp``, ``cnn``, ``transformer``, ``gru``), on CUDA, then MPS, then CPU.

A new network is a module with a ``Net`` subclass (what it reads, its torch module), imported here, and
its family in ``network_for``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.errors import TrainflowError
from trainflow.forms import set_values
from trainflow.models.family import BuildRequest, Family, FitRequest, FitResult, ModelFormat, ParamSpec, param
from trainflow.models.networks.base import Net
from trainflow.models.networks.cnn import CNNClassifier
from trainflow.models.networks.compress import network_compressions
from trainflow.models.networks.exporting import network_to_onnx
from trainflow.models.networks.gru import RNNForecaster
from trainflow.models.networks.loop import NNSettings, NonFiniteLoss
from trainflow.models.networks.mlp import MLPClassifier, MLPRegressor
from trainflow.models.networks.transformer import TextTransformerClassifier, tokenize
from trainflow.progress import Progress

if TYPE_CHECKING:
    from trainflow.models.settings import TrainSettings
    from trainflow.schema import DatasetSchema

__all__ = ["NETWORKS", "NET_CLASSES", "CNNClassifier", "MLPClassifier", "MLPRegressor", "NNSettings", "Net",
           "NonFiniteLoss", "RNNForecaster", "TextTransformerClassifier", "build_network", "fit_network", "network_for",
           "network_spec", "nn_settings_for", "tokenize"]


NETWORKS = ("mlp", "cnn", "transformer", "gru")


NET_CLASSES = Net.classes_by_name  # every network class by name (filled as each module above defines its own)


def network_for(family: str, task_type: str) -> type[Net]:
    """The estimator class of a network family for a task type."""
    if family == "mlp":
        return MLPRegressor if task_type == "regression" else MLPClassifier
    classes = {"cnn": CNNClassifier, "transformer": TextTransformerClassifier, "gru": RNNForecaster}
    est = classes[family]
    if (task_type == "regression") != (est is RNNForecaster):
        raise TrainflowError(f"the {family} family does not do {task_type} (cnn, transformer: classification; "
                             "gru: forecasting a series)")
    return est


def nn_settings_for(schema: DatasetSchema | None, settings: TrainSettings) -> NNSettings:
    """The network settings a run uses: those the settings set, else the schema's (``schema.nn``), else the
    built-in defaults."""
    return NNSettings(**{**(schema.nn if schema is not None else {}), **set_values(settings.nn)})


def network_spec(family: str, schema: DatasetSchema) -> dict[str, Any]:
    """What a network reads, from the schema: category columns, image shape, text column or window."""
    if family == "cnn":
        if schema.image is None:
            raise TrainflowError(f"the cnn family needs an image dataset; schema '{schema.name}' has no image block")
        return {"shape": [schema.image.channels, schema.image.height, schema.image.width]}
    if family == "transformer":
        if not schema.text_features:
            raise TrainflowError(f"the transformer family needs a text column; schema '{schema.name}' has none")
        return {"text": schema.text_features[0]}
    if family == "gru":
        lags = [c for c in schema.numeric_features if c.startswith("lag_")]
        if not lags:
            raise TrainflowError(f"the gru family needs a time series; schema '{schema.name}' has no series block")
        return {"lags": lags}
    return {"categorical": schema.categorical_features}


def build_network(r: BuildRequest) -> Net:
    """The network of ``r.family`` with the run's network settings (parameters of a trial override them)."""
    base = nn_settings_for(r.schema, r.settings)
    settings = base.model_copy(update={k: v for k, v in r.params.items() if k in NNSettings.model_fields})
    spec = network_spec(r.family, r.schema) if r.schema is not None else {}
    return network_for(r.family, r.task_type)(settings=settings.model_dump(), seed=r.seed, spec=spec)


def fit_network(est: Net, r: FitRequest) -> FitResult:
    """Train with the loop: early stopping on the validation loss, a checkpoint per epoch under
    ``r.checkpoint_dir`` (deleted once the model is fitted), progress per epoch unless a trial reports."""
    family = r.family
    s = est.nn_settings
    path = Path(r.checkpoint_dir) / f"{family}.pt" if r.checkpoint_dir and s.checkpoint else None
    bar = Progress(s.max_epochs, f"{family} epochs") if r.on_iteration is None else None  # no artifact per trial

    def on_epoch(row: dict) -> None:
        if bar is not None:
            loss = row.get("validation_loss", row["train_loss"])
            part = f" ({row['partial']:.0%} of its rows: the time limit)" if "partial" in row else ""
            bar.advance(f"epoch {row['epoch']}{part}: train loss {row['train_loss']:.4f}, validation loss "
                        f"{loss:.4f}, validation metric {row.get('validation_metric', float('nan')):.4f}")
        if r.on_iteration is not None:
            r.on_iteration(row["epoch"], row["validation_metric"])
        return r.clock is not None and r.clock.tick(row["epoch"], "epoch")  # True: stop, the time is up

    try:
        est.fit(r.x_train, r.y_train, X_val=r.x_validation, y_val=r.y_validation, checkpoint=path,
                init_weights=r.init_weights, on_epoch=on_epoch, time_up=None if r.clock is None else r.clock.due)
    finally:
        if bar is not None:
            bar.close()
    if bar is not None:
        bar.finish()
    if path is not None:
        path.unlink(missing_ok=True)  # the model is saved; a re-run starts afresh (or is cached)
    epochs = est.history_.drop(columns="partial", errors="ignore")  # the cut epoch's share: in ``extra``
    history = epochs.melt(id_vars="epoch", var_name="metric", value_name="value").rename(
        columns={"epoch": "iteration"}).assign(family=family, split="train/validation")
    extra = {"params": est.nn_settings.model_dump(exclude={"init_from"}), "transferred_tensors": est.transferred_,
             "precision": "bfloat16 autocast" if est.device_ == "cuda" else "float32"}
    if r.clock is not None and r.clock.stopped_at is not None:
        extra["stopped_by_time_limit"] = r.clock.stopped_at
        if "partial" in est.history_:  # the last epoch, ended by the time limit
            extra["last_epoch_share"] = float(est.history_["partial"].iloc[-1])
    return FitResult(best_iteration=est.best_epoch_, history=history, extra=extra)


# a network's weights as safetensors and the rest as JSON (``Net.to_files``)
TORCH_SAFETENSORS = ModelFormat("torch-safetensors", lambda model: isinstance(model, Net),
                                lambda model, _: (model.to_files(), {}),
                                lambda files, meta, _: Net.from_files(files))


def _network(search_space: dict[str, ParamSpec], from_trial: Any = None,
             encodings: tuple[str, ...] = ("onehot", "ordinal")) -> Family:
    return Family(build_network, fit_network, network=True, cost=5.0, search_space=search_space,  # minutes on a CPU
                  model_format=TORCH_SAFETENSORS, from_trial=from_trial, to_onnx=network_to_onnx,
                  compressions=network_compressions, encodings=encodings)


def _mlp_trial(params: dict[str, Any]) -> dict[str, Any]:
    """``n_layers`` x ``width`` as ``hidden``: the widths halving layer by layer (at least 8)."""
    out = dict(params)
    if "n_layers" in out:
        n, width = int(out.pop("n_layers")), int(out.pop("width", 128))
        out["hidden"] = [max(8, width // 2 ** i) for i in range(n)]
    return out


def _cnn_trial(params: dict[str, Any]) -> dict[str, Any]:
    """``n_blocks`` x ``base_channels`` as ``channels``: doubling block by block."""
    out = dict(params)
    if "n_blocks" in out:
        n, base = int(out.pop("n_blocks")), int(out.pop("base_channels", 16))
        out["channels"] = [base * 2 ** i for i in range(n)]
    return out


# the architecture is part of each network's space (layers x width, channels, model size)
MLP = _network({"n_layers": param("int", 1, 3), "width": param("int", 32, 256, log=True),
                "dropout": param("float", 0.0, 0.5), "embedding_dim": param("int", 2, 16, log=True),
                "learning_rate": param("float", 3e-4, 1e-2, log=True),
                "weight_decay": param("float", 1e-6, 1e-2, log=True)}, _mlp_trial,
               encodings=("ordinal",))  # its embeddings need codes, whatever the setting
CNN = _network({"n_blocks": param("int", 1, 3), "base_channels": param("categorical", choices=[8, 16, 32]),
                "dropout": param("float", 0.0, 0.5), "learning_rate": param("float", 3e-4, 1e-2, log=True)},
               _cnn_trial)
TRANSFORMER = _network({"model_dim": param("categorical", choices=[32, 64, 128]), "layers": param("int", 1, 3),
                        "dropout": param("float", 0.0, 0.3), "learning_rate": param("float", 3e-4, 3e-3, log=True)})
GRU = _network({"rnn_cell": param("categorical", choices=["gru", "lstm"]), "rnn_hidden": param("int", 8, 64, log=True),
                "learning_rate": param("float", 1e-3, 1e-2, log=True)})
