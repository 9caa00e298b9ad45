"""Safe model files: skops for scikit-learn objects, LightGBM's own text format for its boosters, CatBoost's own
binary format (``cbm``) for its models.

Nothing here unpickles. A skops file is loaded only after every type it names has been checked
against an exact allow-list (``ALLOWED_TYPES``: full type names, no prefixes), so a tampered file fails with the
names of the types it smuggles in.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.pipeline import Pipeline

from trainflow.errors import ArtifactError

# skops trusts plain data (builtins such as dict, list, str) and the scikit-learn estimators it has vetted; a file
# may name no other type than these, each by its full name (a prefix such as "numpy." would admit callables that
# compile or run strings). The list is what the project's own bundles name: tests/model/test_skops_types.py
# saves every family's bundle and the preprocessor and checks that they need exactly these.
ALLOWED_TYPES = frozenset({
    "numpy.dtype",  # the dtype of each array skops writes
    "sklearn.calibration._CalibratedClassifier",  # svm: its probability calibration
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",  # decision_tree, random_forest, extra_trees: the fitted trees
    "trainflow.features.CalendarFeatures",  # the preprocessor's steps
    "trainflow.features.CategoryCoder",
    "trainflow.features.Imputer",
    "trainflow.features.QuantileClipper",
    "trainflow.models.baselines.SeasonalNaive",
})
# where this project's classes lived before the library package: files written then name these modules
LEGACY_MODULES = {"tasks.transform": "trainflow.features", "tasks.modelio": "trainflow.modelio",
                  "tasks.baselines": "trainflow.models.baselines"}


def dump_skops(obj: Any) -> bytes:
    """Serialise a scikit-learn object with skops, its zip deflated (level 1: the fine_food TF-IDF model,
    whose 42,000-word vocabulary skops writes as JSON, is 9.3 MB instead of 46.8 MB, in the same time)."""
    import skops.io as sio  # here, not at import: it scans scikit-learn for its trusted types (seconds)

    return sio.dumps(obj, compression=zipfile.ZIP_DEFLATED, compresslevel=1)


def load_skops(data: bytes) -> Any:
    """Load skops bytes, trusting only allow-listed types.

    Raises:
        ArtifactError: The file names a type outside the allow-list.
    """
    import skops.io as sio

    data = _renamed_legacy_modules(data)
    untrusted = sio.get_untrusted_types(data=data)
    bad = [t for t in untrusted if t not in ALLOWED_TYPES]
    if bad:
        raise ArtifactError(f"refusing to load a skops file naming untrusted types: {bad}")
    return sio.loads(data, trusted=untrusted)


def _renamed_legacy_modules(data: bytes) -> bytes:
    """The skops file with the project's old module names (``LEGACY_MODULES``) replaced by today's, so that a
    model registered before the move still loads; the allow-list then checks the renamed types as usual."""

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rename(v) for k, v in node.items()}
            if out.get("__module__") in LEGACY_MODULES:
                out["__module__"] = LEGACY_MODULES[out["__module__"]]
            return out
        return [rename(v) for v in node] if isinstance(node, list) else node

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as old:
            schema = old.read("schema.json")
        if not any(f'"{name}"'.encode() in schema for name in LEGACY_MODULES):
            return data
        with zipfile.ZipFile(io.BytesIO(data)) as old, io.BytesIO() as buffer:
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as new:
                for item in old.infolist():
                    content = old.read(item)
                    if item.filename == "schema.json":
                        content = json.dumps(rename(json.loads(content))).encode()
                    new.writestr(item, content)
            return buffer.getvalue()
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactError(f"not a readable skops file: {exc}") from exc


def _predict_threads() -> int:
    """The threads a loaded LightGBM or CatBoost model predicts with (``trainflow.threads``): their files carry
    no thread count a caller chose, and their defaults take every core."""
    from trainflow.threads import fit_threads

    return fit_threads(barrier=True)


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
        raw = self.booster_.predict(X, num_threads=_predict_threads())
        return np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        if self.classes is None:
            return self.booster_.predict(X, num_threads=_predict_threads())
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LightGBMClassifierModel(ClassifierMixin, LightGBMModel):
    """Loaded LightGBM classifier."""


class LightGBMRegressorModel(RegressorMixin, LightGBMModel):
    """Loaded LightGBM regressor."""


class CatBoostModel(BaseEstimator):
    """A CatBoost model with the scikit-learn API: the ``catboost`` family's estimator, trained by it and rebuilt
    from CatBoost's own binary ``cbm`` file (never pickled). Its features are numbers (categories arrive one-hot
    or as codes from the family's encoding step), so it exports to ONNX (``trainflow.export``).

    Args:
        params: CatBoost's parameters (``n_estimators``, ``learning_rate``, ``depth``, ``thread_count``...).
    """

    def __init__(self, params: dict | None = None):
        self.params = params

    def _catboost(self) -> Any:
        from catboost import CatBoostClassifier, CatBoostRegressor

        return CatBoostRegressor if isinstance(self, RegressorMixin) else CatBoostClassifier

    def fit(self, X, y, eval_set: tuple | None = None,  # noqa: ANN001, N803
            early_stopping_rounds: int | None = None, callbacks: list | None = None) -> CatBoostModel:
        """Fit on ``X, y``; with ``eval_set`` ``(X, y)``, stop ``early_stopping_rounds`` rounds after the best
        score on it and keep the model of the best round; ``callbacks``: CatBoost's (``after_iteration``)."""
        model = self._catboost()(**{"verbose": 0, "allow_writing_files": False, **(self.params or {})})
        model.fit(X, y, eval_set=eval_set, early_stopping_rounds=early_stopping_rounds,
                  use_best_model=eval_set is not None, callbacks=callbacks)
        self.model_ = model
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def to_cbm(self) -> bytes:
        """The model in CatBoost's own binary format."""
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:  # CatBoost writes a file, not bytes
            path = Path(folder) / "model.cbm"
            self.model_.save_model(str(path), format="cbm")
            return path.read_bytes()

    @classmethod
    def from_cbm(cls, data: bytes) -> CatBoostModel:
        """The model of a ``cbm`` file (CatBoost's own parser; the file holds trees and class names, no code).

        Raises:
            ArtifactError: The bytes are not a CatBoost model.
        """
        model = cls()
        try:
            model.model_ = model._catboost()().load_model(blob=data)
        except Exception as exc:  # noqa: BLE001 - CatBoostError for a truncated or foreign file
            raise ArtifactError(f"not a readable CatBoost model file: {str(exc).splitlines()[0][:200]}") from None
        return model


class CatBoostClassifierModel(ClassifierMixin, CatBoostModel):
    """CatBoost classifier; its class labels are CatBoost's, in the order of its probability columns."""

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.model_.classes_)

    def predict_proba(self, X) -> np.ndarray:  # noqa: ANN001, N803
        return self.model_.predict_proba(X, thread_count=_predict_threads())

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class CatBoostRegressorModel(RegressorMixin, CatBoostModel):
    """CatBoost regressor."""

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        return np.asarray(self.model_.predict(X, thread_count=_predict_threads()), dtype=float)


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
