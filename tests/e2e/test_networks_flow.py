"""Networks through the training flow under a real Prefect API: transfer learning from a registered CNN,
and the forecaster's run with its baseline."""

from pathlib import Path

import pandas as pd
import pytest

from flows.training import TrainingSettings, training
from trainflow.catalog import ArtifactStore
from trainflow.registry import Registry

pytestmark = pytest.mark.slow(seconds=60)  # four CNN runs and a forecaster's


def _digits(work: dict[str, str], name: str, query: str, **changes) -> TrainingSettings:
    base = {"dataset": "digits", "artifacts_root": work["root"], "time_limit": 0,  # epochs a busy machine keeps
            "ingest": {"query": query},
            "registry": {"registry_url": work["registry"], "model_name": name},
            "train": {"families": ["cnn"], "nn": {"channels": [16, 32], "max_epochs": 15}},
            # what evaluate makes: test_training_flow.py; the CNN's variants: tests/model/test_compress.py
            "evaluate": {"cv_folds": 0, "permutation_repeats": 0, "plots": False}, "compress": {"enabled": False}}
    for key, value in changes.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainingSettings.model_validate(base)


def test_fine_tune_from_a_registered_cnn(prefect_harness, workdir: dict[str, str]) -> None:
    source = training(_digits(workdir, "digits-0-4", "target <= 4"))
    assert source["test_metrics"]["accuracy"] >= 0.97
    few = {"split": {"train_fraction": 0.1}}
    nn = {"channels": [16, 32], "max_epochs": 100, "patience": 15, "batch_size": 16}
    init = {"init_from": "digits-0-4@production"}
    runs = {
        "frozen": training(_digits(workdir, "digits-5-9-frozen", "target >= 5", **few, train={
            "families": ["cnn"], "nn": {**nn, **init, "learning_rate": 0.03}})),
        "fine-tuned": training(_digits(workdir, "digits-5-9-tuned", "target >= 5", **few, train={
            "families": ["cnn"], "nn": {**nn, **init, "freeze_body": False}})),
        "scratch": training(_digits(workdir, "digits-5-9-scratch", "target >= 5", **few, train={
            "families": ["cnn"], "nn": nn})),
    }
    store = ArtifactStore(workdir["root"])
    trains = [store.read_table(store.find(r["run_id"], "split", "train")) for r in runs.values()]
    assert all(t.index.equals(trains[0].index) for t in trains)  # the same few labels for all three
    assert set(trains[0]["target"].astype(int)) == {5, 6, 7, 8, 9} and len(trains[0]) < 70  # 10% of 5-9

    registry = Registry(workdir["registry"])
    try:
        base = registry.load("digits-0-4")[0].steps[-1][1].model_.state_dict()
        frozen, meta = registry.load("digits-5-9-frozen")
        tuned = registry.load("digits-5-9-tuned")[0].steps[-1][1].model_.state_dict()
    finally:
        registry.close()
    assert meta["init_from"] == "digits-0-4@production" and meta["transferred_tensors"] > 0
    new = frozen.steps[-1][1].model_.state_dict()
    for key in ("body.0.weight", "body.1.running_mean", "body.7.weight"):
        assert base[key].equal(new[key]), key  # the body was frozen, normalisation statistics too
        assert not base[key].equal(tuned[key]), key  # fine-tuning moved it
    assert list(frozen.classes_) == ["5", "6", "7", "8", "9"]
    acc = {k: r["test_metrics"]["accuracy"] for k, r in runs.items()}
    print("\ndigits 5-9 with 10% of the labels, test accuracy:", acc)
    assert acc["fine-tuned"] >= acc["scratch"] - 0.02 and acc["frozen"] >= 0.6, acc


def test_forecast_flow_reports_the_seasonal_naive_baseline(prefect_harness, workdir: dict[str, str]) -> None:
    summary = training(TrainingSettings.model_validate({
        "dataset": "air_passengers", "artifacts_root": workdir["root"],
        "registry": {"registry_url": workdir["registry"]}, "evaluate": {"cv_folds": 2},
        "compress": {"enabled": False}}))
    assert summary["family"] == "gru"
    board = summary["test_leaderboard"]
    assert board["gru"]["mape"] < board["seasonal_naive"]["mape"]
    store = ArtifactStore(workdir["root"])
    run = Path(store.run_uri(summary["run_id"]))
    leaderboard = pd.read_parquet(run / "evaluate" / "test_leaderboard.parquet")
    assert set(leaderboard["family"]) == {"gru", "seasonal_naive"} and leaderboard.loc[0, "family"] == "gru"
    assert (run / "train" / "loss_curves.png").stat().st_size > 1000
    history = pd.read_parquet(run / "train" / "training_history.parquet")
    assert {"train_loss", "validation_loss", "grad_norm", "learning_rate", "seconds"} <= set(history["metric"])
    assert not list((Path(workdir["root"]) / "checkpoints").rglob("*.pt"))  # removed once the model is saved
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    with get_client(sync_client=True) as client:  # the per-epoch progress artifact the UI shows
        progress = client.read_artifacts(artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
    epochs = [a for a in progress if (a.description or "").startswith("gru epochs")]
    assert epochs and epochs[-1].data == 100.0, [(a.description, a.data) for a in epochs]
