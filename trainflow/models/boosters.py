"""The boosted families' models with the scikit-learn API, rebuilt from their own safe formats: LightGBM's
text format (``model.txt``) and CatBoost's binary ``cbm`` (trees and class names, no code), never pickled; and
their ONNX converters (LightGBM by onnxmltools' converter, native categoricals included; CatBoost by its own
export)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from trainflow.errors import ArtifactError
from trainflow.models.family import ModelFormat, model_classes
from trainflow.onnxtools import ExportError


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


def _dump_lightgbm(model: Any, _: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    classes = model.classes if isinstance(model, LightGBMModel) else model_classes(model)
    return {"model.txt": model.booster_.model_to_string().encode()}, {"classes": classes}


def _load_lightgbm(files: dict[str, bytes], meta: dict[str, Any], _: Any) -> LightGBMModel:
    cls = LightGBMRegressorModel if meta["classes"] is None else LightGBMClassifierModel
    return cls.from_text(files["model.txt"].decode(), classes=meta["classes"])


def _load_catboost(files: dict[str, bytes], meta: dict[str, Any], _: Any) -> CatBoostModel:
    cls = CatBoostRegressorModel if meta["classes"] is None else CatBoostClassifierModel
    return cls.from_cbm(files["model.cbm"])


# a LightGBM booster (trained here, on a Dask cluster, or loaded) as LightGBM's text format, ``model.txt``
LIGHTGBM_TEXT = ModelFormat("lightgbm-text", lambda model: getattr(model, "booster_", None) is not None,
                            _dump_lightgbm, _load_lightgbm)
# a CatBoost model as CatBoost's own binary format, ``model.cbm``
CATBOOST_CBM = ModelFormat("catboost-cbm", lambda model: isinstance(model, CatBoostModel),
                           lambda model, _: ({"model.cbm": model.to_cbm()}, {"classes": model_classes(model)}),
                           _load_catboost)


class _BoosterView:
    """What onnxmltools' LightGBM converter reads from an estimator, for the project's loaded LightGBM models."""

    def __init__(self, model: Any):
        self.booster_ = model.booster_
        self.classes_ = model.classes_ if getattr(model, "classes", None) is not None else None
        average = model.booster_.params.get("average_output") or "average_output" in model.model_str_[:2000]
        self.boosting_type = "rf" if average else "gbdt"


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    model = operator.raw_operator
    operator.raw_operator = _BoosterView(model)
    try:
        convert_lightgbm(scope, operator, container)
    finally:
        operator.raw_operator = model


def _convert_catboost(scope: Any, operator: Any, container: Any) -> None:
    """A CatBoost model as the tree-ensemble node of CatBoost's own ONNX export (``convert_to_onnx_object``; its
    features are numbers, which that export needs), wired to skl2onnx's inputs and outputs: the classifier's
    label and probabilities (CatBoost's ZipMap left out), the regressor's values."""
    from catboost.utils import convert_to_onnx_object
    from onnx.helper import get_attribute_value

    graph = convert_to_onnx_object(operator.raw_operator.model_)
    node = graph.graph.node[0]  # TreeEnsembleClassifier or TreeEnsembleRegressor; the ZipMap after it is dropped
    if len(graph.graph.initializer) or not node.op_type.startswith("TreeEnsemble"):
        raise ExportError(f"CatBoost's ONNX export made an unexpected graph ({node.op_type})")
    version = {d.domain: d.version for d in graph.opset_import}.get(node.domain)
    container.add_node(node.op_type, [operator.inputs[0].full_name], [o.full_name for o in operator.outputs],
                       op_domain=node.domain, op_version=version, name=scope.get_unique_operator_name("CatBoost"),
                       **{a.name: get_attribute_value(a) for a in node.attribute})


def _register_pair(classifier: type, regressor: type, alias: str, convert: Any) -> None:
    """skl2onnx learns a classifier and a regressor class that ``convert`` converts, as ``<alias>Classifier`` and
    ``<alias>Regressor``; the classifier takes the options the exporter passes (no ZipMap)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (calculate_linear_classifier_output_shapes,
                                                  calculate_linear_regressor_output_shapes)

    update_registered_converter(classifier, f"{alias}Classifier", calculate_linear_classifier_output_shapes, convert,
                                options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    update_registered_converter(regressor, f"{alias}Regressor", calculate_linear_regressor_output_shapes, convert)


def lightgbm_onnx_converters() -> None:
    """skl2onnx learns the LightGBM models: the project's loaded ones and LightGBM's own estimators."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    _register_pair(LightGBMClassifierModel, LightGBMRegressorModel, "TrainflowLightGBM", _convert_lightgbm)
    _register_pair(LGBMClassifier, LGBMRegressor, "LightGbmLGBM", convert_lightgbm)


def catboost_onnx_converters() -> None:
    """skl2onnx learns the project's CatBoost models."""
    _register_pair(CatBoostClassifierModel, CatBoostRegressorModel, "TrainflowCatBoost", _convert_catboost)
