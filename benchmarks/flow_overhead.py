"""What Prefect costs: the training flow under Prefect against the same stage functions called plainly.

Same data (the bundled Adult), same settings, each mode in a fresh process, caching off (every
stage computes). Modes:

- plain: the pure stage functions and the catalog writes, no Prefect at all;
- prefect, server running: ``prefect server start`` was started beforehand (PREFECT_API_URL set);
- prefect, cold: no server; Prefect starts its temporary server inside the flow call.

Prints seconds inside the process (from the call to its return) and for the whole process (imports
and interpreter start included), and the ratios to plain.

    python -m benchmarks.flow_overhead [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deployments.ui import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
# the same stages in both modes: tuning and compression are off (the plain mode does neither), the preset's
# families and folds are the flow's own (the plain mode applies them as the flow does)
SETTINGS = {"evaluate": {"cv_folds": 2, "permutation_repeats": 1}, "tune": {"enabled": False},
            "compress": {"enabled": False}}

PLAIN = r"""
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
from flows.training import TrainingSettings, resolve_root
from trainflow.presets import with_preset
from tasks.drift import build_profile, drift_scores
from trainflow.catalog import ArtifactStore, new_run_id
from tasks.evaluate import evaluate_model
from trainflow.metrics import headline
from tasks.ingest import ingest_data
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.registry import Registry
from trainflow.schema import load_schema
from tasks.split import split_data
from tasks.train import train_models
from tasks.transform import fit_transform_splits
from tasks.validate import validate_data
s = TrainingSettings.model_validate(json.loads(sys.argv[1]))
t1 = time.perf_counter()
store, run = ArtifactStore(resolve_root(s.artifacts_root)), new_run_id()
schema = load_schema(s.dataset)
s = with_preset(s, schema)
raw, report = ingest_data(schema)
store.write_table(run, "ingest", "ingest_report", report); store.write_table(run, "ingest", "raw", raw)
v = validate_data(raw, schema); store.write_table(run, "validate", "validation_results", v.results)
splits, summary = split_data(v.valid, schema, s.split, s.seed)
store.write_table(run, "split", "split_summary", summary)
for k, part in splits.items(): store.write_table(run, "split", k, part)
pre, feats = fit_transform_splits(splits, schema, s.transform)
for k, f in feats.items(): store.write_table(run, "transform", f"features_{k}", f)
serving, meta, board, hist = train_models(schema, feats["train"], feats["validation"], pre, s.transform, s.train, s.seed)
store.write_table(run, "train", "leaderboard", board); store.write_table(run, "train", "training_history", hist)
files = bundle_files(serving, meta); store.write_bundle(run, "train", "model", files)
pipeline, meta = load_bundle(files)
out = evaluate_model(schema, pipeline, meta, splits["test"], pd.concat([splits["train"], splits["validation"]]),
                     s.evaluate, s.transform, s.train, s.seed)
for name, fig in out.pop("figures").items(): store.write_png(run, "evaluate", name, fig)
for name, df in out.items(): store.write_table(run, "evaluate", name, df)
store.write_table(run, "drift", "reference_profile", build_profile(splits["train"], schema,
                  drift_scores(pipeline, schema, splits["validation"])))
Registry(s.registry.registry_url).register("adult", files, run, meta["family"], "binary", headline(out["metrics"], "binary"), {})
t2 = time.perf_counter()
print(json.dumps({"inside": t2 - t1, "imports": t1 - t0}))
"""

PREFECT = r"""
import json, sys, time
t0 = time.perf_counter()
from flows.training import TrainingSettings, training
s = TrainingSettings.model_validate(json.loads(sys.argv[1]))
t1 = time.perf_counter()
training(s)
t2 = time.perf_counter()
print(json.dumps({"inside": t2 - t1, "imports": t1 - t0}))
"""


def _run(code: str, settings: dict, env: dict) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, json.dumps(settings)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1200)
    if out.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-"))
    base_env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_TASKS_REFRESH_CACHE": "true",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    base_env.pop("PREFECT_API_URL", None)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env={**base_env, "PREFECT_HOME": str(tmp / "server")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(api)
        modes = {"plain functions": (PLAIN, base_env),
                 "prefect, server running": (PREFECT, {**base_env, "PREFECT_API_URL": api}),
                 "prefect, cold (temporary server)": (PREFECT, base_env)}
        results: dict[str, list[dict]] = {m: [] for m in modes}
        for r in range(args.repeats):
            for mode, (code, env) in modes.items():
                settings = {**SETTINGS, "artifacts_root": str(tmp / f"runs-{r}-{len(results[mode])}-{mode[:6]}"),
                            "registry": {"registry_url": f"sqlite:///{tmp / f'reg-{r}-{mode[:6]}.db'}"}}
                results[mode].append(_run(code, settings, env))
                print(f"  repeat {r + 1}: {mode}: {results[mode][-1]['inside']:.2f} s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(30)
    plain_in = statistics.median(x["inside"] for x in results["plain functions"])
    plain_proc = statistics.median(x["process"] for x in results["plain functions"])
    print(f"\ntraining flow on Adult (32,561 rows), median of {args.repeats}, caching off, cv_folds=2")
    print(f"{'mode':36} {'flow s':>8} {'ratio':>7} {'process s':>10} {'ratio':>7}")
    for mode, rows in results.items():
        inside = statistics.median(x["inside"] for x in rows)
        proc = statistics.median(x["process"] for x in rows)
        print(f"{mode:36} {inside:8.2f} {inside / plain_in:7.2f} {proc:10.2f} {proc / plain_proc:7.2f}")


if __name__ == "__main__":
    main()
