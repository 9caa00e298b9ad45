"""Neural networks: one PyTorch training loop and four networks, on CUDA, then MPS, then CPU.

The loop (``fit_loop``): forward pass, loss, backward pass, gradient clipping, parameter update, epochs;
Adam, AdamW or SGD with momentum; a cosine or constant learning-rate schedule; early stopping on the
validation loss that restores the best weights; a per-epoch history (train and validation loss and
metric, learning rate, gradient norm, seconds); a NaN or infinite loss stops with an error naming the
epoch and step; bf16 autocast on CUDA; data kept on the device when it fits, pinned host memory
otherwise; deterministic with a seed on CPU; a checkpoint after every epoch (model, optimiser,
scheduler, random generators, history), written atomically, from which a killed run resumes and ends
where an uninterrupted one would; DistributedDataParallel when launched by ``torchrun``.

The networks, each a scikit-learn estimator so that it is one more family of the train stage, saved in
the same Pipeline (weights as safetensors, the rest as JSON, nothing pickled):

- ``mlp``: tabular MLP with an embedding per categorical column (``MLPClassifier``, ``MLPRegressor``);
- ``cnn``: small CNN for images stored as pixel columns; resizes and standardises inside the network,
  the statistics fitted on the training split and saved with the weights (``CNNClassifier``);
- ``transformer``: Transformer encoder over tokens of a text column, with a vocabulary built on the
  training split and saved with the model (``TextTransformerClassifier``);
- ``gru``: GRU or LSTM forecaster over a window of past values (``RNNForecaster``).

Transfer learning: ``fit(..., init_weights=state_dict)`` starts from another model's body (the head is
new when the outputs differ) and ``NNSettings.freeze_body`` trains the head alone.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from trainflow.errors import TrainflowError

NETWORKS = ("mlp", "cnn", "transformer", "gru")


class NNSettings(BaseModel):
    """How neural networks are built and trained (fields a network does not use are ignored)."""

    hidden: list[int] = Field([128, 64], description="MLP: widths of the hidden layers")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout after hidden layers")
    embedding_dim: int = Field(8, ge=1, description="MLP: largest embedding size for a categorical column")
    channels: list[int] = Field([32, 64], description="CNN: channels of each convolution block")
    image_size: int = Field(16, ge=4, description="CNN: images are resized to this square")
    vocab_size: int = Field(20_000, ge=10, description="text: largest vocabulary (built on the training split)")
    min_token_count: int = Field(2, ge=1, description="text: a token needs this many training occurrences")
    max_tokens: int = Field(256, ge=8, description="text: tokens kept per document")
    model_dim: int = Field(64, ge=8, description="text: Transformer width")
    heads: int = Field(4, ge=1, description="text: attention heads")
    layers: int = Field(2, ge=1, description="text: Transformer layers")
    rnn_cell: Literal["gru", "lstm"] = Field("gru", description="series: recurrent cell")
    rnn_hidden: int = Field(64, ge=4, description="series: recurrent state size")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adamw", description="adam, adamw or sgd (momentum 0.9)")
    learning_rate: float = Field(2e-3, gt=0, description="initial learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning-rate schedule over the epochs")
    init: Literal["kaiming", "xavier"] = Field("kaiming", description="weight initialisation of linear layers")
    batch_size: int = Field(512, ge=1, description="rows per step (split across processes under torchrun)")
    max_epochs: int = Field(40, ge=1, description="epochs before stopping regardless")
    patience: int = Field(6, ge=1, description="stop after this many epochs without a better validation loss")
    clip_grad_norm: float | None = Field(5.0, ge=0, description="clip the gradient norm to this (0: no clipping)")
    checkpoint: bool = Field(True, description="checkpoint every epoch; a re-run after a crash resumes from it")
    init_from: str | None = Field(None, description="fine-tune from a registered model, NAME@ALIAS or NAME:VERSION "
                                                    "(same network family)")
    freeze_body: bool = Field(True, description="with init_from: train the new head only")


class NonFiniteLoss(TrainflowError):
    """The loss became NaN or infinite; the message names the epoch and step."""


def pick_device() -> str:
    """cuda, then mps, then cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless a process group is up (``torchrun``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _init_linear(model: Any, how: str) -> None:
    from torch import nn

    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            (nn.init.kaiming_uniform_ if how == "kaiming" else nn.init.xavier_uniform_)(layer.weight)
            nn.init.zeros_(layer.bias)


def _save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves half a checkpoint."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _place(tensors: list, device: str) -> tuple[list, bool]:
    """Move the data to the device when it fits (a quarter of free memory); else pin it in host memory.

    Returns:
        ``(tensors, streamed)``: ``streamed`` is True when batches must be copied to the device per step.
    """
    import torch

    if device == "cpu":
        return tensors, False
    size = sum(t.element_size() * t.nelement() for t in tensors)
    free = torch.cuda.mem_get_info()[0] if device == "cuda" else 2 ** 33
    if size < free // 4:
        return [t.to(device) for t in tensors], False
    return [t.pin_memory() if device == "cuda" else t for t in tensors], True


def fit_loop(model: Any, inputs: list, target: Any, val_inputs: list | None, val_target: Any | None,
             loss_fn: Callable, metric_fn: Callable, settings: NNSettings, seed: int, device: str,
             checkpoint: str | Path | None = None, on_epoch: Callable[[dict], None] | None = None,
             eval_rows: int = 4096) -> pd.DataFrame:
    """Train ``model`` in place and leave the best epoch's weights in it (on the CPU).

    Args:
        model: A torch module called as ``model(*inputs)``.
        inputs: Input tensors of the training rows (first dimension: rows).
        target: Target tensor of the training rows.
        val_inputs: Validation inputs (None: early stopping watches the training loss).
        val_target: Validation target.
        loss_fn: ``loss_fn(output, target)`` → scalar tensor.
        metric_fn: ``metric_fn(output, target)`` → float (larger is better).
        settings: Optimiser, schedule, batch, epochs, patience, clipping.
        seed: Seeds the initial shuffle order and dropout.
        device: cuda, mps or cpu.
        checkpoint: File written after every epoch; if it exists, training resumes from it.
        on_epoch: Called with each epoch's history row (progress reports).
        eval_rows: Rows per forward pass when scoring the validation rows.

    Returns:
        The per-epoch history.

    Raises:
        NonFiniteLoss: The loss became NaN or infinite (the last good checkpoint is kept).
    """
    import torch

    s = settings
    rank, world = _distributed()
    torch.manual_seed(seed)
    model.to(device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if device == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[s.optimizer]
    opt = opt_cls(params, lr=s.learning_rate, weight_decay=s.weight_decay,
                  **({"momentum": 0.9} if s.optimizer == "sgd" else {}))
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.max_epochs) if s.schedule == "cosine"
             else torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0))
    data, streamed = _place([*inputs, target], device)
    val = [t.to(device) for t in [*val_inputs, val_target]] if val_inputs is not None else None
    generator = torch.Generator(device="cpu").manual_seed(seed)
    best, best_loss, stale, history, start_epoch = None, math.inf, 0, [], 0
    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.exists():
        ck = torch.load(path, map_location="cpu", weights_only=True)  # our own file, and tensors only anyway
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["torch_rng"])
        generator.set_state(ck["shuffle_rng"])
        best, best_loss, stale = ck["best"], float(ck["best_loss"]), int(ck["stale"])
        history, start_epoch = list(ck["history"]), int(ck["epoch"])
    autocast = device == "cuda"
    n = len(data[0]) - len(data[0]) % world
    per_step = max(1, s.batch_size // world)
    for epoch in range(start_epoch + 1, s.max_epochs + 1):
        if stale >= s.patience:
            break
        started = time.perf_counter()
        model.train()
        for m in model.modules():  # a frozen body keeps its normalisation statistics too (transfer learning)
            frozen = not any(p.requires_grad for p in m.parameters())
            if frozen and isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        order = torch.randperm(len(data[0]), generator=generator)[:n][rank::world]
        if not streamed:
            order = order.to(device)
        total, seen, norms = torch.zeros((), device=device), 0, []
        for step, first in enumerate(range(0, len(order), per_step), 1):
            idx = order[first:first + per_step]
            batch = [t[idx].to(device, non_blocking=True) if streamed else t[idx] for t in data]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(net(*batch[:-1]), batch[-1])
            if not torch.isfinite(loss):
                kept = f"; the last good checkpoint (epoch {epoch - 1}) is {path}" if path and epoch > 1 else ""
                raise NonFiniteLoss(f"the loss became {loss.item()} at epoch {epoch}, step {step}; lower the "
                                    f"learning rate ({s.learning_rate}) or clip gradients harder{kept}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            max_norm = s.clip_grad_norm or float("inf")
            norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm).detach())
            opt.step()
            total += loss.detach() * len(idx)
            seen += len(idx)
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(total)
            seen *= world
        lr = opt.param_groups[0]["lr"]
        sched.step()
        norm_values = torch.stack(norms).float().cpu().numpy()
        row = {"epoch": epoch, "train_loss": float(total) / max(seen, 1), "learning_rate": lr,
               "grad_norm": float(norm_values.mean()), "grad_norm_max": float(norm_values.max())}
        if val is not None:
            model.eval()
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                out = _batched(model, val[:-1], eval_rows).float()
            row["validation_loss"] = float(loss_fn(out, val[-1]))
            row["validation_metric"] = float(metric_fn(out, val[-1]))
        row["seconds"] = time.perf_counter() - started
        history.append(row)
        watched = row.get("validation_loss", row["train_loss"])
        if watched < best_loss - 1e-6:
            best_loss, stale = watched, 0
            best = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            stale += 1
        if path is not None and rank == 0:
            _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "torch_rng": torch.get_rng_state(), "shuffle_rng": generator.get_state(), "epoch": epoch,
                          "best": best, "best_loss": best_loss, "stale": stale, "history": history}, path)
        if on_epoch is not None and rank == 0:
            on_epoch(row)
    model.to("cpu")
    model.load_state_dict(best)  # early stopping keeps the best epoch, not the last
    model.eval()
    return pd.DataFrame(history)


def _batched(model: Any, inputs: list, rows: int) -> Any:
    import torch

    return torch.cat([model(*[t[i:i + rows] for t in inputs]) for i in range(0, len(inputs[0]), rows)])


# -- networks -----------------------------------------------------------------------------------

def _mlp_module(n_numeric: int, cardinalities: list[int], n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # code -1 (unknown) and -2.. are shifted to 0; every column gets one spare row for them
            self.embeddings = nn.ModuleList(nn.Embedding(c + 2, min(s.embedding_dim, (c + 2) // 2 + 1))
                                            for c in cardinalities)
            width = n_numeric + sum(e.embedding_dim for e in self.embeddings)
            layers: list[nn.Module] = []
            for h in s.hidden:
                layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(s.dropout)]
                width = h
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width, n_out)

        def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
            parts = [numeric] + [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
            return self.head(self.body(torch.cat(parts, dim=1)))

    return TabularMLP()


def _cnn_module(shape: list[int], mean: float, std: float, n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    channels, height, width = shape

    class ImageCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # the fitted standardisation travels with the weights (buffers are in the state dict)
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
            blocks: list[nn.Module] = []
            c_in = channels
            for c in s.channels:
                blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                           nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
                c_in = c
            self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(s.dropout))
            self.head = nn.Linear(c_in, n_out)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = pixels.view(-1, channels, height, width)
            if (height, width) != (s.image_size, s.image_size):
                x = F.interpolate(x, size=(s.image_size, s.image_size), mode="bilinear", align_corners=False)
            return self.head(self.body((x - self.mean) / self.std))

    return ImageCNN()


def _text_module(vocab: int, n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    from torch import nn

    class TextTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(vocab, s.model_dim, padding_idx=0)
            self.positions = nn.Embedding(s.max_tokens, s.model_dim)
            layer = nn.TransformerEncoderLayer(s.model_dim, s.heads, dim_feedforward=2 * s.model_dim,
                                               dropout=s.dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, s.layers, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(s.model_dim), nn.Dropout(s.dropout), nn.Linear(s.model_dim, n_out))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            keep = int((ids != 0).sum(dim=1).max().clamp(min=1))  # drop padding columns no row uses
            ids = ids[:, :keep]
            pad = ids == 0
            pos = torch.arange(keep, device=ids.device)
            h = self.encoder(self.tokens(ids) + self.positions(pos)[None], src_key_padding_mask=pad)
            weights = (~pad).unsqueeze(-1).to(h.dtype)
            return self.head((h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1))  # mean over tokens

    return TextTransformer()


def _rnn_module(n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    from torch import nn

    class Forecaster(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cell = nn.GRU if s.rnn_cell == "gru" else nn.LSTM
            self.rnn = cell(1, s.rnn_hidden, batch_first=True)
            self.head = nn.Sequential(nn.Dropout(s.dropout), nn.Linear(s.rnn_hidden, n_out))

        def forward(self, window: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(window.unsqueeze(-1))
            return self.head(out[:, -1])

    return Forecaster()


TOKEN = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and numbers."""
    return TOKEN.findall(str(text).lower())


class _Net(BaseEstimator):
    """A network as a scikit-learn estimator: ``fit`` learns the data statistics, builds and trains.

    Args:
        settings: Network and loop settings (a dict of NNSettings fields).
        seed: Random seed.
        spec: What the network reads: ``categorical`` columns (MLP), ``shape`` [C, H, W] (CNN), ``text``
            column (Transformer), ``lags`` columns oldest first (forecaster).
    """

    eval_rows = 4096  # rows per forward pass when predicting

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

    def _fit_target(self, X: pd.DataFrame, encoded: np.ndarray) -> None:  # noqa: N803
        """Learn statistics of the training target (the forecaster's scale); none by default."""

    def _target(self, X: pd.DataFrame, encoded: np.ndarray) -> np.ndarray:  # noqa: N803
        """The training target of rows from the encoded labels (the forecaster's depends on X)."""
        return encoded

    def _build(self) -> Any:
        model = self._module(self._n_out())
        _init_linear(model, self.nn_settings.init)
        return model

    # -- training -----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame | None = None,  # noqa: N803
            y_val: np.ndarray | None = None, checkpoint: str | Path | None = None,
            on_epoch: Callable[[dict], None] | None = None, init_weights: dict | None = None) -> "_Net":
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
                                 self.eval_rows)
        self.model_ = model
        watched = self.history_.get("validation_loss", self.history_["train_loss"])
        self.best_epoch_ = int(self.history_.loc[watched.idxmin(), "epoch"])
        return self

    def _raw(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        import torch

        with torch.no_grad():
            return _batched(self.model_, self._inputs(X), self.eval_rows).float().numpy()

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # -- safe files -------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The weights as safetensors and the rest as JSON (no pickle)."""
        from safetensors.torch import save

        config = {"class": type(self).__name__, "settings": self.settings, "seed": self.seed, "spec": self.spec,
                  "state": self.state_, "features": list(self.feature_names_in_),
                  "classes": getattr(self, "classes", None), "best_epoch": self.best_epoch_, "device": self.device_}
        weights = {k: v.contiguous() for k, v in self.model_.state_dict().items()}
        return {"nn.safetensors": save(weights), "nn.json": json.dumps(config).encode()}

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> "_Net":
        from safetensors.torch import load

        config = json.loads(files["nn.json"])
        target = NET_CLASSES[config["class"]]
        spec = config.get("spec") or {"categorical": config.get("categorical")}  # files of the first MLP version
        est = target(settings=config["settings"], seed=config["seed"], spec=spec)
        est.state_ = config.get("state") or {"cardinalities": config["cardinalities"],
                                             "y": (config["settings"] or {}).get("_y", [0.0, 1.0])}
        est.feature_names_in_ = np.asarray(config["features"], dtype=object)
        est.best_epoch_ = config["best_epoch"]
        est.device_ = config["device"]
        if config["classes"] is not None:
            est.classes = config["classes"]
        est.model_ = est._build()
        est.model_.load_state_dict(load(files["nn.safetensors"]))
        est.model_.eval()
        return est


class _Classifier(ClassifierMixin):
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

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        raw = self._raw(X)
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class _Regressor(RegressorMixin):
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

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        raw = self._raw(X)[:, 0]
        mean, std = self.state_.get("y", [0.0, 1.0])
        return raw * std + mean


class _MLPNet(_Net):
    """Tabular MLP: numeric columns and an embedding per categorical code column (``spec["categorical"]``)."""

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        return {"cardinalities": [int(max(X[c].max(), 0)) + 1 for c in (self.spec or {}).get("categorical") or []]}

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        cats = list((self.spec or {}).get("categorical") or [])
        numeric = np.nan_to_num(X.drop(columns=cats).to_numpy(dtype=np.float32))
        codes = (X[cats].to_numpy(dtype=np.int64) + 1 if cats else np.zeros((len(X), 0), dtype=np.int64))
        if cats:
            codes = np.clip(codes, 0, np.asarray(self.state_["cardinalities"])[None, :] + 1)
        return [torch.from_numpy(numeric), torch.from_numpy(codes)]

    def _module(self, n_out: int) -> Any:
        n_numeric = len(self.feature_names_in_) - len((self.spec or {}).get("categorical") or [])
        return _mlp_module(n_numeric, self.state_["cardinalities"], n_out, self.nn_settings)


class MLPClassifier(_Classifier, _MLPNet):
    """Tabular MLP classifier."""


class MLPRegressor(_Regressor, _MLPNet):
    """Tabular MLP regressor."""


class CNNClassifier(_Classifier, _Net):
    """CNN over images stored as pixel columns (``spec["shape"]``: [C, H, W])."""

    eval_rows = 1024

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        pixels = X.to_numpy(dtype=np.float32)
        return {"mean": float(pixels.mean()), "std": float(pixels.std() or 1.0)}

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        return [torch.from_numpy(np.nan_to_num(X.to_numpy(dtype=np.float32)))]

    def _module(self, n_out: int) -> Any:
        return _cnn_module(self.spec["shape"], self.state_["mean"], self.state_["std"], n_out, self.nn_settings)


class TextTransformerClassifier(_Classifier, _Net):
    """Transformer encoder over the tokens of one text column (``spec["text"]``)."""

    eval_rows = 256  # attention memory grows with rows x tokens^2

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        s = self.nn_settings
        counts = Counter(t for doc in X[self.spec["text"]].astype("str") for t in tokenize(doc))
        words = [w for w, c in counts.most_common(s.vocab_size - 3) if c >= s.min_token_count]
        return {"vocabulary": words}  # ids: 0 padding, 1 unknown, 2.. the words

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        s = self.nn_settings
        lookup = {w: i + 2 for i, w in enumerate(self.state_["vocabulary"])}
        ids = np.zeros((len(X), s.max_tokens), dtype=np.int64)
        for r, doc in enumerate(X[self.spec["text"]].astype("str")):
            row = [lookup.get(t, 1) for t in tokenize(doc)][:s.max_tokens] or [1]
            ids[r, :len(row)] = row
        return [torch.from_numpy(ids)]

    def _module(self, n_out: int) -> Any:
        return _text_module(len(self.state_["vocabulary"]) + 2, n_out, self.nn_settings)


class RNNForecaster(_Regressor, _Net):
    """GRU or LSTM forecaster: one step ahead from a window of past values (``spec["lags"]``, oldest first).

    It predicts the change from the window's last value (of the log when the series is positive),
    standardised by the training changes' spread.
    """

    def _windows(self, X: pd.DataFrame, state: dict) -> np.ndarray:  # noqa: N803
        w = X[self.spec["lags"]].to_numpy(dtype=np.float64)
        return np.log(np.maximum(w, 1e-12)) if state.get("log") else w

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        return {"log": bool((self._windows(X, {}) > 0).all()), "scale": 1.0}

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        w = self._windows(X, self.state_)
        return [torch.from_numpy(((w - w[:, -1:]) / self.state_["scale"]).astype(np.float32))]

    def _module(self, n_out: int) -> Any:
        return _rnn_module(n_out, self.nn_settings)

    def _encode_y(self, y: np.ndarray, fit: bool = False) -> np.ndarray:
        return y.astype(np.float64)[:, None]  # standardised as a change from the last value in ``_target``

    def _fit_target(self, X: pd.DataFrame, encoded: np.ndarray) -> None:  # noqa: N803
        self.state_["scale"] = float(np.std(self._target(X, encoded)) or 1.0)

    def _target(self, X: pd.DataFrame, encoded: np.ndarray) -> np.ndarray:  # noqa: N803
        last = self._windows(X, self.state_)[:, -1]
        values = np.log(np.maximum(encoded[:, 0], 1e-12)) if self.state_["log"] else encoded[:, 0]
        return ((values - last) / self.state_["scale"]).astype(np.float32)[:, None]

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        change = self._raw(X)[:, 0] * self.state_["scale"] + self._windows(X, self.state_)[:, -1]
        return np.exp(change) if self.state_["log"] else change


NET_CLASSES = {c.__name__: c for c in (MLPClassifier, MLPRegressor, CNNClassifier, TextTransformerClassifier,
                                       RNNForecaster)}


def network_for(family: str, task_type: str) -> type[_Net]:
    """The estimator class of a network family for a task type."""
    if family == "mlp":
        return MLPRegressor if task_type == "regression" else MLPClassifier
    classes = {"cnn": CNNClassifier, "transformer": TextTransformerClassifier, "gru": RNNForecaster}
    est = classes[family]
    if (task_type == "regression") != (est is RNNForecaster):
        raise TrainflowError(f"the {family} family does not do {task_type} (cnn, transformer: classification; "
                             "gru: forecasting a series)")
    return est
