"""Trains the MLP on breast_cancer with a checkpoint file; the resume test kills and restarts it.

    python tests/model/resume_worker.py CHECKPOINT OUT.npy [slow]

``slow``: a pause after each epoch, so that the test can kill it mid-run.
"""

import sys
import time

import numpy as np

from tasks.ingest import ingest_data
from trainflow.models.networks import MLPClassifier
from trainflow.schema import load_schema
from tasks.split import SplitSettings, split_data
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings


def main(checkpoint: str, out: str, slow: bool = False) -> None:
    schema = load_schema("breast_cancer")
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), seed=0)
    _, feats = fit_transform_splits(splits, schema, TransformSettings())
    tr, va = feats["train"], feats["validation"]

    def on_epoch(row: dict) -> None:
        print(f"epoch {row['epoch']}", flush=True)
        if slow:
            time.sleep(0.1)  # slow enough for the test to kill it mid-run; changes nothing else

    est = MLPClassifier(settings={"max_epochs": 16, "patience": 16, "batch_size": 32, "dropout": 0.3}, seed=3)
    est.fit(tr.drop(columns="target"), tr["target"].to_numpy(), X_val=va.drop(columns="target"),
            y_val=va["target"].to_numpy(), checkpoint=checkpoint, on_epoch=on_epoch)
    np.save(out, est.predict_proba(va.drop(columns="target")))
    print(f"done {len(est.history_)} epochs, first {int(est.history_['epoch'].min())}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:] == ["slow"])
