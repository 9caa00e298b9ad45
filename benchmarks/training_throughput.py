"""Training throughput: the project's training loop against a bare torch loop, same network, data and device.

- MLP on Adult's training features (ordinal codes embedded, numbers scaled);
- CNN on digits, the training images repeated to ``--digits-copies`` copies so an epoch is long enough to time.

"train stage" is the estimator's ``fit`` as the train task calls it: ``fit_loop`` with gradient clipping,
the NaN check, per-epoch history and validation pass, a checkpoint written every epoch, and a per-epoch
progress callback. "bare loop" is the minimum: shuffle, forward, loss, backward, step; the same module
(built by the same code, same seed), the same optimiser, batch size, epochs and autocast. Both run a fixed
number of epochs (no early stopping). samples/s counts training rows per second: of the whole ``fit``
call (data preparation included), and of its epochs alone; the bare loop is timed from its first epoch.

    python -m benchmarks.training_throughput [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _data(name: str, copies: int) -> tuple:
    from tasks.ingest import ingest_data
    from trainflow.schema import load_schema
    from tasks.split import SplitSettings, split_data
    from tasks.transform import fit_transform_splits
    from trainflow.features import TransformSettings

    schema = load_schema(name)
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), 42)
    _, feats = fit_transform_splits(splits, schema, TransformSettings())
    train, val = feats["train"], feats["validation"]
    if copies > 1:
        train = pd.concat([train] * copies, ignore_index=True)
    return schema, train.drop(columns=schema.label), train[schema.label].to_numpy().astype(str), \
        val.drop(columns=schema.label), val[schema.label].to_numpy().astype(str)


def _estimator(family: str, schema, epochs: int, batch: int):  # noqa: ANN001, ANN202
    from trainflow.models.fit import build_estimator
    from trainflow.models.settings import TrainSettings

    settings = TrainSettings(nn={"max_epochs": epochs, "patience": epochs + 1, "batch_size": batch})
    return build_estimator(family, schema.task, settings, 0, 0, schema=schema)


def bare_loop(est, x: pd.DataFrame, y: np.ndarray, epochs: int) -> float:  # noqa: ANN001
    """Seconds for ``epochs`` epochs of the plainest loop over the estimator's own module and tensors."""
    import torch

    from trainflow.device import pick_device
    from trainflow.models.networks.loop import place

    s = est.nn_settings
    device = pick_device()
    torch.manual_seed(0)
    est.feature_names_in_ = np.asarray(x.columns, dtype=object)
    est.state_ = est._learn(x)
    target = torch.from_numpy(est._encode_y(y, fit=True))
    model = est._build().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    data, streamed = place([*est._inputs(x), target], device)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data[0]))
        order = order if streamed else order.to(device)
        for i in range(0, len(order), s.batch_size):
            idx = order[i:i + s.batch_size]
            batch = [t[idx].to(device, non_blocking=True) if streamed else t[idx] for t in data]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = est._loss(model(*batch[:-1]), batch[-1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def stage_fit(est, x: pd.DataFrame, y: np.ndarray, xv: pd.DataFrame, yv: np.ndarray,  # noqa: ANN001
              epochs: int) -> tuple[float, float]:
    """Seconds for the train stage's fit: the whole call (data preparation included) and its epochs alone
    (the history's ``seconds``: training steps, validation pass; the checkpoint write follows each epoch)."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        est.fit(x, y, X_val=xv, y_val=yv, checkpoint=Path(tmp) / "ck.pt", on_epoch=lambda row: None)
        seconds = time.perf_counter() - started
    assert len(est.history_) == epochs
    return seconds, float(est.history_["seconds"].sum())


def main(argv: list[str] | None = None) -> int:
    import torch

    from trainflow.device import pick_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode; the median is reported")
    parser.add_argument("--digits-copies", type=int, default=20)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args(argv)
    device = pick_device()
    rows = []
    for family, dataset, copies in (("mlp", "adult", 1), ("cnn", "digits", args.digits_copies)):
        schema, x, y, xv, yv = _data(dataset, copies)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        bare = [bare_loop(_estimator(family, schema, args.epochs, args.batch), x, y, args.epochs)
                for _ in range(args.repeats)]
        stage = [stage_fit(_estimator(family, schema, args.epochs, args.batch), x, y, xv, yv, args.epochs)
                 for _ in range(args.repeats)]
        n = len(x) * args.epochs
        row = {"model": family, "data": f"{dataset} ({len(x):,} rows)", "device": device,
               "bare samples/s": n / float(np.median(bare)),
               "stage fit samples/s": n / float(np.median([s[0] for s in stage])),
               "stage epochs samples/s": n / float(np.median([s[1] for s in stage]))}
        row["fit / bare"] = row["stage fit samples/s"] / row["bare samples/s"]
        row["epochs / bare"] = row["stage epochs samples/s"] / row["bare samples/s"]
        if device == "cuda":
            row["peak GPU MiB"] = torch.cuda.max_memory_allocated() / 2 ** 20
        rows.append(row)
    table = pd.DataFrame(rows)
    print(f"epochs {args.epochs}, batch {args.batch}, median of {args.repeats}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
