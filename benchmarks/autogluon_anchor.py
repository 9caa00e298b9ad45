"""AutoGluon on one table's split, for ``benchmarks/quality.py``: run with the interpreter of its own environment.

AutoGluon 1.6 needs pandas < 2.4 and this project pins pandas 3, so AutoGluon lives in ``.venv-autogluon``
(``make bench-autogluon``) and this script imports nothing from the project: it reads the flow's split files,
fits ``TabularPredictor`` with a preset on train+validation and prints one JSON line with the test metric
and the wall seconds of the fit.

    .venv-autogluon/bin/python benchmarks/autogluon_anchor.py --split-dir RUN/split --label y --task binary \
        --positive yes --features a,b,c --folder /tmp/ag
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

EVAL_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "root_mean_squared_error"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split-dir", required=True, help="folder with train.parquet, validation.parquet, test.parquet")
    p.add_argument("--label", required=True)
    p.add_argument("--task", required=True, choices=sorted(EVAL_METRIC))
    p.add_argument("--features", required=True, help="comma-separated feature columns")
    p.add_argument("--positive", help="the positive class (binary)")
    p.add_argument("--preset", default="medium_quality")
    p.add_argument("--folder", required=True, help="where AutoGluon writes its models")
    p.add_argument("--time-limit", type=float, help="AutoGluon's time_limit in seconds (default: none)")
    args = p.parse_args()
    from autogluon.tabular import TabularPredictor

    columns = [*args.features.split(","), args.label]
    parts = {k: pd.read_parquet(os.path.join(args.split_dir, f"{k}.parquet"), columns=columns)
             for k in ("train", "validation", "test")}
    fit = pd.concat([parts["train"], parts["validation"]], ignore_index=True)
    test = parts["test"]
    if args.task != "regression":  # labels as strings, as the project scores them
        fit[args.label], test[args.label] = fit[args.label].astype(str), test[args.label].astype(str)
    started = time.perf_counter()
    predictor = TabularPredictor(label=args.label, eval_metric=EVAL_METRIC[args.task], path=args.folder,
                                 verbosity=0).fit(fit, presets=args.preset, num_cpus=os.cpu_count(),
                                                                    time_limit=args.time_limit)
    seconds = time.perf_counter() - started
    x, y = test.drop(columns=[args.label]), test[args.label].to_numpy()
    if args.task == "regression":
        value = float(np.sqrt(mean_squared_error(y.astype(float), predictor.predict(x).to_numpy())))
    elif args.task == "binary":
        proba = predictor.predict_proba(x)
        value = float(roc_auc_score(y == args.positive, proba[args.positive].to_numpy()))
    else:
        value = float(accuracy_score(y, predictor.predict(x).astype(str).to_numpy()))
    print(json.dumps({"metric": value, "seconds": seconds, "best_model": predictor.model_best}))


if __name__ == "__main__":
    main()
