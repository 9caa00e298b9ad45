"""Threads per fit: one thread against every usable core, on an idle machine and beside a busy process.

Each family is fitted on Adult's training features (as the train stage gets them) with a fixed amount of work
(no early stopping): LightGBM and CatBoost ``--rounds`` rounds, a random forest of 100 trees, logistic
regression. "busy" runs ``python -c 'while True: pass'`` beside the fit, the way a shared machine does. Wall and
CPU seconds (of this process) are medians of ``--repeats`` interleaved runs; the ratio is the wall time of every
core over one thread's. ``trainflow.threads`` chooses the default from these figures.

    python -m benchmarks.threads [--rounds 300] [--repeats 3] [--families lightgbm,catboost,random_forest,logistic]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator


@contextmanager
def busy(on: bool) -> Iterator[None]:
    """A CPU-bound process beside the body when ``on``."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        if proc is not None:
            time.sleep(0.5)  # let it take its core
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default="lightgbm,catboost,random_forest,logistic")
    args = parser.parse_args()

    from benchmarks.training_throughput import _data
    from trainflow.features import TransformSettings
    from trainflow.models.settings import TrainSettings
    from trainflow.models.fit import fit_family
    from trainflow.threads import limited, usable_cores

    schema, x, y, _, _ = _data("adult", 1)
    train = x.assign(**{schema.label: y})
    cores = usable_cores()
    results: dict[tuple, list[tuple[float, float]]] = {}
    families = args.families.split(",")
    for _ in range(args.repeats):
        for load in ("idle", "busy"):
            with busy(load == "busy"):
                for family in families:
                    for threads in sorted({1, cores}):
                        settings = TrainSettings(n_jobs=threads, lightgbm_max_rounds=args.rounds,
                                                 params={"random_forest": {"n_estimators": 100}})
                        wall, cpu = time.perf_counter(), time.process_time()
                        with limited(threads):
                            fit_family(family, schema, train, None, TransformSettings(), settings, 0)
                        results.setdefault((family, load, threads), []).append(
                            (time.perf_counter() - wall, time.process_time() - cpu))
    print(f"{cores} usable cores; medians of {args.repeats} runs; Adult, {len(train):,} training rows\n")
    print("| family | load | threads | wall s | CPU s | wall vs 1 thread |")
    print("|---|---|---:|---:|---:|---:|")
    for family in families:
        for load in ("idle", "busy"):
            one = statistics.median(w for w, _ in results[(family, load, 1)])
            for threads in sorted({1, cores}):
                runs = results[(family, load, threads)]
                wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
                print(f"| {family} | {load} | {threads} | {wall:.2f} | {cpu:.2f} | {wall / one:.2f}x |")


if __name__ == "__main__":
    main()
