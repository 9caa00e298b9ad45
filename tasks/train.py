"""Train: fit each requested model family, score it on the validation split, keep the best.

The families live in ``trainflow.models`` (classic, baselines, networks). Every family gets the same fitted
preprocessor; the winner
is saved with it as one serving Pipeline (skops, LightGBM's own text format, safetensors), and every
other candidate beside it so that evaluate can score all of them on the test split.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from sklearn.pipeline import Pipeline

from trainflow.cache import CONTENT
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.device import detect_accelerator
from trainflow.errors import TrainflowError
from trainflow.features import TransformSettings
from trainflow.metrics import DEFAULT_METRIC, DIRECTION
from trainflow.modelio import bundle_files, load_skops
from trainflow.models import TrainSettings, families_for, fit_family, library_versions, nn_settings_for
from trainflow.progress import progress, run_logger
from trainflow.registry import load_model
from trainflow.schema import DatasetSchema


def train_models(schema: DatasetSchema, train: pd.DataFrame, validation: pd.DataFrame, preprocessor: Any,
                 transform_settings: TransformSettings, settings: TrainSettings, seed: int,
                 checkpoint_dir: str | None = None,
                 init_weights: dict | None = None) -> tuple[Pipeline, dict, pd.DataFrame, pd.DataFrame]:
    """Train every family and keep the best on the validation split: the pure part of the train stage.

    Args:
        schema: Dataset schema (for a series, its ``model_view``).
        train: Training features (from transform) with the label column.
        validation: Validation features with the label column.
        preprocessor: The fitted preprocessor, the first step of the saved Pipeline.
        transform_settings: Gives the categorical encoding.
        settings: Families and their settings.
        seed: Random seed.
        checkpoint_dir: Where networks checkpoint each epoch (None: no checkpoints).
        init_weights: A state dict the networks start from (transfer learning).

    Returns:
        ``(serving pipeline, metadata, leaderboard, history)``; ``metadata["candidates"]`` holds the
        serving pipeline of every other family, for scoring on the test split.

    Raises:
        TrainflowError: No family given, an unknown family, or an unknown selection metric.
    """
    families = families_for(schema, settings)
    if not families:
        raise TrainflowError("no model family to train: settings.train.families is empty")
    metric = settings.selection_metric or DEFAULT_METRIC[schema.task]
    if metric not in DIRECTION:
        raise TrainflowError(f"unknown selection metric '{metric}' (known: {', '.join(DIRECTION)})")
    accel = detect_accelerator()
    fitted, rows, histories = {}, [], []
    with progress(len(families), "training") as bar:
        for family in families:
            pipe, info, hist = fit_family(family, schema, train, validation, transform_settings, settings, seed,
                                          checkpoint_dir, init_weights)
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
            "accelerator": accel, "versions": library_versions()}
    for key in ("transferred_tensors", "precision"):
        if key in info:
            meta[key] = info[key]
    meta["candidates"] = {f: Pipeline([("preprocess", preprocessor), *p.steps]) for f, (p, _) in fitted.items()
                          if f != best}
    return serving, meta, board, pd.concat(histories, ignore_index=True)


def loss_curves(history: pd.DataFrame):  # noqa: ANN201 (a matplotlib Figure, or None)
    """Train and validation loss per epoch of each network family, as one figure (None: no network)."""
    nets = history[history["metric"].isin(["train_loss", "validation_loss"])]
    if nets.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (family, metric), part in nets.groupby(["family", "metric"]):
        ax.plot(part["iteration"], part["value"], label=f"{family} {metric.replace('_', ' ')}",
                linestyle="-" if metric == "train_loss" else "--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Loss curves")
    ax.legend()
    return fig


def checkpoint_dir_for(store_root: str, features: dict[str, ArtifactRef], settings: TrainSettings,
                       seed: int) -> str | None:
    """``<root>/checkpoints/<key>``: the same data, settings and seed find the same checkpoints after a crash.

    None for a remote store (checkpoints need a local file system).
    """
    key = hashlib.sha256(json.dumps([features["train"].sha256, features["validation"].sha256,
                                     settings.model_dump(mode="json"), seed]).encode()).hexdigest()[:20]
    folder = ArtifactStore(store_root).local_folder("checkpoints", key)
    return str(folder) if folder is not None else None


def registered_weights(init_from: str, registry_url: str | None) -> dict:
    """The network weights of a registered version, ``NAME@ALIAS`` or ``NAME:VERSION``, for fine-tuning."""
    name, version, alias = init_from, None, "production"
    if "@" in init_from:
        name, alias = init_from.split("@", 1)
    elif ":" in init_from:
        name, v = init_from.split(":", 1)
        version, alias = int(v), None
    model = load_model(name, version, alias, registry_url).steps[-1][1]
    if not hasattr(model, "model_"):
        raise TrainflowError(f"init_from {init_from}: that version is a {type(model).__name__}, not a network")
    return model.model_.state_dict()


@task(name="train", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def train(store_root: str, run_id: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
          transform_settings: TransformSettings, settings: TrainSettings, seed: int,
          registry_url: str | None = None) -> dict[str, ArtifactRef]:
    """Prefect task: write ``train/leaderboard``, ``train/training_history``, the ``train/model`` bundle,
    a ``train/candidate_<family>`` bundle per other family, and ``train/loss_curves.png`` for networks.

    Args:
        registry_url: The registry ``settings.nn.init_from`` names a model of (None: the default).

    Returns:
        References to the model bundle, the candidates, the leaderboard, the history and the plot.
    """
    store = ArtifactStore(store_root)
    preprocessor = load_skops(store.read_file(features["preprocessor"]))
    nn = nn_settings_for(schema, settings)
    init = registered_weights(nn.init_from, registry_url) if nn.init_from else None
    serving, meta, board, history = train_models(
        schema, store.read_table(features["train"]), store.read_table(features["validation"]), preprocessor,
        transform_settings, settings, seed, checkpoint_dir_for(store_root, features, settings, seed), init)
    meta["run_id"] = run_id
    if nn.init_from:
        meta["init_from"] = nn.init_from
    candidates = meta.pop("candidates")
    run_logger().info("train: selected %s, validation %s %.4f%s", meta["family"], meta["selection_metric"],
                      board.iloc[0]["validation_score"], "".join(
                          f"; {r['family']} {r['validation_score']:.4f}" for r in board.iloc[1:].to_dict("records")))
    refs = {
        "leaderboard": store.write_table(run_id, "train", "leaderboard", board),
        "history": store.write_table(run_id, "train", "training_history", history),
        "model": store.write_bundle(run_id, "train", "model", bundle_files(serving, meta)),
    }
    for family, pipe in candidates.items():
        refs[f"candidate_{family}"] = store.write_bundle(run_id, "train", f"candidate_{family}", bundle_files(
            pipe, {**meta, "family": family, "candidate": True}))
    figure = loss_curves(history)
    if figure is not None:
        refs["loss_curves"] = store.write_png(run_id, "train", "loss_curves", figure)
    return refs
