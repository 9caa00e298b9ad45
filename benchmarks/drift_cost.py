"""Drift detection: its cost on 1,000,000 rows x 14 entries, and its power and false alarms over a simulated week.

    python -m benchmarks.drift_cost [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd

from benchmarks.memory import peak_gib
from deployments.simulate import simulate
from tasks.drift import DriftSettings, build_profile, detect_drift
from tasks.ingest import ingest_data
from trainflow.sources import normalise
from trainflow.schema import load_schema
from tasks.split import SplitSettings, split_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    schema = load_schema("adult")
    raw, _ = ingest_data(schema)
    splits, _ = split_data(raw, schema, SplitSettings(), seed=0)
    rng = np.random.default_rng(0)
    profile = build_profile(splits["train"], schema, scores=rng.beta(2, 5, len(splits["train"])))
    big = raw.sample(args.rows, replace=True, random_state=1).reset_index(drop=True)
    scores = rng.beta(2, 5, args.rows)
    rss_before = peak_gib()
    t = time.perf_counter()
    report, summary = detect_drift(profile, big, DriftSettings(), scores)
    seconds = time.perf_counter() - t
    rss_after = peak_gib()
    print(f"\ncost: {args.rows:,} rows x {len(report)} entries (13 features + predictions) against the profile")
    print(f"{'seconds':>8} {'rows/s':>12} {'peak RSS GiB (process)':>23} {'profile rows':>13}")
    print(f"{seconds:8.2f} {args.rows / seconds:12,.0f} {rss_after:23.2f} {len(profile):13,}")
    print(f"(process peak before the test: {rss_before:.2f} GiB, the rows themselves included)")

    days = simulate(tempfile.mkdtemp(prefix="tf-week-"), days=7, rows=2000, seed=0)
    print("\nsimulated week (deployments.simulate, 2,000 rows a day), reference: Adult's training split")
    print(f"{'day':>3} {'true shift':38} {'drifted features':56} {'share':>6} {'dataset':>8}")
    truths = ["none", "age +0.8, hours +0.6", "age +1.6, hours +1.2", "... + Gig-economy 3%",
              "... + 2% labels flipped", "age +4.0, hours +3.0, Gig 9%", "age +4.8, hours +3.6, Gig 12%"]
    for day, path in enumerate(days):
        batch = normalise(pd.read_parquet(path), schema.missing_markers)
        rep, summ = detect_drift(profile, batch, DriftSettings())
        drifted = ", ".join(rep[rep["drifted"]]["feature"]) or "-"
        print(f"{day:3d} {truths[day]:38} {drifted[:56]:56} {summ['share']:6.2f} {str(summ['dataset_drift']):>8}")
    pool = pd.concat([splits["validation"], splits["test"]])
    rates = []
    for n in (300, 2000):
        alarms = [detect_drift(profile, pool.sample(n, replace=True, random_state=i), DriftSettings())[0]
                  .set_index("feature")["drifted"] for i in range(100)]
        rates.append((n, pd.concat(alarms, axis=1).mean(axis=1)))
    print("\nfalse alarms on 100 samples of the reference population (per feature, p < 0.05 / distance > 0.1)")
    for n, r in rates:
        test = "KS / chi-square" if n <= 1000 else "Wasserstein / Jensen-Shannon"
        print(f"n={n:<5} {test:28} mean {r.mean():.3f}  max {r.max():.3f} ({r.idxmax()})")


if __name__ == "__main__":
    main()
