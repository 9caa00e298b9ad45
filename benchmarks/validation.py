"""Validation cost: the Adult suite on an Adult-shaped table, Arrow engine against Great Expectations.

For each size, in one process per engine (peak memory its own): reading the Parquet file into pandas (the
floor: the validate stage starts from the ingested file read so; the raw noise is then cleaned as ingest does,
untimed), then ``validate_data`` with ``engine="arrow"`` (the suite's rules in
pyarrow.compute, GX's results) and with ``engine="gx"`` (every rule by Great Expectations), summary results and
with quarantine (every unexpected row's index). CPU seconds beside wall seconds; ratios to the faster read.

    python -m benchmarks.validation [--rows 1000000,5000000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.data_throughput import make_table
from benchmarks.inference_throughput import _py

RUN = r"""
import json, sys, time
import pyarrow.parquet as pq
from benchmarks.memory import peak_gib
from tasks.validate import validate_data
from trainflow.schema import load_schema
from trainflow.sources import normalise
schema = load_schema("adult")
pq.read_table(sys.argv[1])  # the file in the page cache: every mode reads it warm
t, c = time.perf_counter(), time.process_time()
df = pq.read_table(sys.argv[1]).to_pandas()
out = {"read": [time.perf_counter() - t, time.process_time() - c]}
df = normalise(df, schema.missing_markers)  # as ingest writes it (not timed)
for quarantine in (False, True):
    t, c = time.perf_counter(), time.process_time()
    result = validate_data(df, schema, quarantine=quarantine, max_quarantine_fraction=1.0, engine=sys.argv[2])
    out["quarantine" if quarantine else "summary"] = [time.perf_counter() - t, time.process_time() - c]
out["failed"] = int((~result.results["success"]).sum())
out["rss_gb"] = peak_gib()
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,5000000", help="table sizes, comma-separated")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tf-validation-"))
    print(f"{'rows':>10} {'engine':6} {'read s':>14} {'summary s':>16} {'x read':>7} {'quarantine s':>16} "
          f"{'x read':>7} {'failed':>6} {'peak GiB':>8}")
    print(f"{'':10} {'':6} {'wall / cpu':>14} {'wall / cpu':>16}")
    for rows in (int(r) for r in args.rows.split(",")):
        source = tmp / f"adult_{rows}.parquet"
        make_table(rows, source)
        runs = {engine: _py(RUN, str(source), engine) for engine in ("arrow", "gx")}
        read = min(m["read"][0] for m in runs.values())  # the floor: the faster of the two reads (the first
        # process after the file is written reads slower while the page cache writes it back)
        for engine, m in runs.items():
            print(f"{rows:>10,} {engine:6} {m['read'][0]:>7.2f}/{m['read'][1]:>6.2f} "
                  f"{m['summary'][0]:>8.2f}/{m['summary'][1]:>7.2f} {m['summary'][0] / read:>7.2f} "
                  f"{m['quarantine'][0]:>8.2f}/{m['quarantine'][1]:>7.2f} {m['quarantine'][0] / read:>7.2f} "
                  f"{m['failed']:>6} {m['rss_gb']:>8.2f}")
        source.unlink()


if __name__ == "__main__":
    main()
