"""The retraining flow, run nightly by its deployment.

1. Monitor the newest labelled batch with the production model (drift of features, predictions, performance).
2. Retrain, through the training flow as a subflow, when drift is found, the production model is older than
   ``max_model_age_days``, or there is none; on history plus the recent batches, the newest held out.
3. Champion/challenger on the held-out batch: promote only if better by the margin; else keep the champion
   and record why.
4. Notify on promotion and on failure (a webhook URL, or the log when none is set).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow
from pydantic import Field

from flows.training import TrainingSettings, resolve_root, training
from tasks.drift import MonitorSettings, monitor_drift
from tasks.predict import PredictSettings, predict
from tasks.promote import promote, PromotionSettings
from tasks.report import report_retraining
from tasks.retrain import DRIFT_REASONS, combine, list_batches, notify, retrain_reasons
from trainflow.catalog import ArtifactStore, new_run_id
from trainflow.errors import RegistryError
from trainflow.forms import FormModel
from trainflow.progress import run_logger
from trainflow.registry import Registry
from trainflow.schema import load_schema
from trainflow.ui import tag_flow_run


class RetrainingSettings(FormModel):
    """Settings of the retraining flow."""

    training: TrainingSettings = Field(default_factory=TrainingSettings)
    batches: str | None = Field(None, description="folder of labelled batches (Parquet or CSV), oldest first by name")
    window_batches: int = Field(7, ge=1, description="recent batches added to the history for retraining")
    include_history: bool = Field(True, description="train on the dataset's own source as history too")
    max_model_age_days: float = Field(7.0, gt=0, description="retrain when the production model is older than this")
    drift: MonitorSettings = Field(default_factory=MonitorSettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    notify_url: str | None = Field(None, description="webhook called on promotion and on failure; empty: logged only")
    notify_block: str | None = Field(None, description="saved Prefect notification block (e.g. 'slack-webhook/ml-team') "
                                                       "used on promotion and on failure")

    def check(self) -> None:
        """The training settings' checks and a readable batches folder, before Prefect starts."""
        self.training.check()
        if self.batches:
            list_batches(self.batches)


@flow(name="retraining", description="Monitor, retrain when needed, and promote only a better model.")
def retraining(settings: RetrainingSettings = RetrainingSettings()) -> dict[str, Any]:
    """Nightly retraining; see the module docstring.

    Returns:
        What was decided and why: drift summary, whether it retrained, the challenger, the promotion decision.
    """
    try:
        return report_retraining(_retrain(settings))
    except Exception as exc:
        notify("retraining_failed", f"retraining of '{settings.training.dataset}' failed: {exc}", settings.notify_url,
               block=settings.notify_block)
        raise


def _retrain(settings: RetrainingSettings) -> dict[str, Any]:
    t = settings.training
    root = resolve_root(t.artifacts_root)
    run_id = new_run_id()
    schema = load_schema(t.dataset, t.schemas_dir)
    tag_flow_run(schema.name)
    name = t.registry.model_name or schema.name
    batches = [str(b) for b in list_batches(settings.batches)]
    registry = Registry(t.registry.registry_url)
    try:
        champion = registry.version_info(name, registry.resolve(name, alias="production"))
    except RegistryError:
        champion = None
    finally:
        registry.close()
    summary: dict[str, Any] = {"run_id": run_id, "model_name": name, "batches": len(batches),
                               "champion": champion["version"] if champion else None}
    age = None
    if champion is not None:
        age = (dt.datetime.now(dt.UTC) - champion["created"].replace(tzinfo=dt.UTC)).total_seconds() / 86400
        summary["model_age_days"] = round(age, 3)
        if batches:
            model = PredictSettings(model_name=name, registry_url=t.registry.registry_url)
            scored = predict(root, run_id, schema, batches[-1], None, model)
            drift = monitor_drift(root, run_id, schema, batches[-1], None, scored["predictions"], name,
                                  scored["model_version"], t.registry.registry_url, settings.drift)
            summary["drift"] = {k: drift[k] for k in ("drifted_features", "share", *DRIFT_REASONS)}
    reasons = retrain_reasons(age, settings.max_model_age_days, summary.get("drift"))
    summary["retrain_reasons"] = reasons
    if not reasons:
        summary.update(retrained=False, promoted=False, reason="no drift and the model is fresh")
        run_logger().info("retraining: not retraining %s: %s", name, summary["reason"])
        return summary
    run_logger().info("retraining: retraining %s because: %s", name, "; ".join(reasons))
    history = (t.ingest.source or schema.source) if settings.include_history else None
    if batches:
        data = combine(root, run_id, schema, history, batches[-settings.window_batches - 1:-1], batches[-1])
        source = ArtifactStore(root).uri(data["training_data"])
    else:
        data, source = None, t.ingest.source
    trained = training(t.model_copy(update={"ingest": t.ingest.model_copy(update={"source": source})}))
    summary.update(retrained=True, challenger=trained["version"], training_run=trained["run_id"],
                   challenger_test_metrics=trained["test_metrics"])
    if champion is None and "production" in trained["aliases"]:
        summary.update(promoted=True, reason="first version of the model: production by default")
        notify("model_promoted", f"{name} v{trained['version']} is the first production model", settings.notify_url,
               block=settings.notify_block)
    elif data is None:
        summary.update(promoted=False, reason="no fresh batch to compare on; the new version waits as candidate")
    else:
        decision = promote(root, run_id, schema, data["holdout"], name, trained["version"], settings.promotion,
                           t.registry.registry_url)
        summary.update(promoted=decision["promoted"], reason=decision["reason"], decision=decision)
        if decision["promoted"]:
            notify("model_promoted", f"{name} v{trained['version']} promoted to production: {decision['reason']}",
                   settings.notify_url, decision, block=settings.notify_block)
    return summary
