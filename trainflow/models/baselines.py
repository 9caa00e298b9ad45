"""Baselines the networks are measured against, trained and scored by the same flow.

- ``seasonal_naive``: a forecast that repeats the value one season ago (``lag_{season}``);
- ``tfidf_logistic``: TF-IDF of the text column (words and word pairs) and logistic regression.

Both export to ONNX: the forecast as a ``Gather`` of its window column, the text pipeline through skl2onnx's
tokeniser (RE2 in ONNX Runtime) and TF-IDF as scikit-learn computes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, is_classifier

from trainflow.errors import TrainflowError
from trainflow.models.family import BuildRequest, Family, param
from trainflow.onnxtools import (RE2_TOKENS, SKLEARN_TOKENS, ExportError, concat_inputs, convert, fitted_parts,
                                 lowercase_locale, text_column)

if TYPE_CHECKING:
    from trainflow.schema import DatasetSchema


class SeasonalNaive(RegressorMixin, BaseEstimator):
    """Predicts the value of the same step one season earlier.

    Args:
        lag_column: The window column holding that value (``lag_12`` for monthly data).
    """

    def __init__(self, lag_column: str = "lag_12"):
        self.lag_column = lag_column

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> "SeasonalNaive":  # noqa: N803
        if self.lag_column not in X.columns:
            raise ValueError(f"seasonal naive needs the column {self.lag_column}; the window is shorter than a season")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return X[self.lag_column].to_numpy(dtype=float)


def tfidf_logistic(text_column: str, seed: int, **params: object):  # noqa: ANN201
    """TF-IDF (uni- and bigrams, sublinear tf) of one text column, then logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=100_000)
    return Pipeline([("tfidf", ColumnTransformer([("text", vec, text_column)])),
                     ("logistic", LogisticRegression(**{"C": 4.0, "max_iter": 3000, "random_state": seed, **params}))])


def build_seasonal_naive(r: BuildRequest) -> SeasonalNaive:
    if r.schema is None or r.schema.series is None:
        raise TrainflowError("the seasonal_naive family needs a time series (a schema with a series block)")
    return SeasonalNaive(lag_column=r.schema.series.lag(r.schema.series.season))


def build_tfidf_logistic(r: BuildRequest):  # noqa: ANN201
    if r.schema is None or not r.schema.text_features:
        raise TrainflowError("the tfidf_logistic family needs a text column")
    return tfidf_logistic(r.schema.text_features[0], r.seed, **r.params)


def _convert_seasonal_naive(scope: Any, operator: Any, container: Any) -> None:
    """The value one season ago: that window column of the input."""
    model = operator.raw_operator
    x = concat_inputs(scope, operator, container)
    index = scope.get_unique_variable_name("season_index")
    container.add_initializer(index, 7, [1], [list(model.feature_names_in_).index(model.lag_column)])  # 7: INT64
    container.add_node("Gather", [x, index], operator.outputs[0].full_name, axis=1,
                       name=scope.get_unique_operator_name("Gather"))


def _convert_tfidf(scope: Any, operator: Any, container: Any) -> None:
    """Term counts to TF-IDF as scikit-learn computes it: ``1 + log(tf)`` for the counts above zero when
    ``sublinear_tf`` (skl2onnx 1.20 writes ``log(tf + 1)`` for every count), times the idf, then each row
    divided by its L2 (or L1) norm unless that is zero."""
    from skl2onnx.common.data_types import guess_numpy_type, guess_proto_type

    op = operator.raw_operator
    dtype = np.float64 if guess_numpy_type(operator.inputs[0].type) == np.float64 else np.float32
    proto = 11 if dtype == np.float64 else 1  # DOUBLE, FLOAT
    if guess_proto_type(operator.inputs[0].type) not in (1, 11):
        raise ExportError(f"TF-IDF of {operator.inputs[0].type} counts")
    if op.norm not in (None, "l1", "l2"):
        raise ExportError(f"TF-IDF with norm {op.norm!r}")

    def name(what: str) -> str:
        return scope.get_unique_variable_name(what)

    def node(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = name(kind.lower())
        container.add_node(kind, inputs, out, name=scope.get_unique_operator_name(kind), **attrs)
        return out

    def constant(what: str, values: np.ndarray) -> str:
        out = name(what)
        container.add_initializer(out, proto, list(values.shape), values.astype(dtype).ravel().tolist())
        return out

    y = operator.inputs[0].full_name
    zero, one = constant("zero", np.zeros(1)), constant("one", np.ones(1))
    if op.sublinear_tf:
        y = node("Where", [node("Greater", [y, zero]), node("Add", [node("Log", [y]), one]), y])  # y is 0 elsewhere
    if op.use_idf:
        y = node("Mul", [y, constant("idf", np.asarray(op.idf_, dtype=np.float64))])
    if op.norm is not None:
        axes = name("axes")
        container.add_initializer(axes, 7, [1], [1])
        norm = node("ReduceL2" if op.norm == "l2" else "ReduceL1", [y, axes], keepdims=1)
        y = node("Div", [y, node("Where", [node("Equal", [norm, zero]), one, norm])])
    container.add_node("Identity", [y], operator.outputs[0].full_name, name=scope.get_unique_operator_name("Identity"))


def _seasonal_naive_converter() -> None:
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    update_registered_converter(SeasonalNaive, "TrainflowSeasonalNaive", calculate_linear_regressor_output_shapes,
                                _convert_seasonal_naive)


def _tfidf_converter() -> None:
    """skl2onnx's TfidfVectorizer converter hands its counts to whatever converts TfidfTransformer: this one."""
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.tfidf_transformer import calculate_sklearn_tfidf_transformer_output_shapes
    from sklearn.feature_extraction.text import TfidfTransformer

    update_registered_converter(TfidfTransformer, "TrainflowTfidfTransformer",
                                calculate_sklearn_tfidf_transformer_output_shapes, _convert_tfidf, overwrite=True)


def _text_pipeline_to_onnx(pipeline: Any, schema: DatasetSchema, _: Any) -> bytes:
    """A text model's Pipeline (``tfidf_logistic``): the model's own steps on the text column, TF-IDF through
    skl2onnx's tokeniser (RE2 in ONNX Runtime) with scikit-learn's default token pattern written for RE2."""
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = text_column(schema)
    model = pipeline.steps[-1][1]
    parts = list(fitted_parts(model))
    options: dict[int, dict] = {}
    for vec in (p for p in parts if isinstance(p, TfidfVectorizer)):
        if (vec.analyzer != "word" or vec.token_pattern != SKLEARN_TOKENS or vec.tokenizer is not None
                or vec.preprocessor is not None):
            raise ExportError("no ONNX export for a TfidfVectorizer with its own tokens (only the default pattern)")
        options[id(vec)] = {"tokenexp": RE2_TOKENS, "locale": lowercase_locale()}
    if is_classifier(parts[-1]):
        options[id(parts[-1])] = {"zipmap": False}
    return convert(model, [(text, StringTensorType([None, 1]))], options,
                   f"{type(parts[-1]).__name__} text pipeline").SerializeToString()


SEASONAL_NAIVE = Family(build_seasonal_naive, cost=0.1, skops_types=frozenset({f"{__name__}.SeasonalNaive"}),
                        onnx_converters=_seasonal_naive_converter)
TFIDF_LOGISTIC = Family(build_tfidf_logistic, cost=0.5, search_space={"C": param("float", 0.1, 100.0, log=True)},
                        onnx_converters=_tfidf_converter, to_onnx=_text_pipeline_to_onnx)
