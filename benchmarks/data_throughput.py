"""Data stages at scale: ingest + validate + split + transform on a 5,000,000-row table shaped like Adult.

The table is Adult's rows drawn with replacement, numbers jittered, raw noise kept (leading spaces,
``?``). Each mode runs in its own process so that its peak memory (max RSS) is its own:

- floor: ``pyarrow.parquet.read_table`` then ``write_table`` of the same file;
- plain script: the same work done by hand with the libraries alone, no catalog, no checks: pyarrow reads and
  trims the text ("?" as missing), scikit-learn's stratified split, category codes by ``dictionary_encode``,
  and LightGBM's binned ``Dataset`` of each split saved (its binary files: what LightGBM trains on);
- stages: the four stage task bodies (``task.fn``: the stage's compute plus its catalog reads and
  writes, without Prefect's per-task overhead of ~55 ms), one after the other, each timed, with the
  flow's ``batch_rows`` (1,000,000); each stage's peak memory is measured from its start (Linux), and
  includes what earlier stages left resident. Every mode imports its libraries before its clock starts;
  skops, which transform imports when it saves (seconds: it scans scikit-learn), is printed on its own line.

    python -m benchmarks.data_throughput [--rows 1000000,5000000,20000000] [--engines local,dask] [--repeats 3]

With ``--repeats N`` the modes run N times, interleaved (floor, plain, stages, floor, ...), and every figure is
the median of its N: one run each moves by 20-40% on a shared 2-core machine.

With ``--engines local,dask`` the stages also run with the Dask engine on a 2-worker LocalCluster (started
before the clock), each worker a part of the data at a time; their CPU seconds are the flow's process's plus
the workers'.

CPU seconds (the process's) beside wall seconds; with several sizes, how the CPU cost per row changes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FLOOR = r"""
import json, sys, time
from benchmarks.memory import peak_gib
import pyarrow.parquet as pq
t, c = time.perf_counter(), time.process_time()
table = pq.read_table(sys.argv[1])
pq.write_table(table, sys.argv[2] + "/copy.parquet", compression="zstd")
print(json.dumps({"total": time.perf_counter() - t, "total_cpu": time.process_time() - c, "rss_gb": peak_gib()}))
"""

PLAIN = r"""
import json, sys, time
from benchmarks.memory import peak_gib
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import lightgbm as lgb
from sklearn.model_selection import train_test_split
t, c = time.perf_counter(), time.process_time()
table = pq.read_table(sys.argv[1])
columns = {}
for name in table.column_names:  # trim text, "?" as missing: what ingest normalises
    col = table[name]
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.utf8_trim_whitespace(col)
        col = pc.if_else(pc.equal(col, "?"), pa.scalar(None, col.type), col)
    columns[name] = col
table = pa.table(columns)
y = pc.equal(table["income"], ">50K").to_numpy(zero_copy_only=False)
rest, test = train_test_split(np.arange(len(y)), test_size=0.15, random_state=42, stratify=y)
train, valid = train_test_split(rest, test_size=0.15 / 0.85, random_state=43, stratify=y[rest])
features = table.drop_columns(["income"])
x = {}
for name in features.column_names:  # category codes (dictionary) and numbers, as LightGBM takes them
    col = features[name]
    x[name] = (pc.dictionary_encode(col).combine_chunks().indices.to_numpy(zero_copy_only=False).astype(float)
               if not pa.types.is_integer(col.type) and not pa.types.is_floating(col.type)
               else col.to_numpy(zero_copy_only=False).astype(float))
categorical = [i for i, name in enumerate(x) if not pa.types.is_integer(features[name].type)
               and not pa.types.is_floating(features[name].type)]
matrix = np.column_stack(list(x.values()))
reference = None
for part, pos in (("train", np.sort(train)), ("validation", np.sort(valid)), ("test", np.sort(test))):
    data = lgb.Dataset(matrix[pos], label=y[pos], categorical_feature=categorical, reference=reference,
                       params={"verbose": -1}, free_raw_data=True).construct()  # binned: what LightGBM trains on
    data.save_binary(sys.argv[2] + f"/{part}.bin")
    reference = reference or data
print(json.dumps({"total": time.perf_counter() - t, "total_cpu": time.process_time() - c, "rss_gb": peak_gib()}))
"""

STAGES = r"""
import json, os, sys, time
from benchmarks.memory import peak_gib, reset_peak
from trainflow.catalog import new_run_id
from trainflow.cluster import ComputeSettings, dask_client
from tasks.ingest import ingest
from trainflow.schema import load_schema
from tasks.split import SplitSettings, split
from tasks.transform import transform
from trainflow.features import TransformSettings
from tasks.validate import validate
t = time.perf_counter()
import skops.io  # what transform loads when it saves the preprocessor, imported before the clock as the floor
# and the plain script import their libraries; timed on its own (paid once per process, whatever the rows)
lazy_imports = time.perf_counter() - t
schema, root, run, times = load_schema("adult"), sys.argv[2], new_run_id(), {"imports": lazy_imports}
compute = ComputeSettings(engine=sys.argv[3])
client = dask_client("local") if compute.engine == "dask" else None  # started before the clock: not timed
def workers(fn):  # summed over the cluster's worker processes
    return sum(client.run(fn).values()) if client else 0.0
def worker_cpu():
    t = os.times()
    return t.user + t.system
def worker_peak():
    from benchmarks.memory import peak_gib
    return peak_gib()
def timed(name, fn):
    peaks.append(peak_gib())
    reset_peak()  # each stage's own peak (the memory earlier stages left resident included)
    t, c, w = time.perf_counter(), time.process_time(), workers(worker_cpu)
    out = fn()
    times[name], times[name + "_cpu"] = time.perf_counter() - t, time.process_time() - c + workers(worker_cpu) - w
    times[name + "_peak"] = peak_gib()
    return out
peaks = []
from flows.training import IngestSettings
rows = IngestSettings().batch_rows  # as the flow ingests: batch by batch
raw = timed("ingest", lambda: ingest.fn(root, run, schema, source=sys.argv[1], batch_rows=rows, compute=compute))
valid = timed("validate", lambda: validate.fn(root, run, schema, raw, batch_rows=rows, compute=compute))
splits = timed("split", lambda: split.fn(root, run, schema, valid, SplitSettings(), 42, rows, compute))
timed("transform", lambda: transform.fn(root, run, schema, splits, TransformSettings(), rows, compute))
stages = ("ingest", "validate", "split", "transform")
times["total"], times["total_cpu"] = sum(times[k] for k in stages), sum(times[k + "_cpu"] for k in stages)
times["rss_gb"] = max(peaks + [peak_gib()])
times["worker_peak_gb"] = max(client.run(worker_peak).values()) if client else None
print(json.dumps(times))
"""


def make_table(rows: int, path: Path) -> None:
    """Adult's raw rows drawn with replacement, numeric columns jittered, noise kept."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = pq.read_table(ROOT / "data" / "sample" / "adult.parquet")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, base.num_rows, rows)
    table = base.take(pa.array(idx))
    cols = {}
    for name in table.column_names:
        col = table[name].to_numpy(zero_copy_only=False)
        if name == "age":
            col = np.clip(col + rng.integers(-2, 3, rows), 17, 90)
        elif name == "hours-per-week":
            col = np.clip(col + rng.integers(-3, 4, rows), 1, 99)
        cols[name] = col
    pq.write_table(pa.table(cols), path, compression="zstd", row_group_size=1_000_000)


def _run(code: str, source: Path, out: Path, *extra: str) -> dict:
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    res = subprocess.run([sys.executable, "-c", code, str(source), str(out), *extra], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    """Each figure's median over the runs of one mode (None where a run has none)."""
    import statistics

    return {key: None if runs[0][key] is None else statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000000", help="table sizes, comma-separated (e.g. 1000000,5000000)")
    parser.add_argument("--engines", default="local", help="local (this process), dask (a 2-worker LocalCluster: "
                                                          "CPU seconds of the workers added), or both: local,dask")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every mode, interleaved; figures are "
                                                                  "their medians")
    args = parser.parse_args()
    per_row: dict[tuple[str, int], float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="tf-throughput-"))
    engines = args.engines.split(",")
    for n in (int(r) for r in args.rows.split(",")):
        source = tmp / f"adult_{n}.parquet"
        t = time.perf_counter()
        make_table(n, source)
        print(f"made {n:,} rows ({source.stat().st_size / 2**20:.0f} MiB Parquet) in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        runs: dict[str, list[dict]] = {mode: [] for mode in ("floor", "plain", *engines)}
        for k in range(args.repeats):  # interleaved, so that a slow minute of the machine hits every mode
            for mode, code, extra in (("floor", FLOOR, ()), ("plain", PLAIN, ()),
                                      *((engine, STAGES, (engine,)) for engine in engines)):
                out = tmp / f"{mode}_{n}_{k}"
                out.mkdir()
                runs[mode].append(_run(code, source, out, *extra))
        floor, plain = _median(runs["floor"]), _median(runs["plain"])
        print(f"\n{n:,} rows x 14 columns, Adult-shaped; one process per mode"
              + (f"; medians of {args.repeats} interleaved runs" if args.repeats > 1 else ""))
        print(f"{'mode':48} {'wall s':>8} {'cpu s':>8} {'rows/s':>12} {'wall x':>7} {'cpu x':>7} {'peak GiB':>9}")

        def line(name: str, wall: float, cpu: float, rss: float | None = None) -> None:
            print(f"{name:48} {wall:8.2f} {cpu:8.2f} {n / wall:12,.0f} {wall / floor['total']:7.2f} "
                  f"{cpu / floor['total_cpu']:7.2f} {'' if rss is None else f'{rss:9.2f}'}")

        line("floor: pyarrow read + write", floor["total"], floor["total_cpu"], floor["rss_gb"])
        line("plain: pyarrow, sklearn split, lgb.Dataset", plain["total"], plain["total_cpu"], plain["rss_gb"])
        for engine in engines:
            stages = _median(runs[engine])
            label = "" if engine == "local" else " (dask)"
            for stage in ("ingest", "validate", "split", "transform"):
                line(f"  {stage}{label}", stages[stage], stages[stage + "_cpu"], stages[stage + "_peak"])
            line(f"stages{label}: ingest+validate+split+transform", stages["total"], stages["total_cpu"],
                 stages["rss_gb"])
            print(f"{'':48} (against the plain script: {stages['total'] / plain['total']:.2f}x wall, "
                  f"{stages['total_cpu'] / plain['total_cpu']:.2f}x CPU; importing skops before the clock: "
                  f"{stages['imports']:.2f} s)")
            if stages["worker_peak_gb"] is not None:
                print(f"{'':48} (peak of the flow's process; each worker's own peak: at most "
                      f"{stages['worker_peak_gb']:.2f} GiB)")
            per_row[engine, n] = stages["total_cpu"] / n
        source.unlink()
    for engine in engines:
        costs = {n: c for (e, n), c in per_row.items() if e == engine}
        if len(costs) < 2:
            continue
        first = min(costs)
        print(f"\nCPU seconds per million rows (stages, {engine}): " + ", ".join(
            f"{n:,}: {1e6 * c:.2f} ({c / costs[first]:.2f}x of {first:,})" for n, c in sorted(costs.items())))
        import numpy as np

        sizes = np.array(sorted(costs), dtype=float)
        marginal, fixed = np.polyfit(sizes, [costs[int(n)] * n for n in sizes], 1)  # least squares: fixed + per row
        print(f"least-squares fit of CPU seconds = fixed + per row x rows: fixed {fixed:.2f} s (imports and the "
              f"like, paid once per process), {1e6 * marginal:.2f} s per million rows")


if __name__ == "__main__":
    main()
