"""Online scoring (deployments/scoring.py): a model the training flow registered answers HTTP requests with the
predictions batch inference gives, refuses bad rows with a 422 naming the column, follows a promotion without
dropping a request, and ``trainflow serve`` starts it as a command."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from deployments.scoring import create_app
from deployments.ui import free_port, wait_healthy
from flows.training import TrainingSettings, training
from tasks.predict import predict_frame, scoring_model
from trainflow.registry import Registry
from trainflow.schema import load_schema

pytestmark = pytest.mark.slow(seconds=30)  # a trained model, the HTTP app and a served command


@pytest.fixture(scope="module")
def served(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two versions of breast_cancer in a registry of this module (the fast preset), the first in production."""
    tmp = tmp_path_factory.mktemp("serving")
    registry = f"sqlite:///{tmp / 'registry.db'}"
    runs = [training(TrainingSettings.model_validate({
        "dataset": "breast_cancer", "preset": "fast", "seed": seed, "artifacts_root": str(tmp / "artifacts"),
        "registry": {"registry_url": registry}, "compress": {"enabled": "on"},
        "evaluate": {"cv_folds": 0, "permutation_repeats": 0}})) for seed in (1, 2)]
    rows = pd.read_parquet(Path(runs[0]["run_dir"]) / "split" / "test.parquet").drop(columns=["target"])
    return {"registry": registry, "runs": runs, "rows": rows}


def _rows(served: dict, n: int) -> list[dict]:
    return served["rows"].head(n).to_dict("records")


def test_predictions_are_batch_inferences_and_bad_rows_are_422(served: dict) -> None:
    schema = load_schema("breast_cancer")
    pipeline, scorer, scored_by, threshold = scoring_model(served["registry"], "breast_cancer", 1, "serving")
    expected, _ = predict_frame(pipeline, schema, served["rows"].head(5), scorer=scorer, threshold=threshold)
    with TestClient(create_app("breast_cancer", served["registry"])) as client:
        assert client.get("/health").json() == {"status": "ok", "model": "breast_cancer", "version": 1,
                                                "scored_by": scored_by}
        one = client.post("/predict", json=_rows(served, 1)[0])
        batch = client.post("/predict", json=_rows(served, 5))
        assert one.status_code == batch.status_code == 200
        got = pd.DataFrame(batch.json()["predictions"])
        assert got["prediction"].tolist() == expected["prediction"].tolist()
        pd.testing.assert_frame_equal(got.drop(columns="prediction"), expected.drop(columns="prediction")
                                      .reset_index(drop=True), check_exact=False, atol=1e-6)
        assert one.json()["predictions"][0] == batch.json()["predictions"][0]
        labelled = {**_rows(served, 1)[0], "target": "benign"}  # a row as the data holds it: the label is not read
        assert client.post("/predict", json=labelled).json()["predictions"] == one.json()["predictions"]
        model = client.get("/model").json()
        assert model["version"] == 1 and "production" in model["aliases"] and "roc_auc" in model["metrics"]

        wrong_type = {**_rows(served, 1)[0], "mean radius": "large"}
        unknown = {**_rows(served, 1)[0], "colour": "red"}
        infinite = '{"mean radius": Infinity}'
        for body in (wrong_type, unknown, [wrong_type]):
            answer = client.post("/predict", json=body)
            assert answer.status_code == 422
            named = {str(part) for error in answer.json()["detail"] for part in error["loc"]}
            assert named & {"mean radius", "colour"}
        assert client.post("/predict", content=infinite, headers={"content-type": "application/json"}
                           ).status_code == 422
        assert client.post("/predict", json=[]).status_code == 422
        assert client.get("/openapi.json").json()["components"]["schemas"]["BreastCancerRow"]["properties"][
            "mean radius"]


def test_a_promotion_is_followed_without_dropping_a_request(served: dict) -> None:
    app = create_app("breast_cancer", served["registry"], refresh_seconds=0.2)
    answers: list[int] = []
    with TestClient(app) as client:
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                answers.append(client.post("/predict", json=_rows(served, 3)).status_code)

        worker = threading.Thread(target=load)
        worker.start()
        registry = Registry(served["registry"])
        try:
            registry.set_alias("breast_cancer", "production", 2, reason="test")
            deadline = time.monotonic() + 30
            while client.get("/health").json()["version"] != 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.get("/health").json()["version"] == 2
            time.sleep(0.3)
        finally:
            stop.set()
            worker.join(30)
            registry.set_alias("breast_cancer", "production", 1, reason="test")
            registry.close()
    assert answers and set(answers) == {200}
    with TestClient(create_app("breast_cancer:1", served["registry"], refresh_seconds=0.2)) as pinned:
        assert pinned.get("/health").json()["version"] == 1  # a pinned version is never swapped


def test_trainflow_serve_answers_over_http(served: dict) -> None:
    port = free_port()
    trainflow = Path(sys.executable).with_name("trainflow")
    server = subprocess.Popen([str(trainflow), "serve", "breast_cancer", "--port", str(port), "--registry-url",
                               served["registry"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, timeout=120)
        answer = httpx.post(f"{base}/predict", json=_rows(served, 2), timeout=30)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    finally:
        server.terminate()
        server.wait(30)
