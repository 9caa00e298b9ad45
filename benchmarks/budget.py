"""The time limit on tables that are hard for it: many classes, and many columns on few rows.

Each table is made here (scikit-learn's ``make_classification``), written as CSV and taken the way a new user
takes it (``trainflow schema infer``, then the training flow with every default and ``--time-limit``), as
``benchmarks/quality.py`` does:

- ``classes32``: 2,000 rows, 40 features (4 of them binned into letter categories), 32 classes;
- ``wide``: 1,000 rows, 800 features, 2 classes.

Prints per table: the limit, the flow's wall and CPU seconds (the Prefect API started before the clock), what
the limit cut (the leaderboard's ``budget`` notes and tuning's trials), the flow's test metric (accuracy or
ROC-AUC) beside default LightGBM fitted on the flow's own split, and the ratio of flow seconds to the limit.
A test split of a few hundred rows decides little (the wide table's 150 test rows: a standard error of about
0.03 ROC-AUC), so ``--seeds N`` makes each table N times from seeds 0..N-1 and adds a line per table with the
means and how many of the N the flow won.

    python -m benchmarks.budget [--time-limit 120] [--tables classes32,wide] [--seeds 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

MAKERS = {
    "classes32": dict(n_samples=2000, n_features=40, n_informative=24, n_redundant=4, n_classes=32,
                      n_clusters_per_class=1, class_sep=1.5),
    "wide": dict(n_samples=1000, n_features=800, n_informative=30, n_redundant=20, n_classes=2),
}
CATEGORICAL = {"classes32": 4, "wide": 0}


def make_table(name: str, folder: Path, seed: int = 0, file: str | None = None) -> Path:
    """The table ``name`` made from ``seed`` as CSV (``file``.csv, default ``name``.csv): features ``f0``...,
    label ``y`` (``c0``..., text), the first columns binned into letters where ``CATEGORICAL`` asks."""
    from sklearn.datasets import make_classification

    x, y = make_classification(random_state=seed, **MAKERS[name])
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    for i in range(CATEGORICAL[name]):
        frame[f"f{i}"] = pd.qcut(frame[f"f{i}"], 5, labels=list("abcde")).astype(str)
    frame["y"] = np.char.add("c", y.astype(str))
    path = folder / f"{file or name}.csv"
    frame.to_csv(path, index=False)
    return path


def cuts(run: Path) -> str:
    """What the limit cut in a run: the leaderboard's notes and the tuning trials it stopped."""
    board = pd.read_parquet(run / "train" / "leaderboard.parquet")
    notes = [f"{r['family']}: {r['budget']}" for r in board.to_dict("records") if r.get("budget")]
    trials = run / "tune" / "trials.parquet"
    if trials.exists():
        t = pd.read_parquet(trials)
        stopped = t["stopped"].str.startswith("the tuning budget ran out").sum()
        notes.append(f"tuning: {int((t['state'] == 'complete').sum())} of {len(t)} trials complete"
                     + (f", {stopped} stopped by the limit" if stopped else ""))
    return "; ".join(notes) or "nothing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget", description=__doc__.split("\n")[0])
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--tables", default=",".join(MAKERS))
    parser.add_argument("--seeds", type=int, default=1, help="tables made from seeds 0..N-1 (default 1)")
    parser.add_argument("--keep", help="folder to keep the runs in (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    from benchmarks.quality import METRIC, Table, run_table

    rows = []
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        work = Path(args.keep or tmp)
        (work / "tables").mkdir(parents=True, exist_ok=True)
        for name in args.tables.split(","):
            for seed in range(args.seeds):
                table = name if seed == 0 else f"{name}_seed{seed}"
                source = make_table(name, work / "tables", seed, table)
                row = run_table(Table(table, str(source), "y"), work, {"time_limit": args.time_limit}, anchor=False)
                if "error" not in row:
                    row["cut"] = cuts(Path(row["run_dir"]))
                rows.append({**row, "maker": name})
                print(json.dumps(row, default=str), flush=True)
    print(f"\n| table | rows | limit s | flow s | flow CPU s | flow / limit | metric | flow | default LightGBM | "
          "family | what the limit cut |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['table']} | | {args.time_limit:.0f} | | | | | error: {r['error']} | | | |")
            continue
        print(f"| {r['table']} | {r['rows']:,} | {args.time_limit:.0f} | {r['flow_s']:.1f} | {r['flow_cpu_s']:.1f} | "
              f"{r['flow_s'] / args.time_limit:.2f} | {METRIC[r['task']]} | {r['flow']:.4f} | {r['lightgbm']:.4f} | "
              f"{r['family']} | {r['cut']} |")
    if args.seeds > 1:
        print()
        for name in args.tables.split(","):
            done = [r for r in rows if r["maker"] == name and "error" not in r]
            if done:
                won = sum(r["flow"] > r["lightgbm"] for r in done)  # accuracy and ROC-AUC: higher is better
                print(f"{name}: {len(done)} seeds, mean {METRIC[done[0]['task']]} flow "
                      f"{np.mean([r['flow'] for r in done]):.4f}, default LightGBM "
                      f"{np.mean([r['lightgbm'] for r in done]):.4f}; the flow ahead on {won} of {len(done)}; "
                      f"flow seconds at most {max(r['flow_s'] for r in done):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
