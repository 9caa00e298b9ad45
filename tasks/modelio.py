"""Safe model files: skops for scikit-learn objects, LightGBM's own text format for boosters.

Nothing here unpickles. A skops file is loaded only after every type it names has been checked
against an allow-list (scikit-learn, NumPy, SciPy and this project's own transformers), so a
tampered file fails with the names of the types it smuggles in.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.pipeline import Pipeline

from trainflow.errors import ArtifactError

ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "tasks.transform.", "tasks.modelio.",
                    "tasks.baselines.")


def dump_skops(obj: Any) -> bytes:
    """Serialise a scikit-learn object with skops."""
    return sio.dumps(obj)


def load_skops(data: bytes) -> Any:
    """Load skops bytes, trusting only allow-listed types.

    Raises:
        ArtifactError: The file names a type outside the allow-list.
    """
    untrusted = sio.get_untrusted_types(data=data)
    bad = [t for t in untrusted if not t.startswith(ALLOWED_PREFIXES)]
    if bad:
        raise ArtifactError(f"refusing to load a skops file naming untrusted types: {bad}")
    return sio.loads(data, trusted=untrusted)


class LightGBMModel(BaseEstimator):
    """A LightGBM booster loaded from its text format, with the scikit-learn predict API.

    Build it with :meth:`from_text`; the booster text is a fitted attribute (``model_str_``), not a
    parameter, so printing a Pipeline stays readable.

    Args:
        classes: Class labels in the order of the booster's outputs (None for regression).
    """

    def __init__(self, classes: list | None = None):
        self.classes = classes

    @classmethod
    def from_text(cls, model_str: str, classes: list | None = None) -> LightGBMModel:
        import lightgbm as lgb

        model = cls(classes=classes)
        model.model_str_ = model_str
        model.booster_ = lgb.Booster(model_str=model_str)
        return model

    def fit(self, X, y=None):  # noqa: ANN001, ANN201, N803
        raise ArtifactError("a LightGBM model loaded from its file is not refitted; train a new model instead")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "booster_")

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def predict_proba(self, X) -> np.ndarray:  # noqa: ANN001, N803
        raw = self.booster_.predict(X)
        return np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        if self.classes is None:
            return self.booster_.predict(X)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LightGBMClassifierModel(ClassifierMixin, LightGBMModel):
    """Loaded LightGBM classifier."""


class LightGBMRegressorModel(RegressorMixin, LightGBMModel):
    """Loaded LightGBM regressor."""


def bundle_files(pipeline: Pipeline, meta: dict) -> dict[str, bytes]:
    """Files of a model bundle: ``pipeline.skops`` (everything scikit-learn), ``model.txt`` for a LightGBM
    model (LightGBM's own format, the step left out of the skops file), and ``model.json`` metadata."""
    files: dict[str, bytes] = {}
    model = pipeline.steps[-1][1]
    booster = getattr(model, "booster_", None)
    if hasattr(model, "to_files"):  # a torch model: weights as safetensors, config as JSON
        files.update(model.to_files())
        meta = {**meta, "model_format": "torch-safetensors"}
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", "passthrough")])
    elif booster is not None:
        files["model.txt"] = booster.model_to_string().encode()
        if isinstance(model, LightGBMModel):
            classes = model.classes
        else:
            classes = [_py(c) for c in model.classes_] if hasattr(model, "classes_") else None
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
    if meta.get("model_format") == "torch-safetensors":
        from tasks.nn import _Net

        pipeline = Pipeline(pipeline.steps[:-1] + [("model", _Net.from_files(files))])
    elif meta.get("model_format") == "lightgbm-text":
        cls = LightGBMRegressorModel if meta["classes"] is None else LightGBMClassifierModel
        model = cls.from_text(files["model.txt"].decode(), classes=meta["classes"])
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", model)])
    return pipeline, meta


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
