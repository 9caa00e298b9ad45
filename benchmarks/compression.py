"""Compression: every variant of the compress stage against the native model, and batch inference with the
serving variant at scale.

Part 1, per family (LightGBM, logistic and the MLP on Adult, the CNN on digits, the Transformer and
TF-IDF + logistic on fine_food, the GRU and the seasonal naive forecast on air_passengers): the family is
trained on the dataset's split (networks for at most ``--epochs`` epochs), loaded back from its files as the
registry would, and put through ``tasks.compress`` (``make_variants``, ``gate``):
size, test metric, largest prediction difference, single-row p50/p99 latency (200 calls) and rows/s on
batches of 1,024, each as a ratio to the native model, measured in one process on the same rows.

Part 2: LightGBM on Adult registered with the serving variant the gate chose, then 5,000,000 Adult-shaped
rows (``benchmarks.data_throughput.make_table``) scored in 250,000-row batches, each mode in its own process
(peak memory its own): the bare native ``predict_proba`` loop, the same loop with the serving variant, and
the predict task (read, validate, score, write) with each.

    python -m benchmarks.compression [--rows 5000000] [--epochs 5] [--skip-families] [--skip-inference]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.data_throughput import make_table
from benchmarks.inference_throughput import _py

FAMILIES = [("adult", "lightgbm"), ("adult", "logistic"), ("adult", "mlp"), ("digits", "cnn"),
            ("fine_food", "transformer"), ("fine_food", "tfidf_logistic"), ("air_passengers", "gru"),
            ("air_passengers", "seasonal_naive")]


def family_report(dataset: str, family: str, epochs: int):  # noqa: ANN201 (DataFrame)
    import warnings

    from tasks.compress import CompressSettings, Variant, gate, make_variants
    from tasks.ingest import ingest_data
    from tasks.split import SplitSettings, split_data
    from tasks.train import train_models
    from tasks.transform import fit_transform_splits
    from trainflow.features import TransformSettings
    from trainflow.models.bundle import bundle_files, load_bundle
    from trainflow.models.settings import TrainSettings
    from trainflow.schema import load_schema

    schema = load_schema(dataset)
    raw, _ = ingest_data(schema)
    splits, _ = split_data(raw, schema, SplitSettings(), 42)
    schema = schema.model_view()  # a series' windows
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    train = TrainSettings.model_validate({"families": [family], "cv_folds": 0, "nn": {"max_epochs": epochs}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serving, meta, *_ = train_models(schema, feats["train"], feats["validation"], pre, TransformSettings(),
                                         train, 42)
    files = bundle_files(serving, {k: v for k, v in meta.items() if k not in ("candidates", "oof")})
    pipeline, meta = load_bundle(files)  # as the registry hands it back
    settings = CompressSettings(latency_seconds=600)  # every variant its 200 single-row calls
    wall, cpu = time.perf_counter(), time.process_time()
    variants, skipped = make_variants(pipeline, meta, schema, splits["validation"], settings,
                                      native_size=sum(len(v) for v in files.values()))
    native = Variant("native", "native", pipeline, False, "as trained", sum(len(v) for v in files.values()))
    report = gate(schema, native, variants, splits["test"], meta["selection_metric"], settings)
    report.attrs.update(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu, skipped=skipped,
                        dataset=dataset, family=family, test_rows=len(splits["test"]))
    return report


def print_family(report) -> None:  # noqa: ANN001
    a = report.attrs
    print(f"\n{a['family']} on {a['dataset']} ({a['test_rows']:,} test rows; variants made and measured in "
          f"{a['wall']:.1f} s wall, {a['cpu']:.1f} s CPU)")
    print(f"{'variant':<18}{'KiB':>9}{'size x':>8}{report['metric'].iloc[0]:>10}{'drop %':>8}{'max diff':>10}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'p50 x':>7}{'rows/s':>10}{'rows/s x':>9}  status")
    for r in report.to_dict("records"):
        print(f"{r['variant']:<18}{r['size_bytes'] / 1024:>9,.0f}{r['size_ratio']:>8.2f}{r['value']:>10.4f}"
              f"{100 * r['metric_drop']:>8.2f}{r['max_abs_diff']:>10.2g}{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}"
              f"{r['speedup_p50']:>7.2f}{r['rows_per_s']:>10,.0f}{r['speedup_rows']:>9.2f}  "
              f"{'serving' if r['serving'] else r['status']}{'' if r['servable'] else ' (not servable)'}"
              f"{'' if r['status'] != 'rejected' else ': ' + r['reason']}")
    for s in a["skipped"]:
        print(f"{s['variant']:<18}{s['status']}: {s['reason']}")


TRAIN = r"""
import json, sys
from benchmarks.inference_throughput import adult_lightgbm
from tasks.compress import CompressSettings, Variant, gate, make_variants
from trainflow.export import variant_files
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.registry import Registry
schema, splits, serving, meta = adult_lightgbm(cv_folds=0)
files = bundle_files(serving, {k: v for k, v in meta.items() if k not in ("candidates", "oof")})
pipeline, meta = load_bundle(files)
settings = CompressSettings(latency_seconds=600)
variants, _ = make_variants(pipeline, meta, schema, splits["validation"], settings)
report = gate(schema, Variant("native", "native", pipeline, False, "", 1), variants, splits["test"], "roc_auc",
              settings)
chosen = report[report["serving"]].iloc[0]["variant"]
variant = next(v for v in variants if v.name == chosen)
served = variant_files(variant.model, {**variant.meta, "variant": chosen, "runtime": variant.runtime,
                                       "dataset": "adult", "features": [c.name for c in schema.features]})
Registry(sys.argv[1]).register("adult", files, "bench", "lightgbm", "binary", {}, {}, served)
print(json.dumps({"serving": chosen}))
"""

LOOP = r"""
import json, sys, time
import pyarrow.parquet as pq
from benchmarks.memory import peak_gib
from trainflow.features import as_model_input
from trainflow.registry import load_model
from trainflow.schema import load_schema
from trainflow.sources import normalise
schema = load_schema("adult")
model = load_model("adult", registry_url=sys.argv[2], variant=sys.argv[3])
t, c, rows = time.perf_counter(), time.process_time(), 0
for batch in pq.ParquetFile(sys.argv[1]).iter_batches(batch_size=250_000):
    x = as_model_input(normalise(batch.to_pandas(), schema.missing_markers), schema)
    rows += len(model.predict_proba(x))
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "rows": rows,
                  "rss_gb": peak_gib()}))
"""

TASK = r"""
import json, sys, time
from benchmarks.memory import peak_gib
from trainflow.catalog import new_run_id
from tasks.predict import PredictSettings, predict
from trainflow.schema import load_schema
schema = load_schema("adult")
t, c = time.perf_counter(), time.process_time()
out = predict.fn(sys.argv[3], new_run_id(), schema, sys.argv[1], None,
                 PredictSettings(registry_url=sys.argv[2], variant=sys.argv[4]))
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "rows": out["rows_scored"],
                  "scored_by": out["scored_by"], "rss_gb": peak_gib()}))
"""


def inference(rows: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tf-compress-"))
    registry = f"sqlite:///{tmp / 'registry.db'}"
    chosen = _py(TRAIN, registry)["serving"]
    source = tmp / "rows.parquet"
    make_table(rows, source)
    pq.write_table(pq.read_table(source).drop_columns(["income"]), source, row_group_size=250_000)
    modes = [("bare native predict_proba, 250k batches", _py(LOOP, str(source), registry, "native")),
             (f"bare serving ({chosen}), 250k batches", _py(LOOP, str(source), registry, "serving")),
             ("predict task, native", _py(TASK, str(source), registry, str(tmp / "a"), "native")),
             (f"predict task, serving ({chosen})", _py(TASK, str(source), registry, str(tmp / "b"), "serving"))]
    floor = modes[0][1]
    print(f"\nbatch inference: {rows:,} Adult-shaped rows, LightGBM; one process per mode")
    print(f"{'mode':48}{'wall s':>8}{'cpu s':>8}{'rows/s':>11}{'x bare native':>14}{'peak RSS GiB':>13}")
    for name, m in modes:
        print(f"{name:48}{m['seconds']:8.1f}{m['cpu']:8.1f}{rows / m['seconds']:11,.0f}"
              f"{floor['seconds'] / m['seconds']:14.2f}{m['rss_gb']:13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows for the batch-inference part")
    parser.add_argument("--epochs", type=int, default=5, help="most epochs for the networks")
    parser.add_argument("--families", default=",".join(f for _, f in FAMILIES), help="which of the families")
    parser.add_argument("--skip-families", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    args = parser.parse_args()
    if not args.skip_families:
        wanted = set(args.families.split(","))
        for dataset, family in FAMILIES:
            if family in wanted:
                print_family(family_report(dataset, family, args.epochs))
    if not args.skip_inference:
        inference(args.rows)


if __name__ == "__main__":
    main()
