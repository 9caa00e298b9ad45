"""LightGBM trained across a Dask cluster's workers (lightgbm.dask on a 2-worker LocalCluster), against the same
fit in this process; the training flow's data stages on the cluster against the local path."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tasks.split import SplitSettings, split_data
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings
from trainflow.models.boosters import LightGBMClassifierModel
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.models.settings import TrainSettings
from trainflow.models.fit import fit_family
from trainflow.schema import DatasetSchema

pytestmark = pytest.mark.slow(seconds=35)  # Dask clusters of worker processes


def test_lightgbm_across_a_local_cluster_scores_as_it_does_here(adult_raw: pd.DataFrame,
                                                                adult_schema: DatasetSchema) -> None:
    splits, _ = split_data(adult_raw, adult_schema, SplitSettings(), seed=0)
    _, features = fit_transform_splits(splits, adult_schema, TransformSettings())
    test_x, test_y = features["test"].drop(columns=["income"]), features["test"]["income"] == ">50K"
    fitted = {}
    for where in (None, "local"):
        settings = TrainSettings(lightgbm_max_rounds=300, lightgbm_learning_rate=0.05, dask_address=where)
        fitted[where] = fit_family("lightgbm", adult_schema, features["train"], features["validation"],
                                   TransformSettings(), settings, 0)
    (here, here_info, _), (cluster, info, history) = fitted[None], fitted["local"]
    assert isinstance(cluster[-1], LightGBMClassifierModel) and list(cluster[-1].classes_) == ["<=50K", ">50K"]
    assert 1 <= info["best_iteration"] <= 300 and history["iteration"].max() == 300  # every round, the best kept
    assert abs(info["metrics"]["roc_auc"] - here_info["metrics"]["roc_auc"]) < 0.01  # validation rows
    scores = cluster.predict_proba(test_x)[:, 1]
    assert abs(roc_auc_score(test_y, scores) - roc_auc_score(test_y, here.predict_proba(test_x)[:, 1])) < 0.01
    loaded, _ = load_bundle(bundle_files(cluster, {"family": "lightgbm"}))  # as the registry stores and loads it
    np.testing.assert_allclose(loaded.predict_proba(test_x)[:, 1], scores)


def test_the_training_flow_on_a_dask_cluster_matches_the_local_path(prefect_harness, adult_raw: pd.DataFrame,
                                                                     tmp_path: Path) -> None:
    """compute.engine dask: a partitioned Parquet source ingested, validated (with rows quarantined), split and
    transformed part by part on a 2-worker LocalCluster, LightGBM trained with lightgbm.dask; against the local
    path on the same source: the same artifacts (datasets of parts there, tables here), a close metric."""
    from flows.training import TrainingSettings, training
    from trainflow.catalog import ArtifactStore

    rows = adult_raw.head(9000).copy()
    rows.loc[rows.index % 40 == 3, "age"] = None  # 2.5%: breaks the 2% rule, within quarantine
    source = tmp_path / "source"
    for k in range(3):  # three files of three row groups: nine parts
        (source / f"part={k}").mkdir(parents=True)
        rows.iloc[k * 3000:(k + 1) * 3000].to_parquet(source / f"part={k}" / "rows.parquet", row_group_size=1000)
    out, stores = {}, {}
    for engine in ("local", "dask"):
        stores[engine] = ArtifactStore(tmp_path / engine)
        out[engine] = training(TrainingSettings.model_validate({
            "preset": "fast", "artifacts_root": str(tmp_path / engine), "compute": {"engine": engine},
            "ingest": {"source": str(source), "batch_rows": 1000}, "validation": {"quarantine": True},
            "train": {"families": ["lightgbm"], "lightgbm_max_rounds": 200},
            "registry": {"registry_url": f"sqlite:///{tmp_path / engine}.db"}}))

    def artifact(engine: str, stage: str, name: str) -> tuple[str, pd.DataFrame]:
        ref = stores[engine].find(out[engine]["run_id"], stage, name)
        return ref.kind, stores[engine].read_table(ref)

    for stage, name in [("ingest", "raw"), ("ingest", "ingest_report"), ("validate", "validation_results"),
                        ("validate", "quarantine"), ("validate", "valid"), ("split", "train"), ("split", "test"),
                        ("split", "split_summary"), ("transform", "features_train"), ("transform", "features_test")]:
        (kind, here), (cluster_kind, there) = artifact("local", stage, name), artifact("dask", stage, name)
        pd.testing.assert_frame_equal(there, here, obj=f"{stage}/{name}")
        assert kind == "table" and cluster_kind == ("table" if name.endswith(("report", "results", "summary"))
                                                    else "dataset"), (stage, name)
    assert len(artifact("dask", "validate", "quarantine")[1]) == 225 and "part" in artifact("dask", "ingest", "raw")[1]
    assert out["dask"]["estimators"]["lightgbm"] == "LightGBMClassifierModel"  # fitted by lightgbm.dask
    auc = {engine: out[engine]["test_metrics"]["roc_auc"] for engine in out}
    assert abs(auc["dask"] - auc["local"]) < 0.01 and auc["dask"] > 0.88, auc


def _add(item: int, shared: dict) -> int:
    return item + shared["offset"]


def test_map_parts_runs_call_after_call_with_the_same_shared_values() -> None:
    """The same object shared by consecutive calls (as transform shares its preprocessor split after split)."""
    from trainflow.cluster import map_parts

    shared = {"offset": 10, "payload": np.arange(100_000)}
    for _ in range(6):
        assert map_parts("local", _add, range(4), shared) == [10, 11, 12, 13]


def test_a_workers_data_error_is_the_runs_one_line_and_publishes_nothing(adult_raw: pd.DataFrame,
                                                                          adult_schema: DatasetSchema,
                                                                          tmp_path: Path) -> None:
    from tasks.ingest import ingest
    from trainflow.cluster import ComputeSettings
    from trainflow.errors import DataError

    adult_raw.head(3000).to_parquet(tmp_path / "rows.parquet", row_group_size=1000)
    with pytest.raises(DataError) as err:  # the filter is checked on the workers, against each piece's columns
        ingest.fn(str(tmp_path / "root"), "r1", adult_schema, source=str(tmp_path / "rows.parquet"),
                  query="salary > 3", batch_rows=1000, compute=ComputeSettings(engine="dask"))
    assert err.value.rule == "query" and "salary" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "root" / "runs" / "r1").exists()  # no raw, no leftover parts, no empty folders
