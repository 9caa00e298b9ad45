"""Run one stage alone, during development, against an earlier run's artifacts.

``trainflow stage --stage evaluate --from-run RUN_ID`` re-evaluates run RUN_ID's model on its
test split without retraining; ``trainflow stage --stage validate --ingest.source new.csv``
validates a new file. Outputs go to a new run folder whose manifest also lists the inputs it
borrowed, so the earlier run is never touched. Every other setting is the training flow's.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pandas as pd
from prefect import flow
from pydantic import Field

from flows.training import TrainingSettings, plan_budget, resolve_root, run_tuning
from tasks.compress import compress
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.split import SPLITS, split
from tasks.train import train
from tasks.transform import transform
from tasks.validate import validate, verdict
from trainflow.budget import Budget
from trainflow.cache import run_checked
from trainflow.catalog import ArtifactRef, ArtifactStore, new_run_id
from trainflow.catalog.artifacts import (COMPRESSION_REPORT, EVALUATION, FEATURES, INGEST_REPORT, LEADERBOARD, MODEL,
                                         PREPROCESSOR, QUARANTINE, RAW, SPLIT, VALID, VALIDATION_RESULTS, Artifact)
from trainflow.errors import ArtifactError, TrainflowError
from trainflow.metrics import headline
from trainflow.names import RunId
from trainflow.presets import with_preset
from trainflow.schema import load_schema

Stage = Literal["ingest", "validate", "split", "transform", "tune", "train", "evaluate", "compress"]


class StageSettings(TrainingSettings):
    """Settings for running one stage; the stage's own block is used, the rest is ignored."""

    stage: Stage = Field("evaluate", description="the stage to run")
    from_run: RunId | None = Field(None, description="run id whose artifacts feed the stage (not needed for ingest, "
                                                   "nor for validate with --ingest.source)")


def _need_run(settings: StageSettings) -> str:
    if not settings.from_run:
        raise TrainflowError(f"stage '{settings.stage}' reads an earlier run's artifacts: pass --from-run RUN_ID")
    return settings.from_run


@flow(name="stage", description="Run one stage of the training flow against an earlier run's artifacts.")
def run_stage(settings: StageSettings = StageSettings()) -> dict[str, Any]:
    """Run one stage.

    Returns:
        ``{"run_id", "stage", "from_run", "run_dir", "outputs": {name: path}}``.

    Raises:
        TrainflowError: A missing ``from_run``, an artifact the earlier run lacks, or the stage's own errors.
    """
    root = resolve_root(settings.artifacts_root)
    store = ArtifactStore(root)
    run_id = new_run_id()
    recorded = dataset_of_run(store, settings.from_run) if settings.from_run else None
    if recorded and "dataset" not in settings.model_fields_set:  # the earlier run says which dataset it is
        settings = settings.model_copy(update={"dataset": recorded})
    elif recorded and recorded != settings.dataset:
        raise TrainflowError(f"run {settings.from_run} is of dataset '{recorded}', not '{settings.dataset}' "
                             "(leave --dataset out to take the run's)")
    schema = load_schema(settings.dataset, settings.schemas_dir)
    view = schema.model_view()  # what transform, tune, train and evaluate see (a series' windows)
    s, stage = with_preset(settings, schema), settings.stage
    inputs: list[ArtifactRef] = []
    tuned: dict[str, Any] | None = None

    def borrow(artifact: Artifact) -> ArtifactRef:
        ref = store.get(_need_run(s), artifact)
        inputs.append(ref)
        return ref

    def rows_behind() -> dict[str, ArtifactRef]:  # the split rows behind the features, for in-fold preprocessing
        return {f"rows_{n}": borrow(SPLIT.of(split=n)) for n in ("train", "validation")} if s.transform.in_folds else {}

    if stage == "ingest" or (stage == "validate" and (s.ingest.source or not s.from_run)):
        raw = ingest(root, run_id, schema, s.ingest.source, s.ingest.query, s.ingest.missing_markers,
                     s.ingest.batch_rows, s.compute)
    if stage == "ingest":
        outputs: Any = {"raw": raw}
    elif stage == "validate":
        raw = raw if s.ingest.source or not s.from_run else borrow(RAW)
        validate(root, run_id, schema, raw, s.validation.quarantine, s.validation.max_quarantine_fraction,
                 s.validation.engine, s.ingest.batch_rows, s.compute)
        outputs = {}
    elif stage == "split":
        m = store.manifest(_need_run(s))
        source = VALID if ((m["stage"] == VALID.stage) & (m["name"] == VALID.name)).any() else RAW
        outputs = run_checked(split, root, run_id, schema, borrow(source), s.split, s.seed,
                              s.ingest.batch_rows, s.compute)
    elif stage == "transform":
        outputs = run_checked(transform, root, run_id, view, {n: borrow(SPLIT.of(split=n)) for n in SPLITS},
                              s.transform, s.ingest.batch_rows, s.compute)
    elif stage == "tune":
        features = {n: borrow(FEATURES.of(split=n)) for n in SPLITS} | rows_behind()
        tuned = run_tuning(root, run_id, view, features, s, plan_budget(s, view, features), share=1.0)
        if tuned is None:
            raise TrainflowError("no tuning result: nothing to tune by default for these families (name one with "
                                 "--tune.family), or no trial finished within --time-limit")
        outputs = {k: ArtifactRef(**v) for k, v in tuned["artifacts"].items()}
    elif stage == "train":
        features = {n: borrow(FEATURES.of(split=n)) for n in SPLITS} | rows_behind()
        features["preprocessor"] = borrow(PREPROCESSOR)
        outputs = run_checked(train, root, run_id, view, features, s.transform, s.train, s.seed,
                              s.registry.registry_url, plan_budget(s, view, features).deadline)
    elif stage == "compress":
        outputs = compress(root, run_id, view, borrow(MODEL), {n: borrow(SPLIT.of(split=n)) for n in SPLITS},
                           s.compress)
    else:
        splits = {n: borrow(SPLIT.of(split=n)) for n in SPLITS}
        limit = None if not s.time_limit else Budget(s.time_limit).deadline  # only a limit that was set: no table
        outputs = run_checked(evaluate, root, run_id, view, borrow(MODEL), splits, s.evaluate, s.transform,
                              s.train, s.seed, deadline=limit)
    store.add_references(run_id, [*inputs, *(outputs.values() if isinstance(outputs, dict) else [])])
    manifest = store.manifest(run_id)
    return {"run_id": run_id, "stage": stage, "from_run": s.from_run, "run_dir": store.run_uri(run_id),
            "result": stage_result(store, run_id, stage, view.task, tuned),
            "outputs": {f"{r['stage']}/{r['name']}": store.path_uri(r["path"]) for r in manifest.to_dict("records")}}


def dataset_of_run(store: ArtifactStore, run_id: str) -> str | None:
    """The dataset an earlier run was of: its ingest report's, else its model's (a stage run that borrowed its
    data); None when the run records neither."""
    for artifact in (INGEST_REPORT, MODEL):
        try:
            ref = store.get(run_id, artifact)
        except ArtifactError:
            continue
        if artifact == MODEL:
            return json.loads(store.read_bundle(ref)["model.json"]).get("dataset")
        return str(store.read_table(ref)["dataset"].iloc[0])
    return None


def stage_result(store: ArtifactStore, run_id: str, stage: str, task_type: str,
                 tuned: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """What a person wants to know of the stage that just ran, as (label, value) rows read from its artifacts
    (``tuned``: the tuning stage's result)."""
    def table(artifact: Artifact) -> pd.DataFrame | None:
        try:
            return store.read_table(store.get(run_id, artifact))
        except ArtifactError:
            return None

    rows: list[tuple[str, str]] = []
    if stage == "ingest":
        raw = table(RAW)
        rows.append(("rows", f"{len(raw):,} rows x {raw.shape[1]} columns"))
    elif stage == "validate":
        quarantine = table(QUARANTINE)
        rows.append(("validation", verdict(table(VALIDATION_RESULTS),
                                           0 if quarantine is None else len(quarantine))))
    elif stage == "split":
        rows += [(name, f"{len(table(SPLIT.of(split=name))):,} rows") for name in SPLITS]
    elif stage == "transform":
        rows += [(FEATURES.of(split=name).name, "{:,} rows x {} columns".format(
            *table(FEATURES.of(split=name)).shape)) for name in SPLITS]
    elif stage == "tune" and tuned is not None:
        rows += [("trials", ", ".join(f"{n} {state}" for state, n in tuned["states"].items())),
                 ("best trial", f"{tuned['best_trial']}: CV {tuned['metric']} {tuned['best_score']:.4f}"),
                 ("best params", ", ".join(f"{k}={v}" for k, v in tuned["best_params"].items()))]
    elif stage == "train":
        for r in table(LEADERBOARD).to_dict("records"):
            rows.append((f"{r['rank']}. {r['family']}", f"{r['selected_on']} {r['metric']} {r['score']:.4f}"
                                                          f"{' (selected)' if r['selected'] else ''}"))
    elif stage == "evaluate":
        metrics = table(EVALUATION.of(table="metrics"))
        rows += [(f"test {k}", f"{v:.4f}") for k, v in headline(metrics, task_type).items()]
        cv = table(EVALUATION.of(table="cv"))
        if cv is not None and len(cv):
            spread = metrics[metrics["split"] == "cv_std"].set_index("metric")["value"]
            mean = metrics[metrics["split"] == "cv"].set_index("metric")["value"]
            rows += [(f"{cv['fold'].nunique()}-fold CV {k}", f"{mean[k]:.4f} ± {spread.get(k, float('nan')):.4f}")
                     for k in headline(metrics, task_type) if k in mean.index]  # the test rows' metrics, in order
        board = table(EVALUATION.of(table="test_leaderboard"))
        for r in (board.to_dict("records") if board is not None and len(board) > 1 else []):
            rows.append((f"  {r['family']}", f"test {r['metric']} {r['test_score']:.4f}"))
    elif stage == "compress":
        from tasks.compress import compression_rows

        rows += compression_rows(table(COMPRESSION_REPORT).to_dict("records"))
    return rows
