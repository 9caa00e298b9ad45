"""The one PyTorch training loop every network family uses, and the settings it reads.

``fit_loop``: forward pass, loss, backward pass, gradient clipping, parameter update, epochs; Adam, AdamW
or SGD with momentum; a cosine or constant learning-rate schedule; early stopping on the validation loss
that restores the best weights; a per-epoch history (train and validation loss and metric, learning rate,
gradient norm, seconds); a NaN or infinite loss stops with an error naming the epoch and step; bf16
autocast on CUDA; data kept on the device when it fits, pinned host memory otherwise; deterministic with a
seed on CPU; a checkpoint after every epoch (model, optimiser, scheduler, random generators, history),
written atomically, from which a killed run resumes and ends where an uninterrupted one would;
DistributedDataParallel when launched by ``torchrun``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from trainflow.errors import TrainflowError


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


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless a process group is up (``torchrun``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_linear(model: Any, how: str) -> None:
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


def place(tensors: list, device: str) -> tuple[list, bool]:
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
             eval_rows: int = 4096, time_up: Callable[[], bool] | None = None) -> pd.DataFrame:
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
        on_epoch: Called with each epoch's history row (progress reports); a true return stops training
            after that epoch (the time limit), keeping the best epoch so far.
        eval_rows: Rows per forward pass when scoring the validation rows.
        time_up: Asked after every step; a true answer ends the epoch there (at least one step is taken): it is
            scored and kept as a whole one would be, and ``on_epoch`` is told (``partial``: the share of the
            epoch's rows it saw). An epoch of a large table can take longer than the whole time limit.

    Returns:
        The per-epoch history.

    Raises:
        NonFiniteLoss: The loss became NaN or infinite (the last good checkpoint is kept).
    """
    import torch

    s = settings
    rank, world = rank_and_world()
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
    data, streamed = place([*inputs, target], device)
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
            if time_up is not None and world == 1 and first + per_step < len(order) and time_up():
                break
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(total)
            seen *= world
        lr = opt.param_groups[0]["lr"]
        sched.step()
        norm_values = torch.stack(norms).float().cpu().numpy()
        row = {"epoch": epoch, "train_loss": float(total) / max(seen, 1), "learning_rate": lr,
               "grad_norm": float(norm_values.mean()), "grad_norm_max": float(norm_values.max())}
        if seen < len(order) * world:
            row["partial"] = seen / (len(order) * world)
        if val is not None:
            model.eval()
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                out = batched(model, val[:-1], eval_rows).float()
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
        if on_epoch is not None and rank == 0 and on_epoch(row) and world == 1:
            break  # the time limit: the best epoch so far is kept (several processes would need to agree)
    model.to("cpu")
    model.load_state_dict(best)  # early stopping keeps the best epoch, not the last
    model.eval()
    return pd.DataFrame(history)


def batched(model: Any, inputs: list, rows: int) -> Any:
    import torch

    return torch.cat([model(*[t[i:i + rows] for t in inputs]) for i in range(0, len(inputs[0]), rows)])
