"""A network as a scikit-learn estimator, so that it is one more family of the train stage.

``Net.fit`` learns the statistics of the training inputs, builds the torch module and trains it with the
one loop (``fit_loop``); ``ClassifierNet`` and ``RegressorNet`` add the loss, the epoch metric and the
predictions of each kind of task. A fitted network is saved with the rest of the Pipeline as safetensors
(the weights) and JSON (settings, statistics, classes): nothing pickled.

Transfer learning: ``fit(..., init_weights=state_dict)`` starts from another model's body (the head is
always new) and ``NNSettings.freeze_body`` trains the head alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from trainflow.device import pick_device
from trainflow.errors import TrainflowError
from trainflow.models.networks.loop import NNSettings, batched, fit_loop, init_linear
from trainflow.threads import fit_threads, torch_threads


class Net(BaseEstimator):
    """A network as a scikit-learn estimator: ``fit`` learns the data statistics, builds and trains.

    Args:
        settings: Network and loop settings (a dict of NNSettings fields).
        seed: Random seed.
        spec: What the network reads: ``categorical`` columns (MLP), ``shape`` [C, H, W] (CNN), ``text``
            column (Transformer), ``lags`` columns oldest first (forecaster).
    """

    eval_rows = 4096  # rows per forward pass when predicting
    classes_by_name: ClassVar[dict[str, type[Net]]] = {}  # every network, for loading one back from its files

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            Net.classes_by_name[cls.__name__] = cls

    def __init__(self, settings: dict | None = None, seed: int = 0, spec: dict | None = None):
        self.settings = settings
        self.seed = seed
        self.spec = spec

    @property
    def nn_settings(self) -> NNSettings:
        return NNSettings(**{k: v for k, v in (self.settings or {}).items() if not k.startswith("_")})

    # -- what each network reads (overridden by each network) --------------------------------
    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        """Statistics of the training inputs the network needs (JSON-able, saved with the model)."""
        raise NotImplementedError

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        """The input tensors of rows."""
        raise NotImplementedError

    def _module(self, n_out: int) -> Any:
        """The untrained torch module."""
        raise NotImplementedError

    exportable: ClassVar[bool] = False  # whether ``_tensor_inputs`` exists
    # what the exported module reads: "features", the input columns as one float32 tensor, or "token_ids", the
    # ids of a text column's tokens made by the graph's own tokeniser (``token_rules``)
    export_input: ClassVar[str] = "features"

    def _tensor_inputs(self, features: Any) -> list:
        """What ``_inputs`` makes, in torch operations on the input columns as one float32 tensor (in
        ``feature_names_in_`` order), so that an exported graph needs no Python."""
        raise NotImplementedError

    def _export_forward(self, model: Any, inputs: list) -> Any:
        """The module's raw outputs for ``_tensor_inputs`` (the forward pass, unless a network has a form of it
        without shapes that depend on the data)."""
        return model(*inputs)

    def export_module(self) -> Any:
        """A torch module from the input columns (one float32 tensor; token ids for ``export_input ==
        "token_ids"``) to what ``predict_proba`` (classifiers: also the argmax) or ``predict`` return, for
        ``torch.onnx.export``; None when not ``exportable``."""
        from torch import nn

        net = self
        if not net.exportable:
            return None

        class Served(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = net.model_

            def forward(self, features):  # noqa: ANN001, ANN202
                raw = net._export_forward(self.model, net._tensor_inputs(features))
                return net._tensor_outputs(raw, features)

        return Served().eval()

    def _fit_target(self, X: pd.DataFrame, encoded: np.ndarray) -> None:  # noqa: N803
        """Learn statistics of the training target (the forecaster's scale); none by default."""

    def _target(self, X: pd.DataFrame, encoded: np.ndarray) -> np.ndarray:  # noqa: N803
        """The training target of rows from the encoded labels (the forecaster's depends on X)."""
        return encoded

    def _build(self) -> Any:
        model = self._module(self._n_out())
        init_linear(model, self.nn_settings.init)
        return model

    # -- training -----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame | None = None,  # noqa: N803
            y_val: np.ndarray | None = None, checkpoint: str | Path | None = None,
            on_epoch: Callable[[dict], None] | None = None, init_weights: dict | None = None,
            time_up: Callable[[], bool] | None = None) -> "Net":
        """Learn the data statistics, build the network and train it (see ``fit_loop``).

        Args:
            X: Training inputs.
            y: Training target.
            X_val: Validation inputs for early stopping.
            y_val: Validation target.
            checkpoint: Checkpoint file (resumed from when it exists).
            on_epoch: Called with each epoch's history row.
            init_weights: A state dict to start from (transfer learning): the body's tensors are copied,
                the head is always new.
            time_up: Asked after every step; true ends the epoch there (the time limit, see ``fit_loop``).
        """
        import torch

        s = self.nn_settings
        torch.manual_seed(self.seed)
        self.device_ = pick_device()
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.state_ = self._learn(X)
        target = self._encode_y(np.asarray(y), fit=True)
        self._fit_target(X, target)
        model = self._build()
        self.transferred_ = 0
        if init_weights is not None:
            own = model.state_dict()
            usable = {k: v for k, v in init_weights.items()
                      if k in own and own[k].shape == v.shape and not k.startswith("head.")}  # always a new head
            if not any(k.startswith(("body.", "embeddings.", "tokens.", "positions.", "encoder.", "rnn."))
                       for k in usable):
                raise TrainflowError("init_from: none of the registered model's body weights fit this network "
                                     "(a different family or architecture)")
            model.load_state_dict(usable, strict=False)
            self.transferred_ = len(usable)
            if s.freeze_body:
                for name, p in model.named_parameters():
                    if not name.startswith("head."):
                        p.requires_grad_(False)
        inputs = self._inputs(X)
        val_inputs = self._inputs(X_val) if X_val is not None and y_val is not None else None
        val_target = (torch.from_numpy(self._target(X_val, self._encode_y(np.asarray(y_val))))
                      if val_inputs is not None else None)
        self.history_ = fit_loop(model, inputs, torch.from_numpy(self._target(X, target)), val_inputs, val_target,
                                 self._loss, self._metric, s, self.seed, self.device_, checkpoint, on_epoch,
                                 self.eval_rows, time_up)
        self.model_ = model
        watched = self.history_.get("validation_loss", self.history_["train_loss"])
        self.best_epoch_ = int(self.history_.loc[watched.idxmin(), "epoch"])
        return self

    def _raw(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        import torch

        dtype = next(self.model_.parameters()).dtype  # float32, or bfloat16 for a compressed variant
        inputs = [t.to(dtype) if t.is_floating_point() else t for t in self._inputs(X)]
        # the threads a fit gets (trainflow.threads), not torch's default of every core: evaluate, compress, batch
        # inference and serving predict outside any fit, beside other work
        with torch.no_grad(), torch_threads(fit_threads()):
            return batched(self.model_, inputs, self.eval_rows).float().numpy()

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # -- safe files -------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The weights as safetensors and the rest as JSON (no pickle)."""
        from safetensors.torch import save

        dtype = str(next(self.model_.parameters()).dtype).removeprefix("torch.")
        config = {"class": type(self).__name__, "settings": self.settings, "seed": self.seed, "spec": self.spec,
                  "state": self.state_, "features": list(self.feature_names_in_),
                  "classes": getattr(self, "classes", None), "best_epoch": self.best_epoch_, "device": self.device_,
                  "dtype": dtype}
        weights = {k: v.contiguous() for k, v in self.model_.state_dict().items()}
        return {"nn.safetensors": save(weights), "nn.json": json.dumps(config).encode()}

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> "Net":
        from safetensors.torch import load

        config = json.loads(files["nn.json"])
        target = Net.classes_by_name[config["class"]]
        spec = config.get("spec") or {"categorical": config.get("categorical")}  # files of the first MLP version
        est = target(settings=config["settings"], seed=config["seed"], spec=spec)
        est.state_ = config.get("state") or {"cardinalities": config["cardinalities"],
                                             "y": (config["settings"] or {}).get("_y", [0.0, 1.0])}
        est.feature_names_in_ = np.asarray(config["features"], dtype=object)
        est.best_epoch_ = config["best_epoch"]
        est.device_ = config["device"]
        if config["classes"] is not None:
            est.classes = config["classes"]
        import torch

        dtype = config.get("dtype", "float32")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise TrainflowError(f"nn.json: weights of type {dtype!r} are not a network's")
        est.model_ = est._build().to(getattr(torch, dtype))  # bfloat16: a compress stage variant
        est.model_.load_state_dict(load(files["nn.safetensors"]))
        est.model_.eval()
        return est


class ClassifierNet(ClassifierMixin):
    """Softmax over the classes; cross-entropy loss; accuracy as the epoch metric."""

    def _encode_y(self, y: np.ndarray, fit: bool = False) -> np.ndarray:
        y = y.astype(str)
        if fit:
            self.classes = sorted(np.unique(y).tolist())
        codes = pd.Categorical(y, categories=self.classes).codes.astype(np.int64)
        return np.where(codes < 0, -100, codes)  # -100 (a class not seen in training): ignored by the loss

    def _n_out(self) -> int:
        return len(self.classes)

    def _loss(self, out, target):  # noqa: ANN001, ANN202
        import torch.nn.functional as F  # noqa: N812

        return F.cross_entropy(out.float(), target)

    def _metric(self, out, target) -> float:  # noqa: ANN001
        return float((out.argmax(dim=1) == target).float().mean())

    def _tensor_outputs(self, raw, features):  # noqa: ANN001, ANN202, ARG002
        import torch

        probabilities = torch.softmax(raw.float(), dim=1)
        return probabilities.argmax(dim=1), probabilities

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        raw = self._raw(X)
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class RegressorNet(RegressorMixin):
    """Squared error on a standardised target; negative MSE as the epoch metric."""

    def _encode_y(self, y: np.ndarray, fit: bool = False) -> np.ndarray:
        y = y.astype(np.float64)
        if fit:
            self.state_["y"] = [float(y.mean()), float(y.std() or 1.0)]
        mean, std = self.state_["y"]
        return ((y - mean) / std).astype(np.float32)[:, None]

    def _n_out(self) -> int:
        return 1

    def _loss(self, out, target):  # noqa: ANN001, ANN202
        import torch.nn.functional as F  # noqa: N812

        return F.mse_loss(out.float(), target)

    def _metric(self, out, target) -> float:  # noqa: ANN001
        return float(-((out - target) ** 2).mean())

    def _tensor_outputs(self, raw, features):  # noqa: ANN001, ANN202, ARG002
        mean, std = self.state_.get("y", [0.0, 1.0])
        return raw.float() * std + mean

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        raw = self._raw(X)[:, 0]
        mean, std = self.state_.get("y", [0.0, 1.0])
        return raw * std + mean
