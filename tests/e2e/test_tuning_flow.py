"""Tuning as a stage of the training flow: two workers on threads, then on a temporary Dask cluster."""

import base64
import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from prefect.logging.handlers import APILogHandler

from flows.training import TrainingSettings, training
from trainflow.errors import TrainflowError
from trainflow.registry import Registry

pytestmark = pytest.mark.slow(seconds=65)  # parallel tuning, on threads and on Dask clusters


def test_flow_tunes_in_parallel_and_trains_with_the_best_params(prefect_harness, workdir: dict[str, str],
                                                               run_logs_at_info) -> None:
    settings = TrainingSettings.model_validate({
        "dataset": "breast_cancer", "artifacts_root": workdir["root"],
        "registry": {"registry_url": workdir["registry"]}, "evaluate": {"cv_folds": 0},
        "train": {"families": ["lightgbm", "logistic"], "lightgbm_max_rounds": 200},
        "tune": {"family": "lightgbm", "method": "tpe", "n_trials": 6, "workers": 2},
        "compress": {"enabled": False}})
    state = training(settings, return_state=True)
    summary = state.result()
    run = Path(summary["run_dir"])
    trials = pd.read_parquet(run / "tune" / "trials.parquet")
    assert len(trials) == 6 and set(trials["state"]) <= {"complete", "pruned", "fail"}
    assert (trials["state"] == "complete").any() and (run / "tune" / "best_score.png").exists()
    starts = trials.sort_values("started")["started"].tolist()
    ends = [s + pd.Timedelta(seconds=d) for s, d in zip(trials.sort_values("started")["started"],
                                                        trials.sort_values("started")["seconds"])]
    assert any(starts[i + 1] < ends[i] for i in range(len(starts) - 1))  # two trials ran at the same time
    # the enqueued trials (the defaults, LightGBM's own) run alone first, in the flow's thread (flows.training)
    alone = trials[trials["source"] != "sampler"]
    assert len(alone) == 2 and set(alone["thread"]) == {threading.current_thread().name}

    registry = Registry(workdir["registry"])
    try:
        _, meta = registry.load("breast_cancer", alias="production")
        lineage = registry.version_info("breast_cancer", 1)["lineage"]
    finally:
        registry.close()
    tuning = lineage["tuning"] if isinstance(lineage, dict) else json.loads(lineage)["tuning"]
    best = tuning["best_params"]
    if meta["family"] == "lightgbm":
        assert all(meta["params"][k] == v for k, v in best.items() if k in meta["params"])

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterType, FlowRunFilter,
                                                FlowRunFilterParentFlowRunId, LogFilter, LogFilterFlowRunId)

    with get_client(sync_client=True) as client:  # this run's artifacts (another test may tune the same table)
        ours = {state.state_details.flow_run_id, *(r.id for r in client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(
                any_=[state.state_details.flow_run_id]))))}
        tables = [a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            type=ArtifactFilterType(any_=["table"]))) if a.flow_run_id in ours]
        notes = [a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            type=ArtifactFilterType(any_=["markdown"]))) if a.flow_run_id in ours]
    top = [a for a in tables if (a.key or "").startswith("tuning-breast-cancer-lightgbm")]
    assert top and "cv roc_auc" in str(top[-1].data)
    plot = [a for a in notes if (a.key or "").startswith("tuning-plot-breast-cancer-lightgbm")][-1].data
    image = base64.b64decode(plot.split("(data:image/png;base64,", 1)[1].split(")", 1)[0])
    assert image == (run / "tune" / "best_score.png").read_bytes()  # the plot itself, shown in the UI

    # the Logs tab of this run and of its tuning-workers subflow; the run's last lines reach the API from a
    # background worker in batches, so the test waits for them as a user refreshing the tab would
    APILogHandler().flush()
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        flow_run = state.state_details.flow_run_id
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run])))
        runs = [flow_run, *(r.id for r in children)]
        # the subflow's page shows the run's settings, features and plan: not the schema's columns, no path of
        # this machine that the settings did not hold
        (workers,) = [r for r in children if r.name and r.parameters.get("plan")]
        assert set(workers.parameters) == {"s", "features", "plan", "deadline"}
        assert "columns" not in json.dumps(workers.parameters, default=str)
        while True:
            logs = [log.message for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                any_=runs)), limit=200)]
            if any(line.startswith("register: ") for line in logs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    # stages that never come from the cache (an identical earlier run in this session may have cached the rest)
    for start in ("ingest: 569 rows", "validate: passed", "register: breast_cancer v1"):
        assert any(line.startswith(start) for line in logs), (start, logs)
    assert sum(line.startswith("tune trial ") for line in logs) == 6  # one line per finished trial


def test_tune_runs_alone_on_an_earlier_runs_features(prefect_harness, workdir: dict[str, str]) -> None:
    from flows.stage import StageSettings, run_stage

    first = training(TrainingSettings.model_validate({  # a run whose features the stages below start from
        "dataset": "breast_cancer", "preset": "fast", "artifacts_root": workdir["root"], "tune": {"enabled": False},
        "registry": {"registry_url": workdir["registry"]}, "evaluate": {"cv_folds": 0},
        "compress": {"enabled": False}}))
    out = run_stage(StageSettings.model_validate({  # no dataset: the run's (breast_cancer), not the default adult
        "stage": "tune", "from_run": first["run_id"], "artifacts_root": workdir["root"],
        "tune": {"family": "logistic", "method": "random", "n_trials": 3}}))
    assert "tune/trials" in out["outputs"] and "transform/features_train" in out["outputs"]
    trials = pd.read_parquet(out["outputs"]["tune/trials"])
    assert len(trials) == 3 and set(json.loads(trials.loc[0, "params"])) == {"C"}
    assert not (Path(first["run_dir"]) / "tune").exists()  # the earlier run is untouched
    with pytest.raises(TrainflowError, match="is of dataset 'breast_cancer', not 'wine'"):
        run_stage(StageSettings.model_validate({"stage": "evaluate", "from_run": first["run_id"], "dataset": "wine",
                                                "artifacts_root": workdir["root"]}))

    # the same stage with its two workers on a temporary Dask cluster (prefect-dask): trials run in two other processes
    dask = run_stage(StageSettings.model_validate({
        "stage": "tune", "from_run": first["run_id"], "dataset": "breast_cancer", "artifacts_root": workdir["root"],
        "tune": {"family": "logistic", "method": "tpe", "n_trials": 4, "workers": 2, "dask_address": "local",
                 "timeout_seconds": 300}}))  # the default budget (8 s for 4 trials) is spent on starting 2 processes
    trials = pd.read_parquet(dask["outputs"]["tune/trials"])
    pids = {int(w.rsplit(":", 1)[1]) for w in trials["worker"]}
    assert len(trials) == 4 and set(trials["state"]) <= {"complete", "pruned"} and trials["error"].eq("").all()
    assert len(pids) == 2 and os.getpid() not in pids

    # compute.engine dask: the trials go to that engine's cluster, one per worker ("local": prefect-dask's own
    # cluster, started with this API's address), also where this process already holds a compute client (as after
    # a Dask ingest): a first version let prefect-dask take that client's cluster, whose workers, knowing no
    # Prefect API, each started a server of their own, so the UI never saw the trials
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from trainflow.cluster import dask_client

    def reported() -> int:
        with get_client(sync_client=True) as client:
            return len(client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(
                like_="tune_trials")), limit=200))

    compute_pids = set(dask_client("local").run(os.getpid).values())
    before = reported()
    compute = run_stage(StageSettings.model_validate({
        "stage": "tune", "from_run": first["run_id"], "dataset": "breast_cancer", "artifacts_root": workdir["root"],
        "compute": {"engine": "dask"}, "tune": {"family": "logistic", "method": "tpe", "n_trials": 4,
                                                 "timeout_seconds": 300}}))
    trials = pd.read_parquet(compute["outputs"]["tune/trials"])
    pids = {int(w.rsplit(":", 1)[1]) for w in trials["worker"]}
    assert len(trials) == 4 and len(pids) == 2 and not pids & (compute_pids | {os.getpid()})
    assert reported() - before == 3  # the enqueued trial alone, then one task per worker: in this API
