"""Evaluate: how good the chosen model is, where it fails, and for whom.

On the test split, which nothing before this stage has seen: the task's metrics, confusion matrix,
ROC and PR curves (Parquet points and PNG plots), error analysis (the rows with the largest loss),
metrics per slice of every categorical feature and sensitive attribute with the largest gap between
groups, and feature importance (permutation on raw columns, plus the model's own). The cross-validated
metrics are those of the folds on which train chose the model when it chose by cross-validation; otherwise
k-fold cross-validation here refits the whole pipeline, preprocessing included, on the training and
validation rows, so no fold's statistics leak into another.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from pydantic import Field
from sklearn import metrics as skm
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from trainflow.catalog.artifacts import EVALUATION, EVALUATION_PLOT
from trainflow.folds import cv_folds
from trainflow.cache import CONTENT
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.features import as_model_input, build_preprocessor, encoder_for, TransformSettings
from trainflow.forms import FormModel
from trainflow.metrics import (DIRECTION, decide, headline, label_values, positive_index, predict_scores, score,
                               threshold_of)
from trainflow.models.bundle import load_bundle
from trainflow.models.networks import NETWORKS
from trainflow.models.fit import build_estimator
from trainflow.models.settings import TrainSettings
from trainflow.progress import progress, run_logger
from trainflow.schema import DatasetSchema
from trainflow.threads import fit_threads, limited

MIN_SLICE_ROWS = 30
MIN_IMPORTANCE_SECONDS = 5.0  # permutation importance may run this long past the time limit's end
MIN_SLICE_POSITIVES = 10  # per-group recall, precision, F1s and ROC-AUC with fewer positives are noise
POSITIVE_METRICS = ("recall", "precision", "f1", "f1_macro", "roc_auc")


class EvaluateSettings(FormModel):
    """What evaluation computes."""

    cv_folds: int = Field(5, ge=0, description="k for k-fold cross-validation on train+validation (0: skip); when "
                                               "train chose the model by cross-validation, its folds are reported "
                                               "and nothing is refitted")
    top_errors: int = Field(50, ge=0, description="test rows with the largest loss kept for error analysis")
    permutation_repeats: int = Field(3, ge=0, description="repeats for permutation importance (0: skip)")
    permutation_rows: int = Field(2500, ge=0, description="test rows each permutation-importance repeat draws (its "
                                                          "own draw per repeat; 0: all rows): the ranking is as "
                                                          "clear at a few thousand rows, and each repeat scores "
                                                          "the whole pipeline once per column")
    slice_numeric_bins: int = Field(4, ge=2, description="quantile bins for numeric sensitive attributes")
    plots: bool = Field(True, description="write PNG plots of the curves and importances")


def row_loss(schema: DatasetSchema, y: np.ndarray, scores: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """Per-row loss: log loss of the true class, or absolute error for regression."""
    if schema.task == "regression":
        return np.abs(y - scores)
    idx = pd.Index(np.asarray(classes).astype(str)).get_indexer(y)
    p = scores[np.arange(len(y)), np.clip(idx, 0, None)]
    return -np.log(np.clip(np.where(idx >= 0, p, 0.0), 1e-15, 1))


def curves(schema: DatasetSchema, y: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> pd.DataFrame:
    """ROC and PR curve points (one-vs-rest per class for multiclass)."""
    if schema.task == "regression":
        return pd.DataFrame(columns=["curve", "class", "x", "y", "threshold"])
    names = np.asarray(classes).astype(str)
    targets = [positive_index(names, schema.positive_class)] if len(names) == 2 else range(len(names))
    parts = []
    for k in targets:
        truth = (y == names[k]).astype(int)
        if truth.min() == truth.max():
            continue
        fpr, tpr, thr = skm.roc_curve(truth, scores[:, k])
        parts.append(pd.DataFrame({"curve": "roc", "class": names[k], "x": fpr, "y": tpr, "threshold": thr}))
        prec, rec, thr = skm.precision_recall_curve(truth, scores[:, k])
        parts.append(pd.DataFrame({"curve": "pr", "class": names[k], "x": rec, "y": prec,
                                   "threshold": np.append(thr, np.nan)}))
    out = pd.concat(parts, ignore_index=True)
    out["threshold"] = out["threshold"].replace([np.inf, -np.inf], np.nan)
    return out


def confusion(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> pd.DataFrame:
    """Confusion matrix in long form (actual, predicted, count)."""
    names = np.asarray(classes).astype(str)
    cm = skm.confusion_matrix(y, pred, labels=names)
    return pd.DataFrame([{"actual": a, "predicted": p, "count": int(cm[i, j])}
                         for i, a in enumerate(names) for j, p in enumerate(names)])


def slice_metrics(schema: DatasetSchema, test: pd.DataFrame, y: np.ndarray, scores: np.ndarray,
                  classes: np.ndarray | None, numeric_bins: int,
                  threshold: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics per group of each categorical feature and sensitive attribute, and the largest gaps (a binary
    model's decisions at its ``threshold``).

    Returns:
        ``(slices, gaps)``: one row per attribute and group; one row per attribute and metric with the
        best and worst group. Groups of fewer than MIN_SLICE_ROWS rows (or, for POSITIVE_METRICS, fewer than
        MIN_SLICE_POSITIVES actual positives) are reported but not ranked.
    """
    attributes = list(dict.fromkeys([*schema.sensitive, *schema.categorical_features]))
    keep = ("accuracy", "f1", "f1_macro", "recall", "precision", "roc_auc", "rmse", "mae", "r2")
    rows = []
    for attr in attributes:
        col = test[attr]
        if attr not in schema.categorical_features and pd.api.types.is_numeric_dtype(col):
            col = pd.qcut(col, q=numeric_bins, duplicates="drop").astype(str)
        groups = col.astype(object).where(col.notna(), "<missing>").astype(str).to_numpy()
        for g in pd.unique(groups):
            mask = groups == g
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a small group may hold one class; its metrics are then partial
                m = (score(schema.task, y[mask], scores[mask], classes, schema.positive_class, keep, threshold)
                     if mask.sum() > 1 else {})
            row = {"attribute": attr, "sensitive": attr in schema.sensitive, "group": g, "rows": int(mask.sum()),
                   "share": float(mask.mean())}
            if schema.task == "binary":
                k = positive_index(np.asarray(classes).astype(str), schema.positive_class)
                pos = np.asarray(classes).astype(str)[k]
                row["actual_positive_rate"] = float((y[mask] == pos).mean())
                row["positives"] = int((y[mask] == pos).sum())
                row["predicted_positive_rate"] = float((scores[mask][:, k] >= (threshold or 0.5)).mean())
            row.update(m)
            rows.append(row)
    slices = pd.DataFrame(rows)
    gap_columns = ["attribute", "sensitive", "metric", "max_group", "max_value", "min_group", "min_value", "gap"]
    if slices.empty:
        return slices, pd.DataFrame(columns=gap_columns)
    gaps = []
    metric_cols = [c for c in slices.columns if c in (*keep, "predicted_positive_rate")]
    for attr, part in slices[slices["rows"] >= MIN_SLICE_ROWS].groupby("attribute", sort=False):
        for metric in metric_cols:
            ranked = part
            if metric in POSITIVE_METRICS and "positives" in part:
                ranked = part[part["positives"] >= MIN_SLICE_POSITIVES]
            vals = ranked[["group", metric]].dropna()
            if len(vals) < 2:
                continue
            hi, lo = vals.loc[vals[metric].idxmax()], vals.loc[vals[metric].idxmin()]
            gaps.append({"attribute": attr, "sensitive": attr in schema.sensitive, "metric": metric,
                         "max_group": hi["group"], "max_value": hi[metric], "min_group": lo["group"],
                         "min_value": lo[metric], "gap": hi[metric] - lo[metric]})
    return slices, pd.DataFrame(gaps, columns=gap_columns)


def cross_validate(schema: DatasetSchema, data: pd.DataFrame, meta: dict, transform_settings: TransformSettings,
                   train_settings: TrainSettings, folds: int, seed: int,
                   deadline: float | None = None) -> pd.DataFrame:
    """k-fold CV of the chosen family with its chosen settings; the whole pipeline is refitted per fold.

    With a ``deadline`` (``time.time()``, the run's time limit) a fold starts only when the last one's time
    still fits before it: the folds done are reported (none below two: one fold has no spread), and the log
    says how many were cut."""
    y = label_values(data, schema)
    x = as_model_input(data, schema)
    key = "max_epochs" if meta["family"] in NETWORKS else "n_estimators"
    overrides = {key: meta["best_iteration"]} if meta.get("best_iteration") else None
    rows, log, last = [], run_logger(), 0.0
    with progress(folds, f"{folds}-fold cross-validation") as bar:
        for fold, (tr, te) in enumerate(cv_folds(schema, data, folds, seed)):
            if deadline is not None and time.time() + last > deadline:
                done = "no fold" if fold == 0 else f"{fold} of {folds} folds" + (
                    " (too few to report)" if fold < 2 else "")
                log.warning("evaluate: cross-validation cut by the time limit: %s fit in it", done)
                if fold < 2:
                    rows = []
                break
            started = time.time()
            rows += _cv_fold(schema, meta, transform_settings, train_settings, seed, overrides, x, y, tr, te, fold)
            last = time.time() - started
            bar.advance(f"fold {fold + 1} ({last:.1f} s)")
    return pd.DataFrame(rows, columns=["fold", "metric", "value"])


def _cv_fold(schema: DatasetSchema, meta: dict, transform_settings: TransformSettings, train_settings: TrainSettings,
             seed: int, overrides: dict | None, x: pd.DataFrame, y: np.ndarray, tr: np.ndarray, te: np.ndarray,
             fold: int) -> list[dict]:
    """Fit a fresh pipeline on one fold's training rows and score its held-out rows."""
    pipe = Pipeline([
        ("preprocess", build_preprocessor(schema, transform_settings)),
        ("encode", encoder_for(schema, meta["encoding"])),
        ("model", build_estimator(meta["family"], schema.task, train_settings, seed, len(tr), overrides, schema)),
    ])
    if pipe.steps[1][1] != "passthrough":
        pipe.steps[1][1].set_output(transform="pandas")
    fit_params = {}
    if meta["encoding"] == "native":  # LightGBM's native categoricals
        fit_params["model__categorical_feature"] = schema.categorical_features
    with limited(fit_threads(train_settings.n_jobs)):
        pipe.fit(x.iloc[tr], y[tr], **fit_params)
    s = predict_scores(pipe, x.iloc[te], schema.task)
    m = score(schema.task, y[te], s, getattr(pipe, "classes_", None), schema.positive_class,
              threshold=threshold_of(meta))
    return [{"fold": fold, "metric": k, "value": v} for k, v in m.items()]


def feature_importance(schema: DatasetSchema, pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, metric: str,
                       repeats: int, seed: int, sample_rows: int = 0, deadline: float | None = None,
                       threshold: float | None = None) -> pd.DataFrame:
    """Permutation importance on raw columns (the whole pipeline; ``sample_rows`` drawn per repeat, 0: all) and
    the model's own importances.

    With a ``deadline`` (the run's time limit) the repeats are those whose cost, timed on one scoring of the
    rows, fits in the time left (at least ``MIN_IMPORTANCE_SECONDS``); none fitting, only the model's own
    importances are kept, and the log says so."""
    rows = []
    if repeats and deadline is not None:
        drawn = x if not sample_rows or sample_rows >= len(x) else x.iloc[:sample_rows]
        started = time.time()
        predict_scores(pipeline, drawn, schema.task)
        per_repeat = (time.time() - started) * x.shape[1]
        fits = int(max(deadline - time.time(), MIN_IMPORTANCE_SECONDS) // max(per_repeat, 1e-9))
        if fits < repeats:
            run_logger().warning("evaluate: permutation importance %s by the time limit (a repeat over %d columns "
                                 "takes about %.1f s)", f"cut to {fits} of {repeats} repeats" if fits else
                                 "skipped", x.shape[1], per_repeat)
            repeats = fits
    if repeats:
        classes = getattr(pipeline, "classes_", None)

        def scorer(est: Pipeline, x_: pd.DataFrame, y_: np.ndarray) -> float:
            value = score(schema.task, y_, predict_scores(est, x_, schema.task), classes, schema.positive_class,
                          (metric,), threshold)[metric]
            return value if DIRECTION[metric] else -value

        share = 1.0 if not sample_rows or sample_rows >= len(x) else sample_rows / len(x)
        r = permutation_importance(pipeline, x, y, scoring=scorer, n_repeats=repeats, random_state=seed, n_jobs=1,
                                   max_samples=share)
        rows += [{"feature": f, "method": f"permutation_{metric}", "importance": float(m), "std": float(s)}
                 for f, m, s in zip(x.columns, r.importances_mean, r.importances_std)]
    model = pipeline.steps[-1][1]
    booster = getattr(model, "booster_", None)
    if booster is not None:
        gain = booster.feature_importance("gain")
        rows += [{"feature": f, "method": "lightgbm_gain", "importance": float(g), "std": np.nan}
                 for f, g in zip(booster.feature_name(), gain / max(gain.sum(), 1e-12))]
    elif hasattr(model, "feature_importances_"):
        names = getattr(model, "feature_names_in_", [f"f{i}" for i in range(len(model.feature_importances_))])
        rows += [{"feature": str(f), "method": "impurity", "importance": float(v), "std": np.nan}
                 for f, v in zip(names, model.feature_importances_)]
    elif hasattr(model, "coef_"):
        coef = np.abs(np.atleast_2d(model.coef_)).mean(axis=0)
        names = getattr(model, "feature_names_in_", [f"f{i}" for i in range(len(coef))])
        rows += [{"feature": str(f), "method": "abs_coefficient", "importance": float(v), "std": np.nan}
                 for f, v in zip(names, coef)]
    out = pd.DataFrame(rows, columns=["feature", "method", "importance", "std"])
    return out.sort_values(["method", "importance"], ascending=[True, False], ignore_index=True)


CONFUSION_COUNTS = 12  # classes up to which the confusion matrix's picture writes each count in its cell


def _plots(curve_df: pd.DataFrame, importance: pd.DataFrame, cm: pd.DataFrame) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    for kind, (xl, yl) in {"roc": ("false positive rate", "true positive rate"),
                           "pr": ("recall", "precision")}.items():
        part = curve_df[curve_df["curve"] == kind]
        if part.empty:
            continue
        fig, ax = plt.subplots(figsize=(5, 4))
        for cls, c in part.groupby("class"):
            ax.plot(c["x"], c["y"], label=str(cls))
        if kind == "roc":
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(xlabel=xl, ylabel=yl, title=f"{kind.upper()} curve (test)")
        ax.legend(loc="best", fontsize=8)
        figs[f"{kind}_curve"] = fig
    perm = importance[importance["method"].str.startswith("permutation")].head(15)
    if not perm.empty:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(perm) + 1))
        ax.barh(perm["feature"][::-1], perm["importance"][::-1], xerr=perm["std"][::-1])
        ax.set(xlabel=perm["method"].iloc[0], title="permutation importance (test)")
        figs["feature_importance"] = fig
    if not cm.empty:
        names = list(dict.fromkeys(cm["actual"]))
        mat = cm.pivot(index="actual", columns="predicted", values="count").loc[names, names].to_numpy()
        side = min(1.2 * len(names), 8.0)  # 32 classes at 1.2 inch each made a 360 KB picture
        fig, ax = plt.subplots(figsize=(side + 2, side + 1.5))
        ax.imshow(mat, cmap="Blues")
        if len(names) <= CONFUSION_COUNTS:
            for i in range(len(names)):
                for j in range(len(names)):
                    ax.text(j, i, str(mat[i, j]), ha="center", va="center")
        ax.set(xticks=range(len(names)), xticklabels=names, yticks=range(len(names)), yticklabels=names,
               xlabel="predicted", ylabel="actual", title="confusion matrix (test)")
        if len(names) > CONFUSION_COUNTS:
            ax.tick_params(labelsize=6)
            ax.tick_params(axis="x", labelrotation=90)
        figs["confusion_matrix"] = fig
    return figs


def evaluate_model(schema: DatasetSchema, pipeline: Pipeline, meta: dict, test: pd.DataFrame,
                   train_and_validation: pd.DataFrame, settings: EvaluateSettings,
                   transform_settings: TransformSettings, train_settings: TrainSettings,
                   seed: int, deadline: float | None = None) -> dict[str, Any]:
    """Everything the evaluate stage computes: the pure part of the stage.

    Args:
        schema: Dataset schema.
        pipeline: The serving pipeline as saved (preprocessing + model).
        meta: The model's metadata (family, encoding, best iteration...).
        test: Raw test rows.
        train_and_validation: Raw rows for cross-validation.
        settings: What to compute.
        transform_settings: For refitting the preprocessor inside CV folds.
        train_settings: For rebuilding the estimator inside CV folds.
        seed: Random seed.
        deadline: The run's time limit (``time.time()``) for the cross-validation refit (see
            ``cross_validate``) and the permutation importances (``feature_importance``); None: no limit.

    Returns:
        A dict of DataFrames (``metrics``, ``confusion_matrix``, ``curves``, ``cv``, ``errors``, ``slices``,
        ``slice_gaps``, ``feature_importance``) and ``figures`` (matplotlib figures by name).
    """
    x, y = as_model_input(test, schema), label_values(test, schema)
    scores = predict_scores(pipeline, x, schema.task)
    classes = getattr(pipeline, "classes_", None)
    threshold = threshold_of(meta)
    test_metrics = score(schema.task, y, scores, classes, schema.positive_class, threshold=threshold)
    rows = [{"split": "test", "metric": k, "class": None, "value": v} for k, v in test_metrics.items()]
    out: dict[str, Any] = {}
    if schema.is_classification:
        names = np.asarray(classes).astype(str)
        pred = decide(scores, names, schema.positive_class, threshold)
        if len(np.unique(pred)) == 1 and len(np.unique(y)) > 1:
            run_logger().warning("evaluate: %s predicts '%s' for every one of the %d test rows%s", meta["family"],
                                 pred[0], len(pred), "" if threshold is None else
                                 f" (decision threshold {threshold:.2f} on the positive class's probability)")
        p, r, f, n = skm.precision_recall_fscore_support(y, pred, labels=names, zero_division=0)
        for i, c in enumerate(names):
            rows += [{"split": "test", "metric": m, "class": c, "value": float(v[i])}
                     for m, v in (("precision", p), ("recall", r), ("f1", f), ("support", n))]
        out["confusion_matrix"] = confusion(y, pred, names)
        out["curves"] = curves(schema, y, scores, names)
    else:
        pred = scores
        out["confusion_matrix"] = pd.DataFrame(columns=["actual", "predicted", "count"])
        out["curves"] = curves(schema, y, scores, None)
    cv = pd.DataFrame(columns=["fold", "metric", "value"])
    chosen_on = len({r["fold"] for r in meta.get("cv") or []})  # the folds on which train chose this family
    if settings.cv_folds >= 2 and chosen_on and (chosen_on == settings.cv_folds or meta["family"] == "ensemble"):
        if chosen_on != settings.cv_folds:  # an ensemble is made of out-of-fold predictions: never refitted here
            run_logger().warning("evaluate: the ensemble is not refitted fold by fold; its %d-fold CV from train is "
                                 "reported instead of %d folds", chosen_on, settings.cv_folds)
        cv = pd.DataFrame(meta["cv"])
    elif settings.cv_folds >= 2:
        cv = cross_validate(schema, train_and_validation, meta, transform_settings, train_settings,
                            settings.cv_folds, seed, deadline)
    for metric, vals in cv.groupby("metric")["value"]:
        rows += [{"split": "cv", "metric": metric, "class": None, "value": float(vals.mean())},
                 {"split": "cv_std", "metric": metric, "class": None, "value": float(vals.std(ddof=1))}]
    out["metrics"] = pd.DataFrame(rows)
    out["cv"] = cv
    loss = row_loss(schema, y, scores, classes)
    errors = test.copy()
    errors["prediction"] = pred
    if schema.is_classification:
        for i, c in enumerate(np.asarray(classes).astype(str)):
            errors[f"proba_{c}"] = scores[:, i]
    errors["loss"] = loss
    out["errors"] = errors.nlargest(settings.top_errors, "loss") if settings.top_errors else errors.iloc[:0]
    out["slices"], out["slice_gaps"] = slice_metrics(schema, test, y, scores, classes, settings.slice_numeric_bins,
                                                  threshold)
    out["feature_importance"] = feature_importance(schema, pipeline, x, y, meta["selection_metric"],
                                                   settings.permutation_repeats, seed, settings.permutation_rows,
                                                   deadline, threshold)
    out["figures"] = _plots(out["curves"], out["feature_importance"], out["confusion_matrix"]) if settings.plots else {}
    return out


@task(name="evaluate", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def evaluate(store_root: str, run_id: str, schema: DatasetSchema, model: ArtifactRef, splits: dict[str, ArtifactRef],
             settings: EvaluateSettings, transform_settings: TransformSettings, train_settings: TrainSettings,
             seed: int, candidates: dict[str, ArtifactRef] | None = None,
             deadline: float | None = None) -> dict[str, ArtifactRef]:
    """Prefect task: evaluate a model bundle on a test split; writes every table under ``evaluate/``.

    Works on any run's artifacts: pass another run's model and splits to re-evaluate without retraining.

    Args:
        candidates: The other families' bundles by family: scored on the same test rows into
            ``evaluate/test_leaderboard`` (the baselines a network is measured against).
        deadline: The run's time limit for a cross-validation refit (``time.time()``; None: none).

    Returns:
        References to every table and plot written, by name.
    """
    store = ArtifactStore(store_root)
    pipeline, meta = load_bundle(store.read_bundle(model))
    tv = pd.concat([store.read_table(splits["train"]), store.read_table(splits["validation"])])
    test = store.read_table(splits["test"])
    result = evaluate_model(schema, pipeline, meta, test, tv, settings, transform_settings, train_settings, seed,
                            deadline)
    others = {family: load_bundle(store.read_bundle(ref)) for family, ref in (candidates or {}).items()}
    m = result["metrics"]
    selected = m[(m["split"] == "test") & m["class"].isna()].set_index("metric")["value"].to_dict()  # scored once
    result["test_leaderboard"] = test_leaderboard(schema, others, test, meta["selection_metric"], meta["family"],
                                                  selected)
    # a plot's key is not its table's: the confusion matrix and the importances are both
    refs = {f"{name}_plot": store.put(run_id, EVALUATION_PLOT.of(plot=name), fig)
            for name, fig in result.pop("figures").items()}
    refs.update({name: store.put(run_id, EVALUATION.of(table=name), df) for name, df in result.items()})
    run_logger().info("evaluate: %s on %d test rows: %s", meta["family"], len(test),
                      ", ".join(f"{k} {v:.4f}" for k, v in headline(m, schema.task).items()))
    return refs


def test_leaderboard(schema: DatasetSchema, others: dict[str, tuple[Pipeline, dict]], test: pd.DataFrame,
                     metric: str, selected: str, selected_metrics: dict[str, float]) -> pd.DataFrame:
    """Every family's test metrics, best first by the selection metric (reported, never used to choose).

    Args:
        others: The other families' pipelines and metadata (their decision thresholds), scored here on ``test``.
        selected: The selected family, whose test metrics ``evaluate_model`` already computed.
    """
    x, y = as_model_input(test, schema), label_values(test, schema)
    scored = {selected: selected_metrics}
    for family, (pipe, meta) in others.items():
        scored[family] = score(schema.task, y, predict_scores(pipe, x, schema.task), getattr(pipe, "classes_", None),
                               schema.positive_class, threshold=threshold_of(meta))
    rows = [{"family": family, "selected": family == selected, "metric": metric,
             "test_score": m.get(metric, np.nan), "test_metrics": json.dumps(m)} for family, m in scored.items()]
    board = pd.DataFrame(rows).sort_values("test_score", ascending=not DIRECTION.get(metric, True), ignore_index=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    return board


__all__ = ["EvaluateSettings", "evaluate", "evaluate_model"]
