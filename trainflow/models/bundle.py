"""A model bundle's files: the one serving Pipeline (preprocessing + model) as ``pipeline.skops`` (allow-listed,
``trainflow.modelio``), the model itself in its family's own format beside it (LightGBM text, CatBoost ``cbm``,
safetensors for a network, each ensemble member as a bundle of its own) and ``model.json`` metadata."""

from __future__ import annotations

import json
from typing import Any

from sklearn.pipeline import Pipeline

from trainflow.modelio import dump_skops, load_skops
from trainflow.models.boosters import (CatBoostClassifierModel, CatBoostModel, CatBoostRegressorModel,
                                       LightGBMClassifierModel, LightGBMModel, LightGBMRegressorModel)


def fitted_parts(est: Any) -> Any:
    """An estimator and every fitted step inside it (Pipeline steps, ColumnTransformer transformers)."""
    yield est
    children = ([s for _, s in est.steps] if isinstance(est, Pipeline)
                else [t[1] for t in getattr(est, "transformers_", [])])
    for child in children:
        if not isinstance(child, str):
            yield from fitted_parts(child)


def bundle_files(pipeline: Pipeline, meta: dict) -> dict[str, bytes]:
    """Files of a model bundle: ``pipeline.skops`` (everything scikit-learn), ``model.txt`` for a LightGBM
    model (LightGBM's own format, the step left out of the skops file), ``model.cbm`` for a CatBoost model
    (CatBoost's), and ``model.json`` metadata; an
    ensemble's members each as such a bundle of their own, their files prefixed ``member<i>.``."""
    from trainflow.models.ensemble import WeightedEnsemble

    files: dict[str, bytes] = {}
    model = pipeline.steps[-1][1]
    booster = getattr(model, "booster_", None)
    if isinstance(model, WeightedEnsemble):
        for i, (member, name) in enumerate(zip(model.members, model.names)):
            files.update({f"member{i}.{k}": v for k, v in bundle_files(member, {"family": name}).items()})
        meta = {**meta, "model_format": "ensemble", "members": model.names, "weights": list(model.weights),
                "classes": _classes(model)}
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", "passthrough")])
    elif hasattr(model, "to_files"):  # a torch model: weights as safetensors, config as JSON
        files.update(model.to_files())
        meta = {**meta, "model_format": "torch-safetensors"}
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", "passthrough")])
    elif isinstance(model, CatBoostModel):
        files["model.cbm"] = model.to_cbm()
        meta = {**meta, "model_format": "catboost-cbm", "classes": _classes(model)}
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", "passthrough")])
    elif booster is not None:
        files["model.txt"] = booster.model_to_string().encode()
        classes = model.classes if isinstance(model, LightGBMModel) else _classes(model)
        meta = {**meta, "model_format": "lightgbm-text", "classes": classes}
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", "passthrough")])
    else:
        meta = {**meta, "model_format": "skops"}
    files["pipeline.skops"] = dump_skops(pipeline)
    files["model.json"] = json.dumps(meta, indent=2, default=str).encode()
    return files


def load_bundle(files: dict[str, bytes]) -> tuple[Pipeline, dict]:
    """Rebuild the one serving Pipeline (preprocessing + model) from a bundle's files."""
    meta = json.loads(files["model.json"])
    pipeline = load_skops(files["pipeline.skops"])
    if meta.get("model_format") == "ensemble":
        from trainflow.models.ensemble import weighted_ensemble

        members = [load_bundle({k.removeprefix(f"member{i}."): v for k, v in files.items()
                                if k.startswith(f"member{i}.")})[0] for i in range(len(meta["members"]))]
        model = weighted_ensemble(meta["classes"] is None, members, meta["weights"], meta["members"])
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", model)])
    elif meta.get("model_format") == "torch-safetensors":
        from trainflow.models.networks import Net

        pipeline = Pipeline(pipeline.steps[:-1] + [("model", Net.from_files(files))])
    elif meta.get("model_format") == "catboost-cbm":
        cls = CatBoostRegressorModel if meta["classes"] is None else CatBoostClassifierModel
        model = cls.from_cbm(files["model.cbm"])
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", model)])
    elif meta.get("model_format") == "lightgbm-text":
        cls = LightGBMRegressorModel if meta["classes"] is None else LightGBMClassifierModel
        model = cls.from_text(files["model.txt"].decode(), classes=meta["classes"])
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", model)])
    return pipeline, meta


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _classes(model: Any) -> list | None:
    """A classifier's class labels as plain values for ``model.json``; None for a regressor."""
    return [_py(c) for c in model.classes_] if hasattr(model, "classes_") else None
