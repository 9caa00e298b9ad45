"""A model family is one module: this file declares a toy one (Gaussian naive Bayes in a class of its own, its
search space, a file format of its own: its fitted arrays as JSON, the ONNX converter skl2onnx needs for its
class, and a compressed form: its means rounded) and, with nothing else changed but its entry in ``FAMILIES``,
the training flow tunes it, trains it, saves and loads it, exports it to ONNX, compresses it and registers it,
and the inference flow scores a batch with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import GaussianNB

from flows.inference import InferenceSettings, inference
from flows.training import TrainingSettings, training
from trainflow.models.families import FAMILIES
from trainflow.models.family import (BuildRequest, Compressed, CompressRequest, Family, ModelFormat, model_classes,
                                     param)
from trainflow.registry import Registry


class ToyNB(GaussianNB):
    """A class skl2onnx does not know: exporting it needs the family's converter."""


def _converters() -> None:
    from skl2onnx import update_registered_converter
    from skl2onnx.operator_converters.naive_bayes import convert_sklearn_naive_bayes
    from skl2onnx.shape_calculators.linear_classifier import calculate_linear_classifier_output_shapes

    # skl2onnx's naive Bayes converter tells the kinds apart by this alias
    update_registered_converter(ToyNB, "SklearnGaussianNB", calculate_linear_classifier_output_shapes,
                                convert_sklearn_naive_bayes, options={"zipmap": [True, False, "columns"],
                                                                      "nocl": [True, False]}, overwrite=True)


def _rounded(r: CompressRequest) -> tuple[list[Compressed], list[dict[str, Any]]]:
    files, meta = _dump(r.pipeline.steps[-1][1], None)
    model = _load(files, meta, None)  # a copy
    model.theta_ = np.round(model.theta_, 3)
    pipeline = type(r.pipeline)([*r.pipeline.steps[:-1], ("model", model)])
    return [Compressed("naive_bayes_rounded", pipeline, "means to 3 decimals", onnx="onnx_naive_bayes_rounded")], \
        [{"variant": "naive_bayes_pruned", "runtime": "native", "status": "not applicable", "reason": "no trees"}]


def _dump(model: GaussianNB, _: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    arrays = {"theta": model.theta_.tolist(), "var": model.var_.tolist(), "prior": model.class_prior_.tolist(),
              "var_smoothing": model.var_smoothing, "features": list(getattr(model, "feature_names_in_", []))}
    return {"naive_bayes.json": json.dumps(arrays).encode()}, {"classes": model_classes(model)}


def _load(files: dict[str, bytes], meta: dict[str, Any], _: Any) -> GaussianNB:
    arrays = json.loads(files["naive_bayes.json"])
    model = ToyNB(var_smoothing=arrays["var_smoothing"])
    model.classes_ = np.asarray(meta["classes"])
    model.theta_, model.var_ = np.asarray(arrays["theta"]), np.asarray(arrays["var"])
    model.class_prior_ = np.asarray(arrays["prior"])
    model.n_features_in_ = model.theta_.shape[1]
    if arrays["features"]:
        model.feature_names_in_ = np.asarray(arrays["features"], dtype=object)
    return model


def _build(r: BuildRequest) -> ToyNB:
    return ToyNB(**r.params)


TOY = Family(_build, cost=0.1, search_space={"var_smoothing": param("float", 1e-11, 1e-5, log=True)},
             model_format=ModelFormat("naive-bayes-json", lambda model: isinstance(model, ToyNB), _dump, _load),
             onnx_converters=_converters, compressions=_rounded)


@pytest.fixture()
def toy_family(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(FAMILIES, "naive_bayes", TOY)
    return "naive_bayes"


def test_a_family_declared_in_one_module_goes_through_the_flows(prefect_harness, toy_family: str,
                                                                workdir: dict[str, str]) -> None:
    form = TrainingSettings.model_json_schema()["$defs"]["TrainSettings"]["properties"]["families"]
    assert toy_family in form["items"]["enum"]  # the UI form offers it
    settings = TrainingSettings.model_validate({
        "dataset": "breast_cancer", "artifacts_root": workdir["root"], "time_limit": 0,
        "registry": {"registry_url": workdir["registry"]}, "evaluate": {"cv_folds": 0, "permutation_repeats": 0},
        "train": {"families": [toy_family], "cv_folds": 3},
        "tune": {"family": toy_family, "n_trials": 3}, "compress": {"enabled": "on"}})
    summary = training(settings)
    run = Path(summary["run_dir"])

    trials = pd.read_parquet(run / "tune" / "trials.parquet")  # tuned over its own space
    assert len(trials) == 3 and all("var_smoothing" in json.loads(p) for p in trials["params"])
    assert (run / "train" / "model" / "naive_bayes.json").exists()  # saved in its own format
    report = pd.read_parquet(run / "compress" / "compression_report.parquet").set_index("variant")
    assert report.loc["onnx", "status"] == "kept" and report.loc["onnx", "max_abs_diff"] < 1e-3  # exported
    # its compressed form, measured as it is and in ONNX Runtime, and the form it could not make, with the reason
    assert report.loc["naive_bayes_rounded", "status"] in ("kept", "rejected")
    assert report.loc["onnx_naive_bayes_rounded", "status"] in ("kept", "rejected")
    assert report.loc["naive_bayes_pruned", "reason"] == "no trees"

    registry = Registry(workdir["registry"])
    try:
        pipeline, meta = registry.load("breast_cancer", alias="production")  # loaded back from its format
    finally:
        registry.close()
    assert meta["family"] == toy_family and meta["model_format"] == "naive-bayes-json"
    assert isinstance(pipeline.steps[-1][1], ToyNB)

    batch = pd.read_parquet(run / "split" / "test.parquet")
    out = inference(InferenceSettings.model_validate({
        "dataset": "breast_cancer", "source": str(run / "split" / "test.parquet"),
        "artifacts_root": workdir["root"], "model": {"registry_url": workdir["registry"]}}))
    predictions = pd.read_parquet(out["predictions_path"])
    assert out["rows_scored"] == len(batch) == len(predictions) and predictions["prediction"].notna().all()
