"""Tuning on Adult with LightGBM: random search against TPE at the same budgets, and parallel workers.

Part 1: for each seed, one random-search study and one TPE study of ``--trials`` trials (no pruning, so
both spend the same work per trial); the best 3-fold CV ROC-AUC and the wall time after the first 10, 25
and 50 trials are read off the same study. Part 2: the same 16-point grid with one worker against two
workers sharing the study (threads, as the flow's default task runner runs ``tune_trials`` tasks).

Data: ``--rows`` rows of Adult's training and validation splits, transformed as the training flow does;
LightGBM up to 300 rounds with early stopping on each fold's held-out rows.

    python -m benchmarks.tuning [--rows 10000] [--trials 50] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from flows.training import TrainingSettings, tuning_workers
from trainflow.cluster import task_runner
from trainflow.catalog import ArtifactStore, new_run_id
from tasks.ingest import ingest_data
from trainflow.schema import load_schema
from tasks.split import SplitSettings, split_data
from trainflow.models.settings import TrainSettings
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings
from tasks.tune import ParamSpec, TuneSettings, open_study, plan_study, run_trials, search_space, trials_table

TRAIN = TrainSettings(families=["lightgbm"], lightgbm_max_rounds=300, early_stopping_rounds=30)
GRID = {"num_leaves": ParamSpec(type="int", low=15, high=63, grid=[15, 63]),
        "learning_rate": ParamSpec(type="float", low=0.05, high=0.1, grid=[0.05, 0.1]),
        "min_child_samples": ParamSpec(type="int", low=10, high=50, grid=[10, 50]),
        "colsample_bytree": ParamSpec(type="float", low=0.6, high=1.0, grid=[0.6, 1.0]),
        # the rest of LightGBM's default space held at one value: 2^4 = 16 points in all
        "subsample": ParamSpec(type="float", low=1.0, high=1.0, grid=[1.0]),
        "reg_lambda": ParamSpec(type="float", low=0.0, high=0.0, grid=[0.0])}


def _features(root: str, rows: int):  # noqa: ANN202
    schema = load_schema("adult")
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), 42)
    _, feats = fit_transform_splits(splits, schema, TransformSettings())
    share = rows / (len(feats["train"]) + len(feats["validation"]))
    store, run = ArtifactStore(root), new_run_id()
    refs = {k: store.write_table(run, "transform", f"features_{k}", feats[k].sample(frac=min(share, 1.0),
                                                                                    random_state=0))
            for k in ("train", "validation")}
    return schema, refs


def _study(root: str, schema, refs, settings: TuneSettings, seed: int, workers: int = 1) -> tuple[pd.DataFrame, float]:  # noqa: ANN001
    plan = plan_study(root, schema, refs, TRAIN, settings, seed)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda w: run_trials(root, schema, refs, TransformSettings(), TRAIN, settings, plan, seed,
                                           worker=w), range(workers)))
    wall = time.perf_counter() - started
    study = open_study(plan["storage"], plan["study"], settings.method, search_space(plan["family"], settings),
                       plan["direction"], seed, settings.pruner)
    return trials_table(study).sort_values("trial", ignore_index=True), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel-only", action="store_true", help="skip part 1 (random against TPE)")
    args = parser.parse_args(argv)
    budgets = [b for b in (10, 25, 50) if b <= args.trials]
    with tempfile.TemporaryDirectory() as root:
        schema, refs = _features(root, args.rows)
        rows = []
        for seed in [] if args.parallel_only else args.seeds:
            for method in ("random", "tpe"):
                settings = TuneSettings(method=method, n_trials=args.trials, pruner="none", cv_folds=3)
                trials, _ = _study(root, schema, refs, settings, seed)
                start = trials["started"].min()
                for b in budgets:
                    first = trials.head(b)
                    end = (first["started"] + pd.to_timedelta(first["seconds"], unit="s")).max()
                    rows.append({"seed": seed, "method": method, "trials": b, "best_cv_auc": first["mean"].max(),
                                 "wall_s": (end - start).total_seconds()})
                    print(f"seed {seed} {method:6s} {b:3d} trials: best {rows[-1]['best_cv_auc']:.4f} "
                          f"in {rows[-1]['wall_s']:.1f} s", flush=True)
        if rows:  # part 1 ran
            table = pd.DataFrame(rows)
            print(f"Adult, {args.rows:,} rows, LightGBM, 3-fold CV ROC-AUC; best after N trials, per seed")
            print(table.pivot_table(index=["trials", "seed"], columns="method", values=["best_cv_auc", "wall_s"])
                  .to_string(float_format=lambda v: f"{v:.4f}"))
            mean = table.groupby(["trials", "method"])[["best_cv_auc", "wall_s"]].mean().unstack()
            print("\nmean over seeds")
            print(mean.to_string(float_format=lambda v: f"{v:.4f}"))
            # trials TPE needed to reach random search's best at the largest budget, per seed
            for seed in args.seeds:
                best_random = table[(table["seed"] == seed) & (table["method"] == "random")]["best_cv_auc"].max()
                settings = TuneSettings(method="tpe", n_trials=args.trials, pruner="none", cv_folds=3)
                trials, _ = _study(root, schema, refs, settings, seed)  # already complete: read back
                reached = trials.index[trials["mean"].cummax() >= best_random - 1e-9]
                print(f"seed {seed}: random's best {best_random:.4f} after {args.trials} trials; TPE reached it at "
                      f"trial {int(reached[0]) + 1 if len(reached) else 'never'}")

        warm = TuneSettings(family="logistic", n_trials=1, storage=f"sqlite:///{root}/warm.db")
        tuning_workers.with_options(task_runner=task_runner(None, 1))(  # start Prefect's temporary server
            TrainingSettings(dataset="adult", artifacts_root=root, tune=warm), refs,
            plan_study(root, schema, refs, TRAIN.model_copy(update={"families": ["logistic"]}), warm, 0))
        par = []
        for workers, jobs, runner in ((1, -1, None), (1, 1, None), (2, 1, None), (2, 1, "threads"), (2, 1, "dask")):
            settings = TuneSettings(method="grid", n_trials=16, pruner="none", cv_folds=3, space=GRID,
                                    workers=workers, storage=f"sqlite:///{root}/grid-{workers}-{jobs}-{runner}.db",
                                    dask_address="local" if runner == "dask" else None)
            train = TRAIN.model_copy(update={"n_jobs": jobs})
            plan = plan_study(root, schema, refs, train, settings, 0)
            started = time.perf_counter()
            if runner is None:  # run_trials called from a thread pool: the work alone
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(lambda w, s=settings, t=train, p=plan: run_trials(
                        root, schema, refs, TransformSettings(), t, s, p, 0, worker=w), range(workers)))
            else:  # the flow's path: a tuning-workers subflow on its task runner (a Dask cluster starts inside)
                flow_settings = TrainingSettings(dataset="adult", artifacts_root=root, train=train, tune=settings,
                                                 seed=0)
                tuning_workers.with_options(task_runner=task_runner(settings.dask_address, settings.parallel))(
                    flow_settings, refs, plan)
            wall = time.perf_counter() - started
            trials = trials_table(open_study(plan["storage"], plan["study"], "grid", search_space("lightgbm", settings),
                                             "maximize", 0, "none"))
            par.append({"workers": workers, "run by": {None: "thread pool", "threads": "Prefect threads",
                                                       "dask": "Prefect + Dask"}[runner],
                        "lightgbm threads per trial": 2 if jobs == -1 else jobs,
                        "trials": len(trials), "best_cv_auc": trials["mean"].max(), "wall_s": wall})
        par = pd.DataFrame(par)
        par["speed-up vs 1 worker, 1 thread"] = par.loc[1, "wall_s"] / par["wall_s"]
        print("\nthe same 16-point grid, 1 worker against 2: a bare thread pool, then the flow's tuning-workers "
              "subflow on Prefect's thread pool and on a temporary local Dask cluster (its start-up included)")
        print(par.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
