"""Drift: a reference profile saved at training time, and per-feature drift tests against it.

The profile holds, per feature, its type, missing rate, quantiles (numeric) or category frequencies
(categorical) of the training rows, and the same for the model's scores: monitoring never needs the
raw training data again.

Tests, chosen by type and sample size (the defaults follow Evidently's):

| feature | current rows <= ``small_sample`` (1,000) | larger | threshold (default) |
| --- | --- | --- | --- |
| numeric, continuous | Kolmogorov–Smirnov against the reference quantile function | Wasserstein distance / reference std | p < 0.05; distance > 0.1 |
| numeric with ties (integers, a value holding >= 1% of rows) | chi-square on the reference's decile bins | Wasserstein distance / reference std | p < 0.05; distance > 0.1 |
| categorical | chi-square on category counts | Jensen–Shannon distance | p < 0.05; distance > 0.1 |
| any, on request (``method="psi"``) | population stability index on reference bins | same | PSI > 0.2 |

KS assumes a continuous distribution: on tied values (age in whole years, hours-per-week mostly 40)
it alarms on samples of the reference itself, so tied numbers are binned instead. Chi-square pools
the categories (or bins) expected fewer than 5 times into one, the usual rule for its approximation.

A dataset drifts when the share of drifted features reaches ``dataset_drift_share`` (0.5). Missing
rate changes and categories the reference never saw are reported beside each test.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pandas as pd
from prefect import task
from pydantic import Field
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.pipeline import Pipeline

from trainflow.cache import CONTENT
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import DRIFT_PLOT, DRIFT_REPORT, DRIFT_SUMMARY, REFERENCE_PROFILE
from trainflow.features import as_model_input
from trainflow.forms import FormModel
from trainflow.metrics import DIRECTION, positive_index
from trainflow.models.bundle import load_bundle
from trainflow.progress import run_logger
from trainflow.schema import DatasetSchema
from trainflow.ui import embedded_png, publish, table_rows

PREDICTION = "__prediction__"  # the profile's entry for the model's scores
N_QUANTILES = 101  # 0%, 1%, ... 100%
N_PSI_BINS = 10
TIE_SHARE = 0.01  # a numeric column whose commonest value holds this share of rows is treated as tied
MIN_EXPECTED = 5.0
EPS = 1e-6


class DriftSettings(FormModel):
    """How drift is tested; thresholds apply per feature."""

    small_sample: int = Field(1000, ge=1, description="up to this many current rows: KS / chi-square, else distances")
    p_value: float = Field(0.05, gt=0, lt=1, description="KS and chi-square: drift below this p-value")
    wasserstein_threshold: float = Field(0.1, gt=0, description="normed Wasserstein distance above this is drift")
    jensen_shannon_threshold: float = Field(0.1, gt=0, description="Jensen-Shannon distance above this is drift")
    psi_threshold: float = Field(0.2, gt=0, description="population stability index above this is drift")
    method: Literal["auto", "psi"] = Field("auto", description="auto: by type and size as documented; psi for all")
    dataset_drift_share: float = Field(0.5, gt=0, le=1, description="dataset drifts at this share of drifted features")
    missing_rate_change: float = Field(0.1, ge=0, le=1, description="report a missing-rate change above this")


TEXT_LENGTH = ":length"


def _text_length(s: pd.Series) -> pd.Series:
    return s.astype("str").str.len().astype("Float64").astype(float)


def _numeric_kind(s: pd.Series) -> str:
    present = s.dropna().to_numpy(dtype=float)
    if len(present) == 0:
        return "discrete"
    integral = bool(np.all(present == np.round(present)))
    top_share = pd.Series(present).value_counts(normalize=True).iloc[0]
    return "discrete" if integral or top_share >= TIE_SHARE else "continuous"


def _bin_edges(quantiles: np.ndarray) -> np.ndarray:
    """Upper edges of right-closed bins from the reference deciles (ties merged), the last one +inf."""
    deciles = quantiles[:: (N_QUANTILES - 1) // N_PSI_BINS]
    edges = np.unique(deciles)[:-1]
    return np.append(edges, np.inf)


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, values, side="left")  # right-closed bins: x <= edge
    return np.bincount(idx, minlength=len(edges)).astype(float)


def build_profile(df: pd.DataFrame, schema: DatasetSchema, scores: np.ndarray | None = None) -> pd.DataFrame:
    """The reference profile of training rows (and of the model's scores on them), one row per entry.

    Columns: ``feature``, ``kind`` (continuous, discrete, categorical), ``entry`` (quantile, category,
    bin, missing_rate, rows, std), ``key`` (quantile level, category or bin edge), ``value``.
    """
    rows: list[dict] = []
    # a date column is left out: new rows bring later dates by nature, so it would drift every night
    columns = {c.name: df[c.name] for c in schema.features if c.type not in ("text", "datetime")}
    # a text column is profiled by its length in characters (``review:length``): free text has no categories
    columns.update({f"{c}{TEXT_LENGTH}": _text_length(df[c]) for c in schema.text_features})
    if scores is not None:
        columns[PREDICTION] = pd.Series(scores)
    levels = np.linspace(0, 1, N_QUANTILES)
    for name, s in columns.items():
        numeric = pd.api.types.is_numeric_dtype(s) and name not in schema.categorical_features
        kind = _numeric_kind(s) if numeric else "categorical"
        rows += [{"feature": name, "kind": kind, "entry": "rows", "key": "", "value": float(len(s))},
                 {"feature": name, "kind": kind, "entry": "missing_rate", "key": "", "value": float(s.isna().mean())}]
        present = s.dropna()
        if kind in ("continuous", "discrete"):
            values = present.to_numpy(dtype=float)
            q = np.quantile(values, levels)
            rows += [{"feature": name, "kind": kind, "entry": "quantile", "key": f"{lv:.2f}", "value": float(v)}
                     for lv, v in zip(levels, q)]
            rows.append({"feature": name, "kind": kind, "entry": "std", "key": "", "value": float(present.std())})
            if kind == "discrete":
                edges = _bin_edges(q)
                shares = _bin_shares(values, edges) / max(len(values), 1)
                rows += [{"feature": name, "kind": kind, "entry": "bin", "key": repr(float(e)), "value": float(v)}
                         for e, v in zip(edges, shares)]
        else:
            freq = present.astype(str).value_counts(normalize=True)
            rows += [{"feature": name, "kind": kind, "entry": "category", "key": str(k), "value": float(v)}
                     for k, v in freq.items()]
    return pd.DataFrame(rows)


def _profile_of(profile: pd.DataFrame, feature: str) -> tuple[str, pd.DataFrame]:
    part = profile[profile["feature"] == feature]
    return part["kind"].iloc[0], part


def _ref_quantiles(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    q = part[part["entry"] == "quantile"]
    return q["key"].astype(float).to_numpy(), q["value"].to_numpy()


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    r, c = np.clip(ref_share, EPS, None), np.clip(cur_share, EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _chi_square(ref_share: np.ndarray, cur_count: np.ndarray, settings: DriftSettings) -> dict:
    """Chi-square goodness of fit of current counts to reference shares, pooling cells expected < 5 times."""
    n = cur_count.sum()
    expected = np.clip(ref_share, EPS, None)
    expected = expected / expected.sum() * n
    small = expected < MIN_EXPECTED
    if small.any():
        exp_cells = np.append(expected[~small], expected[small].sum())
        obs_cells = np.append(cur_count[~small], cur_count[small].sum())
        if exp_cells[-1] < MIN_EXPECTED and len(exp_cells) > 2:  # the pool itself is small: join the smallest cell
            j = int(np.argmin(exp_cells[:-1]))
            exp_cells[j] += exp_cells[-1]
            obs_cells[j] += obs_cells[-1]
            exp_cells, obs_cells = exp_cells[:-1], obs_cells[:-1]
    else:
        exp_cells, obs_cells = expected, cur_count
    if len(exp_cells) < 2:
        return {"test": "chi_square", "statistic": 0.0, "p_value": 1.0, "threshold": settings.p_value,
                "drifted": False}
    res = stats.chisquare(obs_cells, exp_cells)
    return {"test": "chi_square", "statistic": float(res.statistic), "p_value": float(res.pvalue),
            "threshold": settings.p_value, "drifted": bool(res.pvalue < settings.p_value)}


def _continuous_test(values: np.ndarray, part: pd.DataFrame, settings: DriftSettings) -> dict:
    levels, quantiles = _ref_quantiles(part)
    std = float(part[part["entry"] == "std"]["value"].iloc[0]) or 1.0
    if settings.method == "psi":
        edges = np.unique(np.interp(np.linspace(0, 1, N_PSI_BINS + 1), levels, quantiles))
        edges[0], edges[-1] = -np.inf, np.inf
        ref_share = np.diff(np.interp(edges, quantiles, levels, left=0, right=1))
        cur_share = np.histogram(values, bins=edges)[0] / max(len(values), 1)
        value = _psi(ref_share, cur_share)
        return {"test": "psi", "statistic": value, "p_value": np.nan, "threshold": settings.psi_threshold,
                "drifted": value > settings.psi_threshold}
    if len(values) <= settings.small_sample and part["kind"].iloc[0] == "discrete":
        bins = part[part["entry"] == "bin"]
        edges = bins["key"].astype(float).to_numpy()
        return _chi_square(bins["value"].to_numpy(), _bin_shares(values, edges), settings)
    if len(values) <= settings.small_sample:
        # one-sample KS against the reference distribution, given by its quantile function
        # with ties (a value holding many quantiles), P(X <= x) is the last level at which the quantile is x
        last = len(quantiles) - 1 - np.unique(quantiles[::-1], return_index=True)[1]
        unique_q = quantiles[last]
        cdf = lambda x: np.interp(x, unique_q, levels[last], left=0.0, right=1.0)  # noqa: E731
        res = stats.kstest(values, cdf)
        return {"test": "ks", "statistic": float(res.statistic), "p_value": float(res.pvalue),
                "threshold": settings.p_value, "drifted": bool(res.pvalue < settings.p_value)}
    cur_q = np.quantile(values, levels)
    distance = float(np.mean(np.abs(cur_q - quantiles)) / std)  # W1 through the quantile functions, normed
    return {"test": "wasserstein", "statistic": distance, "p_value": np.nan,
            "threshold": settings.wasserstein_threshold, "drifted": distance > settings.wasserstein_threshold}


def _categorical_test(values: pd.Series, part: pd.DataFrame, settings: DriftSettings) -> dict:
    ref = part[part["entry"] == "category"].set_index("key")["value"]
    cur = values.astype(str).value_counts()
    cats = ref.index.union(cur.index)
    ref_share = ref.reindex(cats, fill_value=0.0).to_numpy()
    cur_count = cur.reindex(cats, fill_value=0).to_numpy(dtype=float)
    new = sorted(set(cur.index) - set(ref.index))
    out: dict = {"new_categories": ", ".join(new[:20])}
    if settings.method == "psi":
        value = _psi(ref_share, cur_count / max(cur_count.sum(), 1))
        return {**out, "test": "psi", "statistic": value, "p_value": np.nan, "threshold": settings.psi_threshold,
                "drifted": value > settings.psi_threshold}
    if cur_count.sum() <= settings.small_sample:
        return {**out, **_chi_square(ref_share, cur_count, settings)}
    distance = float(jensenshannon(ref_share, cur_count / cur_count.sum(), base=2))
    return {**out, "test": "jensen_shannon", "statistic": distance, "p_value": np.nan,
            "threshold": settings.jensen_shannon_threshold, "drifted": distance > settings.jensen_shannon_threshold}


def detect_drift(profile: pd.DataFrame, df: pd.DataFrame, settings: DriftSettings,
                 scores: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """Test each profiled feature (and the scores, when given) of ``df`` against the reference.

    Returns:
        ``(report, summary)``: one row per feature (feature, kind, test, statistic, p_value, threshold,
        drifted, missing rates, new categories), drifted first; and the dataset-level verdict
        (``drifted_features``, ``share``, ``dataset_drift``, ``prediction_drift``).
    """
    rows = []
    for feature in profile["feature"].unique():
        kind, part = _profile_of(profile, feature)
        if feature == PREDICTION:
            if scores is None:
                continue
            s = pd.Series(scores)
        elif feature.endswith(TEXT_LENGTH) and feature.removesuffix(TEXT_LENGTH) in df.columns:
            s = _text_length(df[feature.removesuffix(TEXT_LENGTH)])
        elif feature not in df.columns:
            rows.append({"feature": feature, "kind": kind, "test": "missing_column", "statistic": np.nan,
                         "p_value": np.nan, "threshold": np.nan, "drifted": True, "rows": 0})
            continue
        else:
            s = df[feature]
        ref_missing = float(part[part["entry"] == "missing_rate"]["value"].iloc[0])
        present = s.dropna()
        if present.empty:
            result = {"test": "all_missing", "statistic": np.nan, "p_value": np.nan, "threshold": np.nan,
                      "drifted": True}
        elif kind in ("continuous", "discrete"):
            result = _continuous_test(present.to_numpy(dtype=float), part, settings)
        else:
            result = _categorical_test(present, part, settings)
        cur_missing = float(s.isna().mean())
        rows.append({"feature": feature, "kind": kind, **result, "rows": int(len(s)),
                     "reference_missing_rate": ref_missing, "missing_rate": cur_missing,
                     "missing_rate_changed": abs(cur_missing - ref_missing) > settings.missing_rate_change})
    report = pd.DataFrame(rows)
    if "new_categories" not in report:
        report["new_categories"] = ""
    report["new_categories"] = report["new_categories"].fillna("")
    report = report.sort_values(["drifted", "feature"], ascending=[False, True], ignore_index=True)
    features = report[report["feature"] != PREDICTION]
    share = float(features["drifted"].mean()) if len(features) else 0.0
    pred = report[report["feature"] == PREDICTION]
    summary = {"features": int(len(features)), "drifted_features": int(features["drifted"].sum()), "share": share,
               "dataset_drift": share >= settings.dataset_drift_share,
               "prediction_drift": bool(pred["drifted"].iloc[0]) if len(pred) else None}
    return report, summary


def drift_scores(pipeline: Pipeline, schema: DatasetSchema, df: pd.DataFrame) -> np.ndarray:
    """What prediction drift watches: the positive-class probability (binary), the predicted class
    (multiclass) or the prediction (regression)."""
    x = as_model_input(df, schema)
    if schema.task == "regression":
        return np.asarray(pipeline.predict(x), dtype=float)
    proba = pipeline.predict_proba(x)
    classes = np.asarray(pipeline.classes_).astype(str)
    if schema.task == "binary":
        return proba[:, positive_index(classes, schema.positive_class)]
    return classes[np.argmax(proba, axis=1)].astype(object)


@task(name="profile", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def profile(store_root: str, run_id: str, schema: DatasetSchema, splits: dict[str, ArtifactRef],
            model: ArtifactRef) -> ArtifactRef:
    """Prefect task: write ``drift/reference_profile``: the training rows' features and the model's scores
    on the validation rows (what it will see in production: rows it was not fitted on).

    Returns:
        Reference to the profile table.
    """
    store = ArtifactStore(store_root)
    pipeline, _ = load_bundle(store.read_bundle(model))
    scores = drift_scores(pipeline, schema, store.read_table(splits["validation"]))
    table = build_profile(store.read_table(splits["train"]), schema, scores)
    return store.put(run_id, REFERENCE_PROFILE, table)


def performance_drift(schema: DatasetSchema, y: np.ndarray, predictions: pd.DataFrame, reference: dict[str, float],
                      max_drop: float) -> list[dict]:
    """Rows for the drift report comparing metrics on labelled new rows with the model's test metrics."""
    from trainflow.metrics import score

    proba_cols = [c for c in predictions.columns if c.startswith("proba_")]
    if schema.task == "regression":
        scores, classes = predictions["prediction"].to_numpy(dtype=float), None
        y = np.asarray(y, dtype=float)
    else:
        scores, classes = predictions[proba_cols].to_numpy(), np.asarray([c[len("proba_"):] for c in proba_cols])
        y = np.asarray(y).astype(str)
    current = score(schema.task, y, scores, classes, schema.positive_class)
    rows = []
    for metric in ("roc_auc", "accuracy", "f1_macro", "rmse", "r2"):
        if metric in current and metric in reference:
            higher = DIRECTION[metric]
            drop = (reference[metric] - current[metric]) if higher else (current[metric] - reference[metric])
            if metric == "rmse":
                drop = drop / max(abs(reference[metric]), EPS)  # relative for an error in label units
            # the statistic of a metric_drop row is the drop (relative for RMSE), against the threshold beside
            # it; the batch's own score and the model's test score are columns of their own
            rows.append({"feature": f"performance:{metric}", "kind": "performance", "test": "metric_drop",
                         "statistic": float(drop), "p_value": np.nan, "threshold": float(max_drop),
                         "drifted": bool(drop > max_drop), "rows": int(len(y)),
                         "current_value": float(current[metric]), "reference_value": float(reference[metric])})
    return rows


def drift_figures(profile: pd.DataFrame, df: pd.DataFrame, report: pd.DataFrame, top: int = 4) -> dict:
    """Histograms of the most drifted features against the reference (matplotlib figures by name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    drifted = report[report["drifted"] & report["feature"].isin(df.columns)].head(top)
    for feature in drifted["feature"]:
        kind, part = _profile_of(profile, feature)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if kind == "categorical":
            ref = part[part["entry"] == "category"].set_index("key")["value"]
            cur = df[feature].dropna().astype(str).value_counts(normalize=True)
            cats = list(ref.sort_values(ascending=False).index[:15].union(cur.index[:15]))
            x = np.arange(len(cats))
            ax.bar(x - 0.2, ref.reindex(cats, fill_value=0), 0.4, label="reference")
            ax.bar(x + 0.2, cur.reindex(cats, fill_value=0), 0.4, label="current")
            ax.set_xticks(x, cats, rotation=60, ha="right", fontsize=7)
        else:
            levels, quantiles = _ref_quantiles(part)
            current = df[feature].dropna().to_numpy(dtype=float)
            lo, hi = min(quantiles[0], current.min(initial=quantiles[0])), max(quantiles[-1], current.max(initial=0))
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 31)  # equal widths: heights compare directly
            ref_share = np.diff(np.interp(edges, quantiles, levels, left=0, right=1))
            cur_share = np.histogram(df[feature].dropna(), bins=edges)[0] / max(df[feature].notna().sum(), 1)
            ax.stairs(ref_share, edges, label="reference", fill=True, alpha=0.5)
            ax.stairs(cur_share, edges, label="current", lw=2)
        ax.set(title=f"{feature}: drifted", ylabel="share of rows")
        ax.legend(fontsize=8)
        figs[f"drift_{re.sub(r'[^A-Za-z0-9_.-]', '_', feature)}"] = fig
    return figs


class MonitorSettings(DriftSettings):
    """Drift tests, plus the performance drop that counts as drift when labels arrive."""

    max_metric_drop: float = Field(0.05, ge=0, description="performance drift when a metric falls by more than "
                                                           "this (relative for rmse) below the model's test metric")


@task(name="monitor_drift")
def monitor_drift(store_root: str, run_id: str, schema: DatasetSchema, source: str | None, query: str | None,
                  predictions: ArtifactRef, model_name: str, model_version: int, registry_url: str | None,
                  settings: MonitorSettings) -> dict:
    """Prefect task: drift of a scored batch against the model version's reference profile.

    Writes ``drift/drift_report`` (feature, kind, test, statistic, p-value, threshold, drifted, missing rates,
    new categories; drifted first), ``drift/drift_summary`` and PNG histograms of the most drifted features,
    and publishes a markdown and a table artifact.

    Returns:
        The dataset-level summary (drifted features, share, dataset, prediction and performance drift).
    """
    from trainflow.sources import normalise, read_source
    from trainflow.registry import Registry

    store = ArtifactStore(store_root)
    registry = Registry(registry_url, must_exist=True)
    try:
        reference = registry.load_profile(model_name, model_version)
        version_metrics = registry.version_info(model_name, model_version)["metrics"]
    finally:
        registry.close()
    preds = store.read_table(predictions)
    rows = normalise(read_source(source or schema.source, schema.name, query), schema.missing_markers)
    id_col = schema.role_column("id")
    rows = rows.set_index(id_col, drop=False) if id_col else rows
    rows = rows.loc[preds["row_id"].to_numpy()]
    scores = (preds[[c for c in preds.columns if c == f"proba_{schema.positive_class}"]].iloc[:, 0].to_numpy()
              if schema.task == "binary" else preds["prediction"].to_numpy())
    report, summary = detect_drift(reference, rows, settings, scores)
    summary["performance_drift"] = None
    if schema.label in rows.columns and rows[schema.label].notna().all():
        perf = performance_drift(schema, rows[schema.label].to_numpy(), preds, version_metrics,
                                 settings.max_metric_drop)
        summary["performance_drift"] = any(r["drifted"] for r in perf)
        report = pd.concat([pd.DataFrame(perf), report], ignore_index=True)
        report = report.sort_values("drifted", ascending=False, kind="stable", ignore_index=True)
    summary.update({"model_name": model_name, "model_version": model_version, "rows": int(len(rows))})
    run_logger().info("drift: %d of %d features drifted (%.0f%%) on %d rows against %s v%s; dataset drift %s, "
                      "prediction drift %s, performance drift %s", summary["drifted_features"], summary["features"],
                      100 * summary["share"], len(rows), model_name, model_version, summary["dataset_drift"],
                      summary["prediction_drift"], summary["performance_drift"])
    refs = {"drift_report": store.put(run_id, DRIFT_REPORT, report),
            "drift_summary": store.put(run_id, DRIFT_SUMMARY, pd.DataFrame([summary]))}
    for name, fig in drift_figures(reference, rows, report).items():
        refs[name] = store.put(run_id, DRIFT_PLOT.of(plot=name), fig)
    columns = ["feature", "test", "statistic", "p_value", "threshold", "drifted", "new_categories"]
    rows_shown = table_rows(report.reindex(columns=columns))
    lines = [f"# Drift of run `{run_id}` against {model_name} v{model_version}", "",
             f"{summary['drifted_features']} of {summary['features']} features drifted ({summary['share']:.0%}); "
             f"dataset drift: **{summary['dataset_drift']}**; prediction drift: **{summary['prediction_drift']}**; "
             f"performance drift: **{summary['performance_drift']}**.", "",
             "| feature | test | statistic | p-value | threshold | drifted | new categories |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['feature']} | {r['test']} | {r['statistic']} | {r['p_value']} | {r['threshold']} | "
              f"{'**yes**' if r['drifted'] else 'no'} | {r['new_categories']} |" for r in rows_shown]
    plots = {k: v for k, v in refs.items() if k.startswith("drift_") and v.kind == "file"}
    lines += [""] + [f"{embedded_png(store.read_file(v), k)}\n\n`{store.uri(v)}`\n" for k, v in plots.items()]
    key = f"drift-{schema.name}"
    publish("markdown", "\n".join(lines), key, f"Drift report of run {run_id}", on_flow_run=True)
    publish("table", rows_shown, f"{key}-table", f"Drift tests of run {run_id}")
    return {**summary, "report_path": store.uri(refs["drift_report"])}
