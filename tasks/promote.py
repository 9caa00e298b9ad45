"""Promote: champion/challenger on the same fresh holdout; the challenger becomes production only when it is
better by a margin, and the decision, promoted or not, is recorded in the registry with both scores."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import task
from pydantic import Field

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import PROMOTION
from trainflow.errors import RegistryError
from trainflow.features import as_model_input
from trainflow.forms import FormModel
from trainflow.metrics import DEFAULT_METRIC, DIRECTION, better, predict_scores, score, threshold_of
from trainflow.progress import run_logger
from trainflow.registry import Registry


class PromotionSettings(FormModel):
    """When a challenger replaces the champion."""

    metric: str | None = Field(None, description="metric compared on the fresh holdout; empty: roc_auc, f1_macro or "
                                                 "rmse by task")
    margin: float = Field(0.002, ge=0, description="the challenger must beat the champion by more than this")


def compare_on_holdout(schema: Any, champion: tuple[Any, dict], challenger: tuple[Any, dict], holdout: pd.DataFrame,
                       metric: str) -> tuple[float, float]:
    """Score champion and challenger (each ``(model, metadata)``, as the registry loads them) on the same
    labelled rows with one metric, each binary model deciding at its own threshold."""
    x = as_model_input(holdout, schema)
    y = holdout[schema.label].to_numpy()
    y = y.astype(float) if schema.task == "regression" else y.astype(str)
    out = []
    for model, meta in (champion, challenger):
        out.append(score(schema.task, y, predict_scores(model, x, schema.task), getattr(model, "classes_", None),
                         schema.positive_class, threshold=threshold_of(meta))[metric])
    return out[0], out[1]


@task(name="promote")
def promote(store_root: str, run_id: str, schema: Any, holdout: ArtifactRef, model_name: str, challenger: int,
            settings: PromotionSettings, registry_url: str | None) -> dict[str, Any]:
    """Prefect task: champion/challenger on the same fresh holdout; promote only if better by the margin.

    Writes ``promote/promotion`` (both scores, the decision and why) and records the decision in the registry.

    Returns:
        ``{"promoted", "champion", "challenger", "metric", "champion_score", "challenger_score", "reason"}``.
    """
    store = ArtifactStore(store_root)
    metric = settings.metric or DEFAULT_METRIC[schema.task]
    registry = Registry(registry_url, must_exist=True)
    try:
        try:
            champion = registry.resolve(model_name, alias="production")
        except RegistryError:
            champion = None
        decision: dict[str, Any] = {"champion": champion, "challenger": challenger, "metric": metric,
                                    "champion_score": None, "challenger_score": None}
        if champion == challenger:
            decision.update(promoted=False, reason="the challenger is already production")
        else:
            holdout_rows = store.read_table(holdout)
            champ_score = None
            if champion is not None:
                champ_score, chall_score = compare_on_holdout(schema, registry.load(model_name, champion),
                                                              registry.load(model_name, challenger), holdout_rows,
                                                              metric)
                target = champ_score + settings.margin if DIRECTION[metric] else champ_score - settings.margin
                wins = better(metric, chall_score, target)
            else:
                wins, chall_score = True, None
            decision.update(champion_score=champ_score, challenger_score=chall_score)
            if wins:
                reason = (f"{metric} {chall_score:.4f} vs champion {champ_score:.4f} beats margin {settings.margin}"
                          if champion is not None else "no production version yet")
                promoted = registry.promote(model_name, challenger, champion, reason)
                decision.update(promoted=promoted, reason=reason if promoted else "another promotion won first")
            else:
                reason = (f"{metric} {chall_score:.4f} vs champion {champ_score:.4f}: not better by margin "
                          f"{settings.margin}; champion kept")
                registry.record(model_name, "promotion_declined", challenger, champion=champion, reason=reason)
                decision.update(promoted=False, reason=reason)
    finally:
        registry.close()
    store.put(run_id, PROMOTION, pd.DataFrame([{**decision, "model_name": model_name,
                                                                      "holdout_rows": holdout.rows}]))
    run_logger().info("promote: %s v%s %s: %s", model_name, challenger,
                      "promoted to production" if decision["promoted"] else "not promoted", decision["reason"])
    return decision
