"""Data stages at scale: ingest + validate + split + transform on a 5,000,000-row table shaped like Adult.

The table is Adult's rows drawn with replacement, numbers jittered, raw noise kept (leading spaces,
``?``). Each mode runs in its own process so that its peak memory (max RSS) is its own:

- floor: ``pyarrow.parquet.read_table`` then ``write_table`` of the same file;
- stages: the four stage task bodies (``task.fn``: the stage's compute plus its catalog reads and
  writes, without Prefect's per-task overhead of ~55 ms), one after the other, each timed.

    python -m benchmarks.data_throughput [--rows 5000000]
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
t = time.perf_counter()
table = pq.read_table(sys.argv[1])
pq.write_table(table, sys.argv[2] + "/copy.parquet", compression="zstd")
print(json.dumps({"total": time.perf_counter() - t, "rss_gb": peak_gib()}))
"""

STAGES = r"""
import json, sys, time
from benchmarks.memory import peak_gib
from trainflow.catalog import new_run_id
from tasks.ingest import ingest
from trainflow.schema import load_schema
from tasks.split import SplitSettings, split
from tasks.transform import transform
from trainflow.features import TransformSettings
from tasks.validate import validate
schema, root, run, times = load_schema("adult"), sys.argv[2], new_run_id(), {}
t = time.perf_counter()
raw = ingest.fn(root, run, schema, source=sys.argv[1]); times["ingest"] = time.perf_counter() - t
t = time.perf_counter()
valid = validate.fn(root, run, schema, raw); times["validate"] = time.perf_counter() - t
t = time.perf_counter()
splits = split.fn(root, run, schema, valid, SplitSettings(), 42); times["split"] = time.perf_counter() - t
t = time.perf_counter()
transform.fn(root, run, schema, splits, TransformSettings()); times["transform"] = time.perf_counter() - t
times["total"] = sum(times.values())
times["rss_gb"] = peak_gib()
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


def _run(code: str, source: Path, out: Path) -> dict:
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    res = subprocess.run([sys.executable, "-c", code, str(source), str(out)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=3600)
    if res.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tf-throughput-"))
    source = tmp / "adult_big.parquet"
    t = time.perf_counter()
    make_table(args.rows, source)
    print(f"made {args.rows:,} rows ({source.stat().st_size / 2**20:.0f} MiB Parquet) in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    (tmp / "floor").mkdir()
    floor = _run(FLOOR, source, tmp / "floor")
    stages = _run(STAGES, source, tmp / "stages")
    n = args.rows
    print(f"\n{n:,} rows x 14 columns, Adult-shaped; one process per mode")
    print(f"{'mode':34} {'seconds':>8} {'rows/s':>12} {'vs floor':>9} {'peak RSS GiB':>13}")
    print(f"{'floor: pyarrow read + write':34} {floor['total']:8.2f} {n / floor['total']:12,.0f} {1:9.2f} "
          f"{floor['rss_gb']:13.2f}")
    for stage in ("ingest", "validate", "split", "transform"):
        print(f"{'  ' + stage:34} {stages[stage]:8.2f} {n / stages[stage]:12,.0f} "
              f"{stages[stage] / floor['total']:9.2f}")
    print(f"{'stages: ingest+validate+split+transform':34} {stages['total']:8.2f} {n / stages['total']:12,.0f} "
          f"{stages['total'] / floor['total']:9.2f} {stages['rss_gb']:13.2f}")


if __name__ == "__main__":
    main()
