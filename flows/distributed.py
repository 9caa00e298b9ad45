"""Data-parallel training of a network family with DistributedDataParallel, launched by ``torchrun``.

    torchrun --standalone --nproc_per_node 2 -m cli.distributed --dataset digits --family cnn

Every process reads and prepares the same splits (ingest, split and transform are deterministic), the
training loop shards each epoch's shuffled rows across the processes and DDP averages the gradients, so
N processes with batch size B per step take the same steps as one process with batch size B. Backend:
NCCL on CUDA, gloo on CPU. Process 0 writes the run's artifacts (``train/model`` bundle, leaderboard,
history, ``train/distributed``) under ``--artifacts-root`` and prints the summary as JSON.
"""

from __future__ import annotations

import json

from tasks.ingest import ingest_data
from tasks.split import SplitSettings, split_data
from tasks.train import train_models
from tasks.transform import fit_transform_splits
from trainflow.catalog import ArtifactStore, new_run_id
from trainflow.catalog.artifacts import DISTRIBUTED, LEADERBOARD, MODEL, TRAINING_HISTORY
from trainflow.features import as_model_input, TransformSettings
from trainflow.metrics import label_values, predict_scores, score, threshold_of
from trainflow.models.bundle import bundle_files
from trainflow.models.settings import TrainSettings
from trainflow.schema import load_schema


def run(dataset: str, family: str, seed: int, artifacts_root: str, nn: dict) -> dict:
    """Train ``family`` on ``dataset`` in this process's share of a process group (or alone)."""
    import pandas as pd
    import torch.distributed as dist

    from trainflow.models.networks.loop import rank_and_world

    rank, world = rank_and_world()
    schema = load_schema(dataset)
    raw, _ = ingest_data(schema)
    splits, _ = split_data(raw, schema, SplitSettings(), seed)
    view = schema.model_view()
    pre, feats = fit_transform_splits(splits, view, TransformSettings())
    settings = TrainSettings(families=[family], nn=nn)
    serving, meta, board, history = train_models(view, feats["train"], feats["validation"], pre,
                                                 TransformSettings(), settings, seed)
    test = splits["test"]
    y = label_values(test, view)
    test_metrics = score(view.task, y, predict_scores(serving, as_model_input(test, view), view.task),
                         getattr(serving, "classes_", None), view.positive_class, threshold=threshold_of(meta))
    summary = {"dataset": dataset, "family": family, "processes": world, "backend": dist.get_backend()
               if world > 1 else None, "device": meta["device"], "epochs": int(history["iteration"].max()),
               "best_epoch": meta["best_iteration"], "validation_metrics": meta["validation_metrics"],
               "test_metrics": test_metrics}
    if rank == 0:
        store = ArtifactStore(artifacts_root)
        run_id = new_run_id()
        meta.pop("candidates", None)
        store.put(run_id, LEADERBOARD, board)
        store.put(run_id, TRAINING_HISTORY, history)
        store.put(run_id, MODEL, bundle_files(serving, {**meta, "run_id": run_id,
                                                                            "processes": world}))
        store.put(run_id, DISTRIBUTED, pd.DataFrame([{**summary, "validation_metrics": json.dumps(
            summary["validation_metrics"]), "test_metrics": json.dumps(test_metrics)}]))
        summary["run_dir"] = store.run_uri(run_id)
    return summary
