"""Register: gate a trained model on its test metrics, then register it with its lineage.

The quality gate is a minimum per test metric (a maximum for error metrics such as rmse); a model that
misses it is not registered, and the miss is recorded in the registry. A registered version gets the
``candidate`` alias, and ``production`` when it is the model's first (``trainflow.registry``).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from prefect import task
from pydantic import Field

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import REGISTERED_VERSION
from trainflow.errors import QualityGateFailed, RegistryError
from trainflow.forms import FormModel
from trainflow.lineage import environment_lineage
from trainflow.metrics import DIRECTION
from trainflow.names import ModelName
from trainflow.progress import run_logger
from trainflow.registry import PROFILE_FILE, Registry

DEFAULT_GATES = {"binary": {"roc_auc": 0.70}, "multiclass": {"f1_macro": 0.50}, "regression": {"r2": 0.10}}


class RegisterSettings(FormModel):
    """Where models are registered and what they must reach."""

    registry_url: str | None = Field(
        None, description="SQLAlchemy URL of the registry database; empty: a SQLite file under data/registry")
    model_name: ModelName | None = Field(None, description="registered model name; empty: the dataset name")
    quality_gate: dict[str, float] | None = Field(
        None, description="minimum test metrics (maximum for error metrics such as rmse); empty: by task, "
                          "roc_auc>=0.70, f1_macro>=0.50 or r2>=0.10")


def check_gate(metrics: dict[str, float], gate: dict[str, float]) -> list[str]:
    """Describe each gate the metrics miss (empty when the model passes)."""
    misses = []
    for metric, bound in gate.items():
        value = metrics.get(metric)
        if value is None:
            misses.append(f"{metric} was not computed")
        elif DIRECTION.get(metric, True) and value < bound:
            misses.append(f"{metric} {value:.4f} < required {bound}")
        elif not DIRECTION.get(metric, True) and value > bound:
            misses.append(f"{metric} {value:.4f} > allowed {bound}")
    return misses


COST_RATIO = 2.0  # a new version this many times production's size or single-row latency is called out


def serving_cost(store: ArtifactStore, files: dict[str, bytes], report: ArtifactRef | None) -> dict[str, Any]:
    """What the version costs to serve: its model files' bytes (the reference profile left out) and, from the
    compress stage's report, the served model's single-row p50 (ms) and which model that is."""
    cost: dict[str, Any] = {"bytes": sum(len(v) for k, v in files.items() if k != PROFILE_FILE)}
    if report is not None:
        served = store.read_table(report).query("serving")
        if len(served):
            cost.update(p50_ms=float(served["p50_ms"].iloc[0]), served_by=str(served["variant"].iloc[0]))
    return cost


def _compare_with_production(registry: Registry, name: str, cost: dict[str, Any]) -> None:
    """A warning line when the new version is ``COST_RATIO`` times production's size or p50 latency, or more."""
    try:
        current = registry.version_info(name, registry.resolve(name, alias="production"))
    except RegistryError:
        return
    lineage = json.loads(current["lineage"]) if isinstance(current["lineage"], str) else current["lineage"] or {}
    before = lineage.get("serving_cost") or {}
    said = []
    if before.get("bytes") and cost["bytes"] >= COST_RATIO * before["bytes"]:
        said.append(f"{cost['bytes'] / before['bytes']:.1f}x its size ({cost['bytes'] / 1e6:.1f} MB against "
                    f"{before['bytes'] / 1e6:.1f} MB)")
    if before.get("p50_ms") and cost.get("p50_ms") and cost["p50_ms"] >= COST_RATIO * before["p50_ms"]:
        said.append(f"{cost['p50_ms'] / before['p50_ms']:.1f}x its single-row latency (p50 {cost['p50_ms']:.1f} ms "
                    f"against {before['p50_ms']:.1f} ms)")
    if said:
        run_logger().warning("register: the new version of %s is %s of production v%d", name, " and ".join(said),
                             current["version"])


@task(name="register")
def register(store_root: str, run_id: str, model: ArtifactRef, evaluation_metrics: ArtifactRef, task_type: str,
             settings: RegisterSettings, dataset: str, lineage: dict[str, Any],
             reference_profile: ArtifactRef | None = None, serving: ArtifactRef | None = None,
             compression_report: ArtifactRef | None = None) -> dict[str, Any]:
    """Prefect task: gate the model on its test metrics, then register it with its lineage.

    Args:
        store_root: Artifact store root.
        run_id: This run.
        model: The model bundle.
        evaluation_metrics: Evaluate's ``metrics`` table; its test rows are gated and stored with the version.
        task_type: binary, multiclass or regression.
        settings: Registry URL, model name, gate.
        dataset: Dataset name (the default model name).
        lineage: Run facts (settings, data hash, seed); code, library and device facts are added here.
        reference_profile: The drift reference profile, stored with the version as ``reference_profile.parquet``.
        serving: The compress stage's serving variant, stored with the version and recorded with its hash.
        compression_report: The compress stage's report: the served model's single-row p50 is recorded with the
            size (``lineage["serving_cost"]``), and a version over twice production's size or latency says so.

    Returns:
        The registered version (name, version, aliases...).

    Raises:
        QualityGateFailed: A test metric misses the gate; nothing is registered, and the miss is recorded.
    """
    name = settings.model_name or dataset
    gate = settings.quality_gate if settings.quality_gate is not None else DEFAULT_GATES[task_type]
    store = ArtifactStore(store_root)
    table = store.read_table(evaluation_metrics)
    metrics = {r["metric"]: float(r["value"]) for r in table.to_dict("records")
               if r["split"] == "test" and pd.isna(r["class"])}
    lineage = {**lineage, "run_id": run_id, **environment_lineage()}
    registry = Registry(settings.registry_url, must_exist=True)  # the settings check opened (made) it
    try:
        misses = check_gate(metrics, gate)
        if misses:
            registry.record(name, "gate_failed", run_id=run_id, misses=misses, metrics=metrics)
            run_logger().warning("register: quality gate failed: %s", "; ".join(misses))
            raise QualityGateFailed(f"model '{name}' of run {run_id} was not registered: " + "; ".join(misses))
        files = store.read_bundle(model)
        if reference_profile is not None:
            files[PROFILE_FILE] = store.read_file(reference_profile)
        meta = json.loads(files["model.json"])
        lineage["serving_cost"] = cost = serving_cost(store, files, compression_report)
        _compare_with_production(registry, name, cost)
        info = registry.register(name, files, run_id, meta["family"], task_type, metrics, lineage,
                                 store.read_bundle(serving) if serving is not None else None)
        run_logger().info("register: %s v%d [%s] (%s, served by %s); quality gate passed: %s", name, info["version"],
                          ", ".join(info["aliases"]), meta["family"], info["serving_variant"] or "the native model",
                          ", ".join(f"{k} {'>=' if DIRECTION.get(k, True) else '<='} {v}" for k, v in gate.items()))
        store.put(run_id, REGISTERED_VERSION, pd.DataFrame([{
            "model_name": name, "version": info["version"], "aliases": ",".join(info["aliases"]),
            "uri": info["uri"], "sha256": info["sha256"], "serving_variant": info["serving_variant"] or "native",
            "serving_sha256": info["serving_sha256"], "registry_url": registry.display_url}]))
        return {k: v for k, v in info.items() if k != "created"}
    finally:
        registry.close()
