"""Train: fit each requested model family, compare them, keep the best.

The families live in ``trainflow.models`` (classic, baselines, networks). For tabular data the families are
compared by k-fold cross-validation over the training and validation rows (the folds tuning and evaluate use):
each family's out-of-fold predictions are scored together, LightGBM early-stops in each fold, and every
family is then refitted on all those rows (LightGBM with the folds' mean best round, a network with their
mean best epoch; with ``train.bag`` LightGBM is served as the average of its fold models instead). Otherwise
(``train.cv_folds`` 0; images, text and series by default) each family is fitted on the training split and
compared on the validation split. Every family gets the same fitted preprocessor;
the winner is saved with it as one serving Pipeline (skops, LightGBM's own text format, safetensors), and
every other candidate beside it so that evaluate can score all of them on the test split.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from sklearn.pipeline import Pipeline

from trainflow.cache import CONTENT
from trainflow.budget import FitClock, weighted_deadline
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import (CANDIDATE, LEADERBOARD, LOSS_CURVES_PLOT, MODEL, OOF_PREDICTIONS,
                                         TRAINING_HISTORY)
from trainflow.device import detect_accelerator
from trainflow.errors import TrainflowError
from trainflow.features import TransformSettings
from trainflow.folds import cv_folds, fold_features, rows_of
from trainflow.forms import is_on
from trainflow.metrics import DEFAULT_METRIC, DIRECTION, choose_threshold, decision_metric, positive_index, score
from trainflow.modelio import load_skops
from trainflow.models.bundle import bundle_files
from trainflow.models.families import FAMILIES
from trainflow.models.settings import TrainSettings, families_for, selection_folds
from trainflow.models.fit import fit_family, library_versions
from trainflow.models.networks import nn_settings_for
from trainflow.progress import progress, run_logger
from trainflow.registry import load_model
from trainflow.schema import DatasetSchema


TAIL_SHARE = 0.1  # of train's time, kept from the families for the ensemble and the saving after them


def train_models(schema: DatasetSchema, train: pd.DataFrame, validation: pd.DataFrame, preprocessor: Any,
                 transform_settings: TransformSettings, settings: TrainSettings, seed: int,
                 checkpoint_dir: str | None = None, init_weights: dict | None = None,
                 deadline: float | None = None,
                 rows: pd.DataFrame | None = None) -> tuple[Pipeline, dict, pd.DataFrame, pd.DataFrame]:
    """Train every family and keep the best, by cross-validation or on the validation split: the pure part of
    the train stage.

    Under a time limit (``deadline``) each family gets the time left weighted by its ``Family.cost`` against
    the families still to train (the first family at least what its rounds need at its own learning rate, up to
    ``ANCHOR_SHARE`` of the time: ``anchor_seconds``); its folds share that equally with its refit. Before the
    first family each boosted family's rounds are timed (``probe_rounds``), and one whose rounds would not fit
    even at the highest learning rate is dropped up front (``boosted_plan``), its time going to the others. Boosting and networks stop at a
    fit's deadline with their best round or epoch so far, a forest grows the trees that fit; a family that
    cannot be stopped mid-fit is dropped when its first fold shows it would overrun its share by half; once
    the limit is reached the remaining families are skipped (never the first). The leaderboard's ``budget``
    column says what was cut.

    Args:
        schema: Dataset schema (for a series, its ``model_view``).
        train: Training features (from transform) with the label column.
        validation: Validation features with the label column.
        preprocessor: The fitted preprocessor, the first step of the saved Pipeline.
        transform_settings: Gives the categorical encoding.
        settings: Families and their settings.
        seed: Random seed.
        checkpoint_dir: Where networks checkpoint each epoch (None: no checkpoints).
        init_weights: A state dict the networks start from (transfer learning).
        deadline: When training must end (``time.time()``); None: no limit.
        rows: The raw training and validation rows behind ``train`` and ``validation`` (in that order): with
            ``transform_settings.in_folds`` each cross-validation fold fits its own preprocessor on its training
            rows (``tasks.transform.fold_features``); None: the folds use ``train`` and ``validation`` as given.

    Returns:
        ``(serving pipeline, metadata, leaderboard, history)``; ``metadata["candidates"]`` holds the
        serving pipeline of every other family, for scoring on the test split, and in CV mode
        ``metadata["oof"]`` the out-of-fold predictions of every family (a DataFrame).

    Raises:
        TrainflowError: No family given, an unknown family, or an unknown selection metric.
    """
    families = families_for(schema, settings)
    if not families:
        raise TrainflowError("no model family to train: settings.train.families is empty")
    metric = settings.selection_metric or DEFAULT_METRIC[schema.task]
    if metric not in DIRECTION:
        raise TrainflowError(f"unknown selection metric '{metric}' (known: {', '.join(DIRECTION)})")
    accel = detect_accelerator()
    k = selection_folds(schema, settings)
    data = pd.concat([train, validation], ignore_index=True) if k >= 2 else None
    folds = _folds(schema, data, k, seed) if data is not None else None
    fold_data = None
    if folds is not None and rows is not None and transform_settings.in_folds:
        fold_data = fold_features(rows, folds, schema, transform_settings)
    fitted, rows, histories, oof_parts = {}, [], [], []
    singles = [f for f in families if f != "ensemble"]
    if not singles:
        raise TrainflowError("the ensemble family needs at least one other family to train")
    log = run_logger()
    if deadline is not None:  # the ensemble's selection and the bundles' writing come after the families
        deadline -= TAIL_SHARE * max(0.0, deadline - time.time())
    costs, dropped, anchor = {}, {}, 0.0
    if deadline is not None and folds is not None and len(singles) > 1 and deadline > time.time():
        first = fold_data[0][0] if fold_data else data.iloc[folds[0][0]]
        costs = {f: probe_rounds(f, schema, first, transform_settings, settings, seed)
                 for f in singles if FAMILIES[f].boosted}
        fits = len(folds) + (0 if is_on(settings.bag) else 1)
        left = max(0.0, deadline - time.time())
        anchor = anchor_seconds(singles[0], costs, left, fits)
        dropped = (boosted_plan(costs, singles[1:], left - anchor, fits) if anchor
                   else boosted_plan(costs, singles, left, fits))
    with progress(len(singles), "training") as bar:
        for i, family in enumerate(singles):
            started = time.time()
            share = weighted_deadline(deadline, FAMILIES[family].cost,
                                      sum(FAMILIES[f].cost for f in singles[i:] if f not in dropped))
            if i == 0 and anchor and share is not None:
                share = max(share, started + anchor)
            try:
                if family in dropped:
                    raise OverBudget(dropped[family])
                if fitted and deadline is not None and started >= deadline:  # the first family always trains
                    raise OverBudget("skipped: over budget (the time limit was reached)")
                log.info("train: %s started (%s%s)", family, f"{k}-fold CV" if folds else "fit on the training split",
                         "" if share is None else f"; its share of the time limit {share - started:.0f} s")
                if folds is None:
                    clock = FitClock(share, f"train: {family}")
                    pipe, info, hist = fit_family(family, schema, train, validation, transform_settings, settings,
                                                  seed, checkpoint_dir, init_weights, clock=clock)
                    info["selected_on"], info["score_std"] = "validation split", np.nan
                    info["budget"] = _cut_note(family, [info.get("stopped_by_time_limit")], None)
                else:
                    pipe, info, hist, oof = cross_validate_family(family, schema, data, folds, transform_settings,
                                                                  settings, metric, seed, checkpoint_dir,
                                                                  init_weights, share, may_skip=bool(fitted),
                                                                  fold_data=fold_data, cost=costs.get(family))
                    oof_parts.append(oof)
            except OverBudget as exc:
                rows.append(_skipped_row(family, metric, accel, str(exc), time.time() - started))
                log.warning("train: %s %s", family, exc)
                bar.advance(f"{family} skipped (time limit)")
                continue
            fitted[family] = (pipe, info)
            histories.append(hist)
            rows.append({"family": family, "estimator": info["estimator"], "encoding": info["encoding"],
                         "metric": metric, "score": info["metrics"].get(metric, np.nan),
                         "score_std": info["score_std"], "selected_on": info["selected_on"],
                         "fit_seconds": info["fit_seconds"], "predict_seconds": info["predict_seconds"],
                         "best_iteration": info["best_iteration"], "n_train": info["n_train"],
                         "device": info["device"], "accelerator_present": accel["device"],
                         "metrics": json.dumps(info["metrics"]), "params": json.dumps(info["params"], default=str),
                         "budget": info.get("budget", "")})
            log.info("train: %s done: %s %.4f on %s, %.1f s%s", family, metric, rows[-1]["score"],
                     info["selected_on"], time.time() - started, f" ({info['budget']})" if info.get("budget") else "")
            bar.advance(family)
    if "ensemble" in families and oof_parts:
        started = time.perf_counter()
        ensemble, info, row = ensemble_of(schema, fitted, pd.concat(oof_parts, ignore_index=True), data, metric)
        row.update(fit_seconds=sum(i["fit_seconds"] for _, i in fitted.values()) + time.perf_counter() - started,
                   accelerator_present=accel["device"], budget="")
        if len(info["params"]["weights"]) > 1:
            fitted["ensemble"] = (ensemble, info)
        else:  # one member alone is that member, not a model of its own: its row has the member's score
            alone = next(iter(info["params"]["weights"]))
            member = next(r for r in rows if r["family"] == alone)
            row.update(score=member["score"], score_std=member["score_std"], metrics=member["metrics"],
                       selected_on=f"{member['selected_on']} (the ensemble is {alone} alone)")
        rows.append(row)  # listed after its members: a tie goes to the member
    elif "ensemble" in families:
        run_logger().warning("train: no ensemble: it is made from out-of-fold predictions, and train.cv_folds is "
                             "%d (set it to 2 or more)", k)
    if is_on(settings.bag) and folds is None and any(FAMILIES[f].boosted for f in singles):
        run_logger().warning("train: LightGBM not bagged: its fold models come from cross-validation, and "
                             "train.cv_folds is %d (set it to 2 or more)", k)
    board = pd.DataFrame(rows).sort_values("score", ascending=not DIRECTION[metric], na_position="last",
                                           kind="stable", ignore_index=True)  # stable: a tie goes to the first
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    best = next(f for f in board["family"] if f in fitted)  # an ensemble of one member is that member
    board["selected"] = board["family"] == best
    pipe, info = fitted[best]
    decisions = {f: decision_of(schema, settings, metric, *_selection_predictions(schema, f, p, i, oof_parts, data,
                                                                               validation), say=f == best)
                 for f, (p, i) in fitted.items()}
    serving = Pipeline([("preprocess", preprocessor), *pipe.steps])
    meta = {"family": best, "task": schema.task, "label": schema.label, "dataset": schema.name,
            "features": [c.name for c in schema.features], "positive_class": schema.positive_class,
            "selection_metric": metric, "selected_on": info["selected_on"],
            "validation_metrics": info["metrics"],  # of the selection: out-of-fold in CV, else the validation split
            "best_iteration": info["best_iteration"],
            "params": info["params"], "encoding": info["encoding"], "seed": seed, "device": info["device"],
            "accelerator": accel, "versions": library_versions()}
    if decisions[best] is not None:
        meta["decision"] = decisions[best]
    for key in ("transferred_tensors", "precision", "cv"):
        if key in info:
            meta[key] = info[key]
    meta["candidates"] = {f: Pipeline([("preprocess", preprocessor), *p.steps]) for f, (p, _) in fitted.items()
                          if f != best}
    meta["candidate_decisions"] = {f: d for f, d in decisions.items() if f != best and d is not None}
    if oof_parts:
        meta["oof"] = pd.concat(oof_parts, ignore_index=True)
    return serving, meta, board, pd.concat(histories, ignore_index=True)


def _selection_predictions(schema: DatasetSchema, family: str, pipe: Pipeline, info: dict,
                           oof_parts: list[pd.DataFrame], data: pd.DataFrame | None,
                           validation: pd.DataFrame) -> tuple:
    """``(true labels, class probabilities, classes, where)`` of the predictions the winner was chosen on: its
    out-of-fold ones (the ensemble's: its held-out blend), else its validation split's; all None for regression
    or when there are none."""
    if schema.task == "regression":
        return None, None, None, None
    if "oof_blend" in info:
        rows, blend, classes = info["oof_blend"]
        return data[schema.label].to_numpy()[rows], blend, classes, "the ensemble's out-of-fold predictions"
    part = next((p for p in oof_parts if p["family"].iloc[0] == family), None) if oof_parts else None
    if part is not None:
        columns = [c for c in part.columns if c.startswith("proba_")]
        return (data[schema.label].to_numpy()[part["row"].to_numpy()], np.nan_to_num(part[columns].to_numpy()),
                np.array([c.removeprefix("proba_") for c in columns]), "out-of-fold predictions")
    if info.get("validation_scores") is not None:
        classes = np.asarray(getattr(pipe, "classes_", [])).astype(str)
        return validation[schema.label].to_numpy(), info["validation_scores"], classes, "the validation split"
    return None, None, None, None


def decision_of(schema: DatasetSchema, settings: TrainSettings, selection_metric: str, y: np.ndarray | None,
                proba: np.ndarray | None, classes: np.ndarray | None, where: str | None,
                say: bool = True) -> dict | None:
    """A binary model's decision: the threshold on its positive class's probability, chosen on the predictions
    it was selected on for ``train.decision_metric`` (see ``trainflow.metrics.decision_metric``), with the
    scores it gives there and at 0.5; None for other tasks. Logged with the positive class when ``say``."""
    if schema.task != "binary" or y is None or classes is None or len(classes) != 2:
        return None
    k = positive_index(classes, schema.positive_class)
    positive = str(classes[k])
    hit = (np.asarray(y).astype(str) == positive).astype(int)
    share = float(hit.mean())
    metric = decision_metric(settings.decision_metric, selection_metric, share)
    decision = {"threshold": 0.5, "metric": metric, "positive_class": positive, "positive_share": round(share, 6),
                "chosen_on": where}
    if metric is None:
        if say:
            run_logger().info("train: decision threshold 0.50 for the positive class '%s' (%.1f%% of the rows; "
                              "chosen anew only for rare positives or a decision metric, see train.decision_metric)",
                              positive, 100 * share)
        return {**decision, "chosen_on": "default"}
    threshold, value, at_half = choose_threshold(hit, proba[:, k], metric)
    decision.update(threshold=threshold, score=value, score_at_half=at_half)
    if say:
        run_logger().info("train: decision threshold %.2f for the positive class '%s' (%.1f%% of the rows): %s %.4f "
                          "on %s, %.4f at 0.5", threshold, positive, 100 * share, metric, value, where, at_half)
    return decision


def ensemble_of(schema: DatasetSchema, fitted: dict[str, tuple[Pipeline, dict]], oof: pd.DataFrame,
                data: pd.DataFrame, metric: str) -> tuple[Pipeline, dict, dict]:
    """The ``ensemble`` family: greedy forward selection (Caruana) over the families' out-of-fold predictions.

    Returns:
        ``(pipeline, info, leaderboard row)``: the ensemble of the refitted members as an encode+model
        pipeline (the encoding is each member's own), ``info`` as ``fit_family``'s with its out-of-fold
        metrics and per-fold metrics (``cv``), and its leaderboard row.
    """
    from trainflow.models.ensemble import greedy_weights, held_out_blend, weighted_ensemble

    label, regression = schema.label, schema.task == "regression"
    columns = [c for c in oof.columns if c == "prediction" or c.startswith("proba_")]
    first = oof[oof["family"] == next(iter(fitted))]
    rows, folds = first["row"].to_numpy(), first["fold"].to_numpy()
    y = data[label].to_numpy()[rows].astype(float if regression else str)
    classes = None if regression else np.array([c.removeprefix("proba_") for c in columns])
    preds = {}
    for family, part in oof.groupby("family", sort=False):
        values = part.set_index("row").loc[rows, columns].to_numpy()
        preds[family] = values[:, 0] if regression else np.nan_to_num(values)

    def scored(p: np.ndarray, mask: np.ndarray | slice = slice(None), only: tuple[str, ...] | None = None) -> dict:
        return score(schema.task, y[mask], p[mask], classes, schema.positive_class, only)

    def metric_on(mask: np.ndarray | slice) -> Callable[[np.ndarray], float]:  # of predictions for y[mask] only
        return lambda p: score(schema.task, y[mask], p, classes, schema.positive_class, (metric,))[metric]

    weights, own = greedy_weights(preds, metric_on(slice(None)), DIRECTION[metric])
    # its score is the blend of weights chosen on the other folds, fold by fold: the weights served, chosen on
    # all the rows, score `own` on them, which flatters the ensemble over its members
    blend = held_out_blend(preds, folds, metric_on, DIRECTION[metric])
    metrics = scored(blend)
    cv = [{"fold": int(f), "metric": m, "value": v} for f in np.unique(folds)
          for m, v in scored(blend, folds == f).items()]
    spread = [r["value"] for r in cv if r["metric"] == metric]
    names = list(weights)
    model = weighted_ensemble(regression, [fitted[f][0] for f in names], [weights[f] for f in names], names)
    selected_on = f"{len(spread)}-fold CV (weights chosen on the other folds)"
    info = {"family": "ensemble", "encoding": "per member", "estimator": type(model).__name__, "metrics": metrics,
            "device": "cpu", "best_iteration": None, "n_train": len(data), "selected_on": f"{len(spread)}-fold CV",
            "score_std": float(np.std(spread, ddof=1)) if len(spread) > 1 else np.nan, "cv": cv,
            "params": {"weights": weights}, "fit_seconds": 0.0, "oof_blend": (rows, blend, classes),
            "predict_seconds": sum(fitted[f][1]["predict_seconds"] for f in names)}
    row = {"family": "ensemble", "estimator": type(model).__name__, "encoding": "per member", "metric": metric,
           "score": metrics[metric], "score_std": info["score_std"], "selected_on": selected_on, "fit_seconds": 0.0,
           "predict_seconds": info["predict_seconds"], "best_iteration": None, "n_train": len(data), "device": "cpu",
           "metrics": json.dumps(metrics), "params": json.dumps(weights)}
    run_logger().info("train: ensemble %s: %s %.4f on held-out folds (%.4f on the rows its weights were chosen on)",
                      ", ".join(f"{f} {w:.2f}" for f, w in weights.items()), metric, metrics[metric], own)
    return Pipeline([("encode", "passthrough"), ("model", model)]), info, row


class OverBudget(Exception):
    """A family dropped by the time limit; the message is its leaderboard note."""


def _skipped_row(family: str, metric: str, accel: dict, note: str, seconds: float = 0.0) -> dict:
    """The leaderboard row of a family the time limit dropped: no score, the reason in ``budget``."""
    return {"family": family, "estimator": "", "encoding": "", "metric": metric, "score": np.nan,
            "score_std": np.nan, "selected_on": "", "fit_seconds": seconds, "predict_seconds": 0.0,
            "best_iteration": None, "n_train": 0, "device": "", "accelerator_present": accel["device"],
            "metrics": "{}", "params": "{}", "budget": note}


def _cut_note(family: str, fold_stops: list, refit_stop: int | None) -> str:
    """What the time limit cut of a family: ``rounds cut by the time limit in 2 of 5 folds and the refit``
    (trees for a forest, epochs for a network); empty when nothing was cut."""
    cut = sum(s is not None for s in fold_stops)
    if not cut and refit_stop is None:
        return ""
    unit = "epochs" if FAMILIES[family].network else "rounds" if FAMILIES[family].boosted else "trees"
    if unit == "trees":
        return f"trees cut by the time limit to {refit_stop if refit_stop is not None else max(fold_stops)}"
    where = [f"{cut} of {len(fold_stops)} folds" if len(fold_stops) > 1 else "its fit"] if cut else []
    where += ["the refit"] if refit_stop is not None else []
    return f"{unit} cut by the time limit in {' and '.join(where)}"


def _folds(schema: DatasetSchema, data: pd.DataFrame, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        return cv_folds(schema, data, k, seed)
    except ValueError as exc:  # scikit-learn: a class with fewer rows than folds
        raise TrainflowError(f"train.cv_folds {k}: {str(exc).splitlines()[0]} (set train.cv_folds lower, or 0 to "
                             f"compare the families on the validation split)") from None


def class_columns(task_type: str, y: np.ndarray) -> list[str]:
    """The columns of out-of-fold predictions: ``prediction`` for regression, else ``proba_<class>`` in the
    sorted order of the classes (scikit-learn's ``classes_``)."""
    return ["prediction"] if task_type == "regression" else [f"proba_{c}" for c in np.unique(y)]


def cross_validate_family(family: str, schema: DatasetSchema, data: pd.DataFrame, folds: list,
                          transform_settings: TransformSettings, settings: TrainSettings, metric: str, seed: int,
                          checkpoint_dir: str | None = None, init_weights: dict | None = None,
                          deadline: float | None = None, may_skip: bool = False,
                          fold_data: list | None = None,
                          cost: RoundCost | None = None) -> tuple[Pipeline, dict, pd.DataFrame, pd.DataFrame]:
    """One family's k-fold cross-validation over ``data``, then its refit on all of ``data`` (LightGBM with
    ``settings.bag``: its fold models averaged instead; a bagged family, the random forest: one fit, scored
    on its out-of-bag predictions, see ``out_of_bag``).

    Each fold fits on the other folds (LightGBM and networks early-stop on the held-out fold) and predicts
    the held-out rows; the metrics are those of all out-of-fold predictions together (rows no fold holds out,
    the first block of forward-chaining folds, are left out). The refit uses the folds' mean best round or
    epoch where the family has one.

    With a ``deadline`` the folds and the refit share the time left equally (see ``train_models``); with
    ``may_skip`` a family that cannot stop mid-fit raises ``OverBudget`` after its first fold when the rest
    would overrun the deadline by more than half the family's share. ``fold_data``: each fold's training and
    held-out rows as that fold's own preprocessor made them (``tasks.transform.fold_features``); None: the
    folds' rows of ``data``. The refit is on ``data`` either way.

    Returns:
        ``(refitted pipeline, info, history, oof)``: ``info`` as ``fit_family``'s with the out-of-fold metrics,
        their per-fold spread (``score_std``) and the per-fold metrics (``cv``); ``history`` each fit's (a
        ``fit`` column: ``fold <i>`` or ``refit on all rows``); ``oof`` one row per held-out row: family, row
        (position in ``data``), fold, and the prediction or class probabilities.
    """
    label = schema.label
    y = data[label].to_numpy().astype(float if schema.task == "regression" else str)
    columns = class_columns(schema.task, y)
    classes = None if schema.task == "regression" else np.unique(y)
    held = np.full(len(data), -1)
    for fold, (_, va) in enumerate(folds):
        held[va] = fold
    started = time.perf_counter()
    if out_of_bag_applies(family, settings, held):
        pipe, info, oof = out_of_bag(family, schema, data, columns, transform_settings, settings, seed,
                                     FitClock(deadline, f"train: {family}"))
        info["budget"] = _cut_note(family, [], info.get("stopped_by_time_limit"))
        fold_rows = [{"fold": fold, "metric": m, "value": v} for fold, (_, va) in enumerate(folds)
                     for m, v in score(schema.task, y[va], oof[va, 0] if classes is None else oof[va], classes,
                                       schema.positive_class).items()]
        cv_seconds, selected_on = time.perf_counter() - started, f"out-of-bag predictions ({len(folds)} folds' rows)"
        history = None  # its metrics, below
    else:
        pipe, info, history, oof, fold_rows = _k_fold(family, schema, data, y, columns, folds, transform_settings,
                                                      settings, seed, checkpoint_dir, init_weights, metric, deadline,
                                                      may_skip, fold_data, cost)
        cv_seconds, selected_on = info.pop("cv_seconds"), f"{len(folds)}-fold CV"
    covered = held >= 0
    scores = oof[covered, 0] if schema.task == "regression" else np.nan_to_num(oof[covered])
    metrics = score(schema.task, y[covered], scores, classes, schema.positive_class)
    if history is None:
        history = pd.DataFrame([{"family": family, "iteration": 1, "split": "out-of-bag", "metric": m, "value": v,
                                 "fit": "all rows, out-of-bag"} for m, v in metrics.items()])
    per_fold = pd.DataFrame(fold_rows)
    spread = per_fold[per_fold["metric"] == metric]["value"]
    info.update(metrics=metrics, selected_on=selected_on, cv_seconds=cv_seconds,
                score_std=float(spread.std(ddof=1)) if len(spread) > 1 else np.nan, cv=fold_rows)
    out = pd.DataFrame(oof[covered], columns=columns)
    out.insert(0, "fold", held[covered])
    out.insert(0, "row", np.flatnonzero(covered))
    out.insert(0, "family", family)
    return pipe, info, history, out


def _k_fold(family: str, schema: DatasetSchema, data: pd.DataFrame, y: np.ndarray, columns: list[str], folds: list,
            transform_settings: TransformSettings, settings: TrainSettings, seed: int, checkpoint_dir: str | None,
            init_weights: dict | None, metric: str, deadline: float | None, may_skip: bool,
            fold_data: list | None = None,
            cost: RoundCost | None = None) -> tuple[Pipeline, dict, pd.DataFrame, np.ndarray, list[dict]]:
    """``cross_validate_family``'s k fits and refit: ``(pipeline, info, history, out-of-fold predictions (NaN
    where no fold holds the row out), per-fold metric rows)``; ``info["cv_seconds"]`` the folds' time,
    ``info["budget"]`` what the time limit cut."""
    oof = np.full((len(data), len(columns)), np.nan)
    bag = is_on(settings.bag) and FAMILIES[family].boosted  # serve the fold models averaged, no refit
    fold_rows, best, histories, fold_fits, started = [], [], [], [], time.perf_counter()
    stops, fold_scores, log, begun = [], [], run_logger(), time.time()
    faster = None
    if deadline is not None and FAMILIES[family].boosted:
        if cost is None:
            first = fold_data[0][0] if fold_data else data.iloc[folds[0][0]]
            cost = probe_rounds(family, schema, first, transform_settings, settings, seed)
        settings, faster = _rate_for_time(family, settings, cost,
                                          (deadline - time.time()) / (len(folds) + (0 if bag else 1)))
    for fold, (tr, va) in enumerate(folds):
        fold_started = time.time()
        fits_left = len(folds) - fold + (0 if bag else 1)  # these folds and the refit share the time left
        fold_deadline = None if deadline is None else fold_started + max(0.0, deadline - fold_started) / fits_left
        clock = FitClock(fold_deadline, f"train: {family} fold {fold + 1}/{len(folds)}")
        fit_rows, held_rows = fold_data[fold] if fold_data else (data.iloc[tr], data.iloc[va])
        pipe, info, history = fit_family(family, schema, fit_rows, held_rows, transform_settings, settings,
                                         seed, init_weights=init_weights, clock=clock)
        stops.append(info.get("stopped_by_time_limit"))
        fold_scores.append(info["metrics"].get(metric, np.nan))
        took = time.time() - fold_started
        log.info("train: %s fold %d/%d: %s %.4f (mean so far %.4f), %.1f s%s", family, fold + 1, len(folds), metric,
                 fold_scores[-1], float(np.nanmean(fold_scores)), took,
                 "" if stops[-1] is None else f", stopped by the time limit after {stops[-1]} "
                                              f"{'epochs' if FAMILIES[family].network else 'rounds'}")
        if may_skip and deadline is not None and not FAMILIES[family].interruptible and fits_left > 1:
            needed = took * (fits_left - 1)
            if time.time() + needed > deadline + 0.5 * (deadline - begun):
                raise OverBudget(f"skipped: over budget (fold 1 took {took:.1f} s; the {fits_left - 1} fits left "
                                 f"need about {needed:.0f} s, {max(0.0, deadline - time.time()):.0f} s of its "
                                 "share left)")
        histories.append(history.assign(fit=f"fold {fold + 1}"))
        if bag:
            fold_fits.append((pipe, info))
        scores = info["validation_scores"]  # the held-out rows' predictions, as fit_family scored them
        if schema.task == "regression":
            oof[va, 0] = scores
        else:  # a fold may lack a rare class: its columns go where the class is in the full list
            oof[np.ix_(va, [columns.index(f"proba_{c}") for c in np.asarray(pipe.classes_).astype(str)])] = scores
        fold_rows += [{"fold": fold, "metric": m, "value": v} for m, v in info["metrics"].items()]
        if info["best_iteration"]:
            best.append(info["best_iteration"])
    cv_seconds = time.perf_counter() - started
    if bag:
        pipe, info = bagged(schema, fold_fits, len(data))
        history = pd.concat(histories, ignore_index=True)
    else:
        refit = settings
        if best and (FAMILIES[family].boosted or FAMILIES[family].network):
            key = "max_epochs" if FAMILIES[family].network else "n_estimators"
            refit = settings.model_copy(update={"params": {**settings.params, family: {
                **settings.params.get(family, {}), key: max(1, int(round(float(np.mean(best)))))}}})
        pipe, info, history = fit_family(family, schema, data, None, transform_settings, refit, seed, checkpoint_dir,
                                         init_weights, clock=FitClock(deadline, f"train: {family} refit"))
        history = pd.concat([*histories, history.assign(fit="refit on all rows")], ignore_index=True)
    refit_stop = None if bag else info.pop("stopped_by_time_limit", None)
    note = "; ".join(n for n in (faster, _cut_note(family, stops, refit_stop)) if n)
    info.update(cv_seconds=cv_seconds, best_iteration=int(round(float(np.mean(best)))) if best
                else info["best_iteration"], budget=note)
    return pipe, info, history, oof, fold_rows


PROBE_ROUNDS = 20  # boosting rounds timed to see how many fit in a fold's share of the time limit
ROUNDS_TIMES_RATE = 20.0  # rounds early stopping needs, about this over the learning rate (Adult: 859 at 0.025,
# 490 at 0.05 for lightgbm_xt)
MAX_RATE = 0.3


@dataclass(frozen=True)
class RoundCost:
    """What a boosted family's rounds cost on a fold's training rows, timed by ``probe_rounds``."""

    startup: float  # seconds a fit costs before its first round
    per_round: float
    rate: float  # the family's own learning rate
    most_rounds: int | None = None  # its round limit (before early stopping)

    def affordable(self, seconds: float) -> float:
        """Rounds that fit in a fit of ``seconds``."""
        return max(seconds - self.startup, 0.0) / max(self.per_round, 1e-9)


def probe_rounds(family: str, schema: DatasetSchema, rows: pd.DataFrame, transform_settings: TransformSettings,
                 settings: TrainSettings, seed: int) -> RoundCost:
    """``PROBE_ROUNDS`` and a quarter of them fitted on ``rows``: the difference is the rounds' cost, the
    shorter fit less its rounds what a fit costs before them."""
    from trainflow.models.fit import build_estimator

    params = settings.params.get(family, {})
    est = build_estimator(family, schema.task, settings, seed, len(rows), schema=schema)
    own = est.get_params()
    rate = float(own.get("learning_rate") or (own.get("params") or {}).get("learning_rate") or 0.1)
    took = []
    for rounds in (PROBE_ROUNDS // 4, PROBE_ROUNDS):
        probe = settings.model_copy(update={"params": {**settings.params, family: {**params, "n_estimators": rounds}}})
        started = time.time()
        fit_family(family, schema, rows, None, transform_settings, probe, seed)
        took.append(time.time() - started)
    per_round = max(took[1] - took[0], took[1] / 10) / (PROBE_ROUNDS - PROBE_ROUNDS // 4)
    most = own.get("n_estimators") or own.get("iterations")
    return RoundCost(startup=max(0.0, took[0] - per_round * (PROBE_ROUNDS // 4)), per_round=per_round, rate=rate,
                     most_rounds=int(most) if most else None)


ANCHOR_SHARE = 0.5  # of train's time at most, for the first family's rounds at its own learning rate


def anchor_seconds(family: str, costs: dict[str, RoundCost], seconds: float, fits: int) -> float:
    """The time the first family to train (the anchor: LightGBM by default) is given before the others share
    what is left: what its ``fits`` need at its own learning rate (``ROUNDS_TIMES_RATE`` / rate rounds, at most
    its round limit), at most ``ANCHOR_SHARE`` of ``seconds``; 0 when it is not boosted (the caller gives it the
    larger of this and its weighted share). The ensemble is built on it, and the flow's promise is at least its
    quality: cut to a high learning rate its cross-validated ROC-AUC was 0.0115 lower on the 800-column table of
    ``benchmarks/budget.py``, where the later families' extra time bought less (benchmarks/README, time limit)."""
    cost = costs.get(family)
    if cost is None:
        return 0.0
    rounds = min(ROUNDS_TIMES_RATE / cost.rate, cost.most_rounds or math.inf)
    need = fits * (cost.startup + rounds * cost.per_round)
    return min(need, ANCHOR_SHARE * seconds)


def boosted_plan(costs: dict[str, RoundCost], families: list[str], seconds: float, fits: int) -> dict[str, str]:
    """The boosted families the time limit drops before training, each with its leaderboard note.

    Each family's share of ``seconds`` is its ``Family.cost`` against the families kept; a boosted family whose
    share, over its ``fits`` (folds and refit), holds fewer than half the rounds it needs even at ``MAX_RATE``
    (the rule by which ``_rate_for_time`` leaves a rate alone) would be weighed into the ensemble under-fitted:
    the one furthest short is dropped and the shares are made again, until every kept family fits or one family
    is left. Its time goes to the families kept (AutoGluon skips a model whose estimated time exceeds what is
    left in the same way)."""
    kept, dropped = list(families), {}
    need = ROUNDS_TIMES_RATE / MAX_RATE / 2
    while len(kept) > 1:
        total = sum(FAMILIES[f].cost for f in kept)
        short = {f: costs[f].affordable(seconds * FAMILIES[f].cost / total / fits) for f in kept if f in costs}
        short = {f: n for f, n in short.items() if n < need}
        if not short:
            break
        worst = min(short, key=lambda f: (round(short[f]), -costs[f].per_round))  # a tie: the costlier rounds
        kept.remove(worst)
        share = seconds * FAMILIES[worst].cost / total
        dropped[worst] = (f"skipped: over budget (about {short[worst]:.0f} of the {need:.0f} rounds it needs at "
                          f"learning rate {MAX_RATE} fit in its share, {share:.0f} s for {fits} fits at "
                          f"{costs[worst].per_round:.3f} s a round; its time went to the other families)")
    return dropped


def _rate_for_time(family: str, settings: TrainSettings, cost: RoundCost,
                   seconds: float) -> tuple[TrainSettings, str | None]:
    """Fewer rounds at a higher learning rate when a boosted family's rounds would not fit: when the rounds its
    learning rate needs (``ROUNDS_TIMES_RATE`` / rate) take more than twice ``seconds`` (a fit's share of the time
    limit) at ``cost``'s pace, the rate is raised so that they fit (at most ``MAX_RATE``), as FLAML and AutoGluon
    trade rounds for rate under a time limit. Returns the settings to train with and the leaderboard note (None:
    unchanged)."""
    params, rate = settings.params.get(family, {}), cost.rate
    affordable, needed = cost.affordable(seconds), ROUNDS_TIMES_RATE / rate
    if affordable >= needed / 2 or rate >= MAX_RATE:  # early stopping ends most fits before `needed`
        return settings, None
    faster = min(MAX_RATE, ROUNDS_TIMES_RATE / max(affordable, 1.0))
    run_logger().info("train: %s: about %.0f rounds fit in a fold's share of the time limit (%.0f s, %.3f s a round) "
                      "where learning rate %.3g needs about %.0f: learning rate %.3g", family, affordable, seconds,
                      cost.per_round, rate, needed, faster)
    updated = settings.model_copy(update={"params": {**settings.params, family: {**params, "learning_rate": faster}}})
    return updated, f"learning rate {rate:.3g} -> {faster:.3g} to fit its share of the time limit"


def out_of_bag_applies(family: str, settings: TrainSettings, held: np.ndarray) -> bool:
    """Whether a family is scored on its out-of-bag predictions instead of k folds: a bagged family (its
    ``Family.out_of_bag``) left bootstrapping, and folds that hold every row out once (not forward-chaining
    folds: a bootstrap sample ignores time, so its out-of-bag rows would be predicted from their future)."""
    return (FAMILIES[family].out_of_bag and settings.params.get(family, {}).get("bootstrap", True)
            and bool(np.all(held >= 0)))


def out_of_bag(family: str, schema: DatasetSchema, data: pd.DataFrame, columns: list[str],
               transform_settings: TransformSettings, settings: TrainSettings,
               seed: int, clock: FitClock | None = None) -> tuple[Pipeline, dict, np.ndarray]:
    """A bagged family fitted once on all of ``data``, each row predicted by the trees whose bootstrap sample
    left it out (about a third of them), as AutoGluon scores its random forests: the same held-out estimate as
    k refits, at the cost of one fit. Returns ``(pipeline, info, predictions)``, the predictions one column per
    entry of ``columns``."""
    params = {**settings.params, family: {**settings.params.get(family, {}), "oob_score": True}}
    pipe, info, _ = fit_family(family, schema, data, None, transform_settings,
                               settings.model_copy(update={"params": params}), seed, clock=clock)
    model = pipe.named_steps["model"]
    if schema.task == "regression":
        oob = np.asarray(model.oob_prediction_, dtype=float).reshape(-1, 1)
        del model.oob_prediction_  # one value per training row: not part of the model to save
    else:
        oob = np.full((len(data), len(columns)), np.nan)
        oob[:, [columns.index(f"proba_{c}") for c in np.asarray(model.classes_).astype(str)]] = \
            np.nan_to_num(model.oob_decision_function_)  # NaN: a row every tree drew (none, with 300 trees)
        del model.oob_decision_function_
    return pipe, info, oob


def bagged(schema: DatasetSchema, fold_fits: list[tuple[Pipeline, dict]], n_rows: int) -> tuple[Pipeline, dict]:
    """The fold models of a cross-validation, averaged with equal weights: one encode+model pipeline (an
    ensemble whose members are the folds' own encode+model pipelines), and its ``info`` as ``fit_family``'s."""
    from trainflow.models.ensemble import weighted_ensemble

    pipes, infos = zip(*fold_fits)
    family, k = infos[0]["family"], len(pipes)
    model = weighted_ensemble(schema.task == "regression", list(pipes), [1 / k] * k,
                              [f"{family} fold {i + 1}" for i in range(k)])
    info = {key: value for key, value in infos[0].items() if key != "validation_scores"}
    info.update(estimator=f"{k} x {info['estimator']}, averaged", n_train=n_rows,
                fit_seconds=sum(i["fit_seconds"] for i in infos),
                predict_seconds=sum(i["predict_seconds"] for i in infos))
    return Pipeline([("encode", "passthrough"), ("model", model)]), info


def loss_curves(history: pd.DataFrame):  # noqa: ANN201 (a matplotlib Figure, or None)
    """Train and validation loss per epoch of each network family, as one figure (None: no network)."""
    nets = history[history["metric"].isin(["train_loss", "validation_loss"])]
    if nets.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (family, metric), part in nets.groupby(["family", "metric"]):
        ax.plot(part["iteration"], part["value"], label=f"{family} {metric.replace('_', ' ')}",
                linestyle="-" if metric == "train_loss" else "--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Loss curves")
    ax.legend()
    return fig


def checkpoint_dir_for(store_root: str, features: dict[str, ArtifactRef], settings: TrainSettings,
                       seed: int) -> str | None:
    """``<root>/checkpoints/<key>``: the same data, settings and seed find the same checkpoints after a crash.

    None for a remote store (checkpoints need a local file system).
    """
    key = hashlib.sha256(json.dumps([features["train"].sha256, features["validation"].sha256,
                                     settings.model_dump(mode="json"), seed]).encode()).hexdigest()[:20]
    folder = ArtifactStore(store_root).local_folder("checkpoints", key)
    return str(folder) if folder is not None else None


def registered_weights(init_from: str, registry_url: str | None) -> dict:
    """The network weights of a registered version, ``NAME@ALIAS`` or ``NAME:VERSION``, for fine-tuning."""
    name, version, alias = init_from, None, "production"
    if "@" in init_from:
        name, alias = init_from.split("@", 1)
    elif ":" in init_from:
        name, v = init_from.split(":", 1)
        version, alias = int(v), None
    model = load_model(name, version, alias, registry_url).steps[-1][1]
    if not hasattr(model, "model_"):
        raise TrainflowError(f"init_from {init_from}: that version is a {type(model).__name__}, not a network")
    return model.model_.state_dict()


@task(name="train", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def train(store_root: str, run_id: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
          transform_settings: TransformSettings, settings: TrainSettings, seed: int,
          registry_url: str | None = None, deadline: float | None = None) -> dict[str, ArtifactRef]:
    """Prefect task: write ``train/leaderboard``, ``train/training_history``, the ``train/model`` bundle,
    a ``train/candidate_<family>`` bundle per other family, ``train/oof_predictions`` when the families were
    compared by cross-validation, and ``train/loss_curves.png`` for networks.

    Args:
        registry_url: The registry ``settings.nn.init_from`` names a model of (None: the default).
        deadline: When training must end (``time.time()``; None: no limit). The cache key holds only whether
            there is one: a run under a limit reuses an earlier limited run's result on the same inputs.

    Returns:
        References to the model bundle, the candidates, the leaderboard, the history and the plot.
    """
    store = ArtifactStore(store_root)
    preprocessor = load_skops(store.read_file(features["preprocessor"]))
    nn = nn_settings_for(schema, settings)
    init = registered_weights(nn.init_from, registry_url) if nn.init_from else None
    serving, meta, board, history = train_models(
        schema, store.read_table(features["train"]), store.read_table(features["validation"]), preprocessor,
        transform_settings, settings, seed, checkpoint_dir_for(store_root, features, settings, seed), init, deadline,
        rows_of(store, features, schema) if transform_settings.in_folds else None)
    meta["run_id"] = run_id
    if nn.init_from:
        meta["init_from"] = nn.init_from
    candidates, decisions = meta.pop("candidates"), meta.pop("candidate_decisions")
    oof = meta.pop("oof", None)
    run_logger().info("train: selected %s by %s %s %.4f%s", meta["family"], meta["selected_on"],
                      meta["selection_metric"], board.iloc[0]["score"], "".join(
                          f"; {r['family']} {r['score']:.4f}" for r in board.iloc[1:].to_dict("records")))
    refs = {
        "leaderboard": store.put(run_id, LEADERBOARD, board),
        "history": store.put(run_id, TRAINING_HISTORY, history),
        "model": store.put(run_id, MODEL, bundle_files(serving, meta)),
    }
    if oof is not None:
        refs["oof_predictions"] = store.put(run_id, OOF_PREDICTIONS, oof)
    for family, pipe in candidates.items():
        refs[f"candidate_{family}"] = store.put(run_id, CANDIDATE.of(family=family), bundle_files(
            pipe, {**{k: v for k, v in meta.items() if k != "decision"}, "family": family, "candidate": True,
                   **({"decision": decisions[family]} if family in decisions else {})}))
    figure = loss_curves(history)
    if figure is not None:
        refs["loss_curves"] = store.put(run_id, LOSS_CURVES_PLOT, figure)
    return refs
