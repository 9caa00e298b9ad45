"""The monitoring flow: score a new batch with the production model, then test it for drift.

``trainflow monitor --source new-batch.parquet`` writes predictions (as the inference flow
does) and ``drift/drift_report.parquet`` against the reference profile stored with the model version;
when the batch has labels, performance drift too.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import Field

from flows.inference import InferenceSettings
from flows.training import resolve_root
from tasks.drift import MonitorSettings, monitor_drift
from tasks.predict import predict
from trainflow.catalog import ArtifactStore, new_run_id
from trainflow.schema import load_schema
from trainflow.ui import tag_flow_run


class MonitoringSettings(InferenceSettings):
    """Settings of the monitoring flow: the inference settings plus the drift tests."""

    drift: MonitorSettings = Field(default_factory=MonitorSettings)


@flow(name="monitoring", description="Score a new batch with the production model and test it for drift.")
def monitoring(settings: MonitoringSettings = MonitoringSettings()) -> dict[str, Any]:
    """Score a batch and report drift.

    Returns:
        The drift summary (features drifted, share, dataset, prediction and performance drift), the rows
        scored and quarantined, and where the predictions and the report went.
    """
    root = resolve_root(settings.artifacts_root)
    run_id = new_run_id()
    schema = load_schema(settings.dataset, settings.schemas_dir)
    tag_flow_run(schema.name)
    scored = predict(root, run_id, schema, settings.source, settings.query, settings.model)
    drift = monitor_drift(root, run_id, schema, settings.source, settings.query, scored["predictions"],
                          scored["model_name"], scored["model_version"], settings.model.registry_url, settings.drift)
    store = ArtifactStore(root)
    return {**drift, "run_id": run_id, "run_dir": store.run_uri(run_id), "rows_scored": scored["rows_scored"],
            "rows_quarantined": scored["rows_quarantined"], "predictions_path": store.uri(scored["predictions"])}
