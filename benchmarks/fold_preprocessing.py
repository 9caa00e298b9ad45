"""Preprocessing fitted inside each cross-validation fold against one preprocessor for every fold.

For each dataset the train stage's comparison of the default families runs twice on the same split and folds:
``in_folds`` (each fold's imputation, clipping, scaling and category codes learnt from its training rows alone,
the default) and ``shared`` (the training split's preprocessor, which saw the held-out rows of the folds). Prints
per family the out-of-fold selection score of both and their difference, which family each chose, the chosen
model's test score, and wall and CPU seconds of each comparison with their ratio.

    python -m benchmarks.fold_preprocessing [--datasets adult,breast_cancer,wine,diabetes]
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd


def compare(dataset: str) -> list[dict]:
    from tasks.ingest import ingest_data
    from tasks.split import SplitSettings, split_data
    from tasks.train import train_models
    from tasks.transform import fit_transform_splits
    from trainflow.features import TransformSettings, as_model_input
    from trainflow.metrics import DEFAULT_METRIC, predict_scores, score, threshold_of
    from trainflow.models.settings import TrainSettings
    from trainflow.schema import load_schema

    schema = load_schema(dataset)
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    rows = pd.concat([splits["train"], splits["validation"]], ignore_index=True)
    test, metric = splits["test"], DEFAULT_METRIC[schema.task]
    out = []
    for mode, transform in (("in_folds", TransformSettings()), ("shared", TransformSettings(in_folds=False))):
        wall, cpu = time.perf_counter(), time.process_time()
        serving, meta, board, _ = train_models(schema, feats["train"], feats["validation"], pre, transform,
                                               TrainSettings(), 0, rows=rows)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        y = test[schema.label].to_numpy().astype(float if schema.task == "regression" else str)
        tested = score(schema.task, y, predict_scores(serving, as_model_input(test, schema), schema.task),
                       getattr(serving, "classes_", None), schema.positive_class, (metric,), threshold_of(meta))
        out.append({"dataset": dataset, "mode": mode, "chosen": meta["family"], "test": tested[metric],
                    "wall_s": wall, "cpu_s": cpu, **{f: s for f, s in zip(board["family"], board["score"])}})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fold_preprocessing",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="adult,breast_cancer,wine,diabetes")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    for dataset in args.datasets.split(","):
        inside, shared = compare(dataset)
        families = [c for c in inside if c not in ("dataset", "mode", "chosen", "test", "wall_s", "cpu_s")]
        print(f"\n{dataset}: chosen {inside['chosen']} (in folds) / {shared['chosen']} (shared); test "
              f"{inside['test']:.4f} / {shared['test']:.4f}; wall {inside['wall_s']:.1f} s / {shared['wall_s']:.1f} s "
              f"({inside['wall_s'] / shared['wall_s']:.2f}x), CPU {inside['cpu_s']:.1f} s / {shared['cpu_s']:.1f} s")
        print(f"| family | in folds | shared | difference |\n| --- | --- | --- | --- |")
        for f in families:
            print(f"| {f} | {inside[f]:.4f} | {shared[f]:.4f} | {inside[f] - shared[f]:+.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
