"""Write daily batches of Adult-shaped labelled data with gradual drift, to demo and test retraining.

Day d (0-based): rows drawn from Adult; age + 0.8·d years and hours-per-week + 0.6·d; from day 3 a new
workclass category, "Gig-economy", on 3% of rows per day after that; label drift: from day 4, 2% of
'<=50K' rows per day turn '>50K'. Files are named by date so that sorting by name is sorting by day.

    trainflow simulate --out data/batches --days 7 --rows 2000
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from trainflow.schema import PROJECT_ROOT


def simulate_day(base: pd.DataFrame, day: int, rows: int, seed: int) -> pd.DataFrame:
    """One day's labelled batch with the drift of that day (raw values, noise included)."""
    rng = np.random.default_rng(seed + day)
    df = base.sample(rows, replace=True, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
    df["age"] = np.clip(np.round(df["age"] + 0.8 * day + rng.normal(0, 1, rows)), 17, 95).astype(int)
    df["hours-per-week"] = np.clip(np.round(df["hours-per-week"] + 0.6 * day), 1, 99).astype(int)
    if day >= 3:
        df["workclass"] = df["workclass"].astype(object)
        df.loc[rng.random(rows) < 0.03 * (day - 2), "workclass"] = " Gig-economy"
    if day >= 4:
        low = df["income"].str.strip() == "<=50K"
        df.loc[low & (rng.random(rows) < 0.02 * (day - 3)), "income"] = " >50K"
    return df


def simulate(out: str | Path, days: int = 7, rows: int = 2000, seed: int = 0,
             start: dt.date = dt.date(2026, 11, 1)) -> list[Path]:
    """Write ``days`` batches to ``out``; return their paths, oldest first."""
    base = pd.read_parquet(PROJECT_ROOT / "data" / "sample" / "adult.parquet")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in range(days):
        path = folder / f"batch-{start + dt.timedelta(days=day)}.parquet"
        simulate_day(base, day, rows, seed).to_parquet(path, index=False)
        paths.append(path)
    return paths
