"""The batch inference flow: read a batch source, validate it, score it with a registered model.

``trainflow infer --source new-rows.parquet`` scores with the ``production`` version;
``--model.version 3`` picks a version. Predictions go to ``runs/<run-id>/predict/predictions.parquet``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import Field

from flows.training import ARTIFACTS_ROOT_HELP, resolve_root
from tasks.predict import PredictSettings, predict
from trainflow.catalog import ArtifactStore, new_run_id
from trainflow.cluster import ComputeSettings, check_scheduler
from trainflow.forms import FormModel, dataset_field
from trainflow.names import DatasetName
from trainflow.schema import load_schema
from trainflow.sources import check_query, check_source, is_database
from trainflow.ui import tag_flow_run


class InferenceSettings(FormModel):
    """Settings of the batch inference flow."""

    dataset: DatasetName = dataset_field("adult", "dataset name: its schema in schemas/ gives the rules and columns")
    source: str | None = Field(None, description="CSV or Parquet file, partitioned Parquet folder, sklearn:NAME, or "
                                                 "a SQLAlchemy URL; empty: the schema's source")
    query: str | None = Field(None, description="SQL query when the source is a database URL")
    artifacts_root: str | None = Field(None, description=ARTIFACTS_ROOT_HELP)
    schemas_dir: str | None = Field(None, description="folder of dataset schemas; empty: the project's schemas/")
    compute: ComputeSettings = Field(default_factory=ComputeSettings, description=(
        "where the batches are validated and scored: here, or with engine dask on the workers of a Dask cluster, "
        "each loading the model once from the registry (which they must reach); they read a Parquet source's "
        "pieces and write the predictions themselves, other sources' batches travel to them"))
    model: PredictSettings = Field(default_factory=PredictSettings)

    def check(self) -> None:
        """Unknown schema or unreadable source, found before Prefect starts (raises TrainflowError)."""
        schema = load_schema(self.dataset, self.schemas_dir)
        ArtifactStore(resolve_root(self.artifacts_root)).check_writable()
        if self.source:
            check_source(self.source, schema.name)
        if self.source and self.query and is_database(self.source):
            check_query(self.query, self.source, schema.name)  # one SELECT, nothing that writes
        if self.compute.engine == "dask":
            check_scheduler(self.compute.dask_address, "compute.dask_address")


@flow(name="inference", description="Score a batch of rows with a registered model.")
def inference(settings: InferenceSettings = InferenceSettings()) -> dict[str, Any]:
    """Score a batch source.

    Returns:
        Run id and folder, model version, rows in, scored and quarantined, predictions path.

    Raises:
        TrainflowError: Unreadable source, unknown model or alias, a batch breaking an error rule.
    """
    root = resolve_root(settings.artifacts_root)
    run_id = new_run_id()
    schema = load_schema(settings.dataset, settings.schemas_dir)
    tag_flow_run(schema.name)
    out = predict(root, run_id, schema, settings.source, settings.query, settings.model, settings.compute)
    store = ArtifactStore(root)
    return {**{k: v for k, v in out.items() if k != "predictions"}, "run_id": run_id,
            "run_dir": store.run_uri(run_id), "predictions_path": store.uri(out["predictions"])}
