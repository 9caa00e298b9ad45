"""Neural networks: the PyTorch training loop and a tabular MLP, on CUDA, then MPS, then CPU.

The loop: forward pass, loss, backward pass, gradient clipping, parameter update, epochs; Adam, AdamW
or SGD with momentum; a cosine or constant learning-rate schedule; Xavier or Kaiming initialisation;
early stopping on the validation loss that restores the best weights; a per-epoch history (train and
validation loss and metric, learning rate, gradient norm, seconds); a NaN or infinite loss stops with an
error naming the epoch and step; bf16 autocast on CUDA; deterministic with a seed on CPU.

``TabularMLP`` embeds each categorical code column and feeds them with the numeric columns through
hidden layers. ``MLPClassifier`` / ``MLPRegressor`` wrap it as scikit-learn estimators, so the MLP is one
more family of the train stage and is saved in the same Pipeline (its weights as safetensors).
"""

from __future__ import annotations

import json
import time
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from tasks.errors import TrainflowError


class NNSettings(BaseModel):
    """How neural networks are trained."""

    hidden: list[int] = Field([128, 64], description="widths of the hidden layers")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout after each hidden layer")
    embedding_dim: int = Field(8, ge=1, description="largest embedding size for a categorical column")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adamw", description="adam, adamw or sgd (momentum 0.9)")
    learning_rate: float = Field(2e-3, gt=0, description="initial learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning-rate schedule over the epochs")
    init: Literal["kaiming", "xavier"] = Field("kaiming", description="weight initialisation of linear layers")
    batch_size: int = Field(512, ge=1, description="rows per step")
    max_epochs: int = Field(40, ge=1, description="epochs before stopping regardless")
    patience: int = Field(6, ge=1, description="stop after this many epochs without a better validation loss")
    clip_grad_norm: float | None = Field(5.0, gt=0, description="clip the gradient norm to this (None: no clipping)")


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


def _module(n_numeric: int, cardinalities: list[int], n_out: int, settings: NNSettings):  # noqa: ANN202
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # code -1 (unknown) and -2.. are shifted to 0; every column gets one spare row for them
            self.embeddings = nn.ModuleList(nn.Embedding(c + 2, min(settings.embedding_dim, (c + 2) // 2 + 1))
                                            for c in cardinalities)
            width = n_numeric + sum(e.embedding_dim for e in self.embeddings)
            layers: list[nn.Module] = []
            for h in settings.hidden:
                layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(settings.dropout)]
                width = h
            layers.append(nn.Linear(width, n_out))
            self.body = nn.Sequential(*layers)

        def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
            parts = [numeric] + [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
            return self.body(torch.cat(parts, dim=1))

    model = TabularMLP()
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            (nn.init.kaiming_uniform_ if settings.init == "kaiming" else nn.init.xavier_uniform_)(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


class _MLPBase(BaseEstimator):
    """A tabular MLP as a scikit-learn estimator; categorical columns are given by name (their codes).

    Args:
        categorical: Columns holding category codes (embedded); the rest are numeric inputs.
        settings: Network and loop settings (a dict of NNSettings fields).
        seed: Random seed.
    """

    task: str = "binary"

    def __init__(self, categorical: list[str] | None = None, settings: dict | None = None, seed: int = 0):
        self.categorical = categorical
        self.settings = settings
        self.seed = seed

    # -- data ----------------------------------------------------------------------------
    def _split(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        cats = list(self.categorical or [])
        numeric = X.drop(columns=cats).to_numpy(dtype=np.float32)
        codes = X[cats].to_numpy(dtype=np.int64) + 1 if cats else np.zeros((len(X), 0), dtype=np.int64)
        if cats:
            codes = np.clip(codes, 0, np.asarray(self.cardinalities_)[None, :] + 1)
        return np.nan_to_num(numeric), codes

    def _tensors(self, X: pd.DataFrame, y: np.ndarray | None = None):  # noqa: ANN202, N803
        import torch

        numeric, codes = self._split(X)
        out = [torch.from_numpy(numeric), torch.from_numpy(codes)]
        if y is not None:
            out.append(torch.from_numpy(y))
        return out

    # -- training loop ---------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame | None = None,  # noqa: N803
            y_val: np.ndarray | None = None) -> "_MLPBase":
        import torch

        s = NNSettings(**(self.settings or {}))
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        self.device_ = pick_device()
        cats = list(self.categorical or [])
        self.cardinalities_ = [int(max(X[c].max(), 0)) + 1 for c in cats]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        y_enc = self._encode_y(np.asarray(y), fit=True)
        val = None
        if X_val is not None and y_val is not None:
            val = self._tensors(X_val, self._encode_y(np.asarray(y_val)))
        tr = self._tensors(X, y_enc)
        model = _module(tr[0].shape[1], self.cardinalities_, self._n_out(), s).to(self.device_)
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[s.optimizer]
        extra = {"momentum": 0.9} if s.optimizer == "sgd" else {}
        opt = opt_cls(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay, **extra)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.max_epochs) if s.schedule == "cosine"
                 else torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0))
        on_device = [t.to(self.device_) for t in tr]  # small tabular data: keep it all on the device
        val_dev = [t.to(self.device_) for t in val] if val is not None else None
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        best, best_loss, stale, history = None, np.inf, 0, []
        autocast = self.device_ == "cuda"
        for epoch in range(1, s.max_epochs + 1):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(on_device[0]), generator=generator).to(self.device_)
            total, norms = 0.0, []
            for step, start in enumerate(range(0, len(order), s.batch_size), 1):
                idx = order[start:start + s.batch_size]
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    loss = self._loss(model(on_device[0][idx], on_device[1][idx]), on_device[2][idx])
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"the loss became {loss.item()} at epoch {epoch}, step {step}; lower the "
                                        f"learning rate ({s.learning_rate}) or clip gradients harder")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                max_norm = s.clip_grad_norm if s.clip_grad_norm is not None else float("inf")
                norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)))
                opt.step()
                total += loss.detach().item() * len(idx)
            lr = opt.param_groups[0]["lr"]
            sched.step()
            row = {"epoch": epoch, "train_loss": total / len(order), "learning_rate": lr,
                   "grad_norm": float(np.mean(norms)), "grad_norm_max": float(np.max(norms))}
            if val_dev is not None:
                model.eval()
                with torch.no_grad():
                    out = model(val_dev[0], val_dev[1]).float()
                    row["validation_loss"] = float(self._loss(out, val_dev[2]))
                    row["validation_metric"] = self._metric(out, val_dev[2])
            row["seconds"] = time.perf_counter() - started
            history.append(row)
            watched = row.get("validation_loss", row["train_loss"])
            if watched < best_loss - 1e-6:
                best_loss, stale = watched, 0
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= s.patience:
                    break
        model.load_state_dict(best)  # early stopping keeps the best epoch, not the last
        self.model_ = model.to("cpu").eval()
        self.history_ = pd.DataFrame(history)
        self.best_epoch_ = int(self.history_.loc[self.history_.get("validation_loss",
                                                                   self.history_["train_loss"]).idxmin(), "epoch"])
        return self

    def _raw(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        import torch

        numeric, codes = self._tensors(X)
        with torch.no_grad():
            return self.model_(numeric, codes).float().numpy()

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # -- safe files --------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The weights as safetensors and the rest as JSON (no pickle)."""
        from safetensors.torch import save

        config = {"class": type(self).__name__, "categorical": self.categorical, "settings": self.settings,
                  "seed": self.seed, "cardinalities": self.cardinalities_, "n_numeric": int(
                      len(self.feature_names_in_) - len(self.categorical or [])),
                  "features": list(self.feature_names_in_), "classes": getattr(self, "classes", None),
                  "best_epoch": self.best_epoch_, "device": self.device_}
        return {"nn.safetensors": save(self.model_.state_dict()), "nn.json": json.dumps(config).encode()}

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> "_MLPBase":
        from safetensors.torch import load

        config = json.loads(files["nn.json"])
        target = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}[config["class"]]
        est = target(categorical=config["categorical"], settings=config["settings"], seed=config["seed"])
        est.cardinalities_ = config["cardinalities"]
        est.feature_names_in_ = np.asarray(config["features"], dtype=object)
        est.best_epoch_ = config["best_epoch"]
        est.device_ = config["device"]
        if config["classes"] is not None:
            est.classes = config["classes"]
        s = NNSettings(**(config["settings"] or {}))
        est.model_ = _module(config["n_numeric"], config["cardinalities"], est._n_out(), s)
        est.model_.load_state_dict(load(files["nn.safetensors"]))
        est.model_.eval()
        return est


class MLPClassifier(ClassifierMixin, _MLPBase):
    """Tabular MLP classifier (softmax over the classes)."""

    def _encode_y(self, y: np.ndarray, fit: bool = False) -> np.ndarray:
        y = y.astype(str)
        if fit:
            self.classes = sorted(np.unique(y).tolist())
        lookup = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([lookup.get(v, -100) for v in y], dtype=np.int64)  # -100: ignored by the loss

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


class MLPRegressor(RegressorMixin, _MLPBase):
    """Tabular MLP regressor (squared error on a standardised target)."""

    def _encode_y(self, y: np.ndarray, fit: bool = False) -> np.ndarray:
        y = y.astype(np.float64)
        if fit:
            self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() or 1.0)
            self.settings = {**(self.settings or {}), "_y": [self.y_mean_, self.y_std_]}
        return ((y - self.y_mean_) / self.y_std_).astype(np.float32)[:, None]

    def _n_out(self) -> int:
        return 1

    def _loss(self, out, target):  # noqa: ANN001, ANN202
        import torch.nn.functional as F  # noqa: N812

        return F.mse_loss(out.float(), target)

    def _metric(self, out, target) -> float:  # noqa: ANN001
        return float(-((out - target) ** 2).mean())

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        mean, std = (self.settings or {}).get("_y", [0.0, 1.0])
        return self._raw(X)[:, 0] * std + mean
