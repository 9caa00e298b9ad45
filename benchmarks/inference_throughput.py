"""Batch inference at scale: the predict task on 5,000,000 rows against the bare model's predict (the floor).

A LightGBM model is trained on Adult and registered in a temporary registry; the rows are Adult-shaped
(benchmarks.data_throughput.make_table, without the label). Each mode runs in its own process so its
peak memory is its own:

- floor: read the whole file, normalise, ``pipeline.predict_proba`` on all rows at once;
- predict task: ``predict.fn`` (read in 250,000-row batches, validate each with the suite, quarantine,
  score, stream predictions to Parquet), without Prefect's per-task overhead;
- predict task on Dask: the same with the Dask engine (``ComputeSettings(engine="dask")``) on a 2-worker
  LocalCluster (its start and the workers' model loading included; the peak is the driver's: the workers are
  processes of their own).

    python -m benchmarks.inference_throughput [--rows 5000000] [--engines local,dask]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.data_throughput import make_table

ROOT = Path(__file__).resolve().parents[1]

TRAIN = r"""
import sys
from benchmarks.inference_throughput import adult_lightgbm
from trainflow.models.bundle import bundle_files
from trainflow.registry import Registry
_, _, serving, meta = adult_lightgbm()
Registry(sys.argv[1]).register("adult", bundle_files(serving, meta), "bench", "lightgbm", "binary", {}, {})
"""


def adult_lightgbm(cv_folds: int | None = None) -> tuple:
    """LightGBM trained on Adult's split (seed 42): ``(schema, splits, serving pipeline, metadata)``."""
    from tasks.ingest import ingest_data
    from tasks.split import SplitSettings, split_data
    from tasks.train import train_models
    from tasks.transform import fit_transform_splits
    from trainflow.features import TransformSettings
    from trainflow.models.settings import TrainSettings
    from trainflow.schema import load_schema

    schema = load_schema("adult")
    raw, _ = ingest_data(schema)
    splits, _ = split_data(raw, schema, SplitSettings(), 42)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    serving, meta, *_ = train_models(schema, feats["train"], feats["validation"], pre, TransformSettings(),
                                     TrainSettings(families=["lightgbm"], cv_folds=cv_folds), 42)
    return schema, splits, serving, meta


FLOOR = r"""
import json, sys, time
from benchmarks.memory import peak_gib
import pandas as pd
from trainflow.sources import normalise
from trainflow.registry import load_model
from trainflow.schema import load_schema
from trainflow.features import as_model_input
schema, model = load_schema("adult"), load_model("adult", registry_url=sys.argv[2])
t = time.perf_counter()
x = as_model_input(normalise(pd.read_parquet(sys.argv[1]), schema.missing_markers), schema)
proba = model.predict_proba(x)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(proba),
                  "rss_gb": peak_gib()}))
"""

TASK = r"""
import json, sys, time
from benchmarks.memory import peak_gib
from trainflow.catalog import new_run_id
from tasks.predict import PredictSettings, predict
from trainflow.cluster import ComputeSettings
from trainflow.schema import load_schema
schema = load_schema("adult")
t = time.perf_counter()
settings, compute = PredictSettings(registry_url=sys.argv[2]), ComputeSettings(engine=sys.argv[4])
out = predict.fn(sys.argv[3], new_run_id(), schema, sys.argv[1], None, settings, compute)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": out["rows_scored"],
                  "quarantined": out["rows_quarantined"],
                  "rss_gb": peak_gib()}))
"""


def _py(code: str, *args: str) -> dict:
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    res = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=3600)
    if res.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{res.stderr[-3000:]}")
    lines = res.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--engines", default="local,dask", help="predict task engines, comma-separated")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tf-infer-"))
    registry = f"sqlite:///{tmp / 'registry.db'}"
    _py(TRAIN, registry)
    source = tmp / "rows.parquet"
    make_table(args.rows, source)
    pq.write_table(pq.read_table(source).drop_columns(["income"]), source, row_group_size=250_000)
    floor = _py(FLOOR, str(source), registry)
    tasks = {engine: _py(TASK, str(source), registry, str(tmp / f"artifacts-{engine}"), engine)
             for engine in args.engines.split(",")}
    n = args.rows
    print(f"\n{n:,} Adult-shaped rows, LightGBM model; one process per mode")
    print(f"{'mode':44} {'seconds':>8} {'rows/s':>11} {'vs floor':>9} {'peak RSS GiB':>13}")
    print(f"{'floor: bare predict_proba, all rows at once':44} {floor['seconds']:8.2f} "
          f"{n / floor['seconds']:11,.0f} {1:9.2f} {floor['rss_gb']:13.2f}")
    for engine, task in tasks.items():
        name = "predict task: 250k-row batches, validated"
        name = name if engine == "local" else "predict task, on a 2-worker LocalCluster"
        print(f"{name:44} {task['seconds']:8.2f} {n / task['seconds']:11,.0f} "
              f"{task['seconds'] / floor['seconds']:9.2f} {task['rss_gb']:13.2f}")
    for engine, task in tasks.items():
        print(f"{engine}: scored {task['rows']:,}, quarantined {task['quarantined']:,}")


if __name__ == "__main__":
    main()
