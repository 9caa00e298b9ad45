"""Retrain: assemble training data from history and recent labelled batches, and tell people what happened.

The newest batch is held out: champion and challenger are compared on it, so it must not be trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import HOLDOUT, TRAINING_DATA
from trainflow.errors import DataError, is_transient
from trainflow.progress import run_logger
from trainflow.schema import DatasetSchema
from trainflow.sources import normalise, read_source

BATCH_SUFFIXES = (".parquet", ".csv", ".csv.gz")


DRIFT_REASONS = ("dataset_drift", "prediction_drift", "performance_drift")


def retrain_reasons(model_age_days: float | None, max_model_age_days: float,
                    drift: dict[str, Any] | None) -> list[str]:
    """Why the nightly run retrains; empty: it does not.

    Args:
        model_age_days: The production version's age; None when there is no production version.
        max_model_age_days: Retrain a production model older than this.
        drift: The newest batch's drift summary (``dataset_drift``, ``prediction_drift``, ``performance_drift``
            flags); None when no batch was scored.
    """
    if model_age_days is None:
        return ["no production model"]
    reasons = []
    if model_age_days > max_model_age_days:
        reasons.append(f"production model is {model_age_days:.1f} days old (max {max_model_age_days})")
    return reasons + [key.replace("_", " ") for key in DRIFT_REASONS if drift and drift.get(key)]


def list_batches(folder: str | None) -> list[Path]:
    """Batch files in a folder, oldest first (by name: name them by date)."""
    if not folder:
        return []
    path = Path(folder)
    if not path.is_dir():
        raise DataError("retraining", f"batch folder {path} does not exist", rule="source_exists")
    return sorted(p for p in path.iterdir() if p.name.endswith(BATCH_SUFFIXES))


@task(name="combine", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=is_transient)
def combine(store_root: str, run_id: str, schema: DatasetSchema, history: str | None, batches: list[str],
            holdout: str) -> dict[str, ArtifactRef]:
    """Prefect task: write ``retrain/training_data`` (history + batches) and ``retrain/holdout`` (the newest batch).

    Returns:
        References to both tables.
    """
    store = ArtifactStore(store_root)
    parts = [read_source(history, schema.name)] if history else []
    parts += [read_source(b, schema.name) for b in batches]
    if not parts:
        raise DataError(schema.name, "no history and no batches to train on", rule="non_empty")
    columns = [c.name for c in schema.columns]
    data = pd.concat([p[[c for c in columns if c in p.columns]] for p in parts], ignore_index=True)
    held = normalise(read_source(holdout, schema.name), schema.missing_markers)
    return {"training_data": store.put(run_id, TRAINING_DATA, data),
            "holdout": store.put(run_id, HOLDOUT, held)}


@task(name="notify", retries=2, retry_delay_seconds=[2, 10])
def notify(event: str, message: str, url: str | None, details: dict[str, Any] | None = None,
           block: str | None = None) -> bool:
    """Prefect task: tell people. Always logged; also POSTed as JSON ``{"event", "message", "details"}`` to a
    webhook URL, and sent through a saved Prefect notification block (Slack, Teams, email...) by name.

    Returns:
        True when a webhook or a block was called.
    """
    run_logger().warning("[%s] %s", event, message)
    if block:
        from prefect.blocks.core import Block

        Block.load(block).notify(body=message, subject=f"trainflow: {event}")
    if url:
        import httpx

        httpx.post(url, json={"event": event, "message": message, "details": details or {}},
                   timeout=10).raise_for_status()
    return bool(url or block)
