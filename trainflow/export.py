"""ONNX: the whole serving Pipeline (preprocessing and model) as one graph, and a model that runs it.

``to_onnx`` converts a serving Pipeline with skl2onnx: scikit-learn's steps by its own converters,
LightGBM (native categoricals included) by onnxmltools' converter, and this project's transformers by the
converters registered here (``CategoryCoder``: one ai.onnx.ml ``LabelEncoder`` per column; ``QuantileClipper``:
``Min``/``Max`` against the learned bounds). ``OnnxModel`` runs the graph with ONNX Runtime and has the
native Pipeline's ``predict``/``predict_proba``/``classes_``, taking the same rows (``as_model_input``): the only
Python left on the serving path is handing each column over as a tensor (missing categories as the
``__missing__`` category the coder learned, numbers as float64 with NaN for missing).

Nothing here runs at import: the converters are registered on the first conversion.
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from trainflow.errors import ArtifactError, DataError
from trainflow.features import MISSING, UNKNOWN_CODE, CategoryCoder, Imputer, QuantileClipper
from trainflow.schema import DatasetSchema

ONNX_OPSET = 18  # ai.onnx; ai.onnx.ml 3 (onnxruntime 1.32 runs both; skl2onnx 1.20, onnxmltools 1.16 and torch's
# dynamo exporter write them)
ONNX_ML_OPSET = 3


class ExportError(ArtifactError):
    """A pipeline (or one of its steps) has no ONNX converter; the message names the step."""


def _concat_inputs(scope: Any, operator: Any, container: Any) -> str:
    """The operator's inputs as one tensor (a ColumnTransformer hands over one variable per column)."""
    names = [v.full_name for v in operator.inputs]
    if len(names) == 1:
        return names[0]
    out = scope.get_unique_variable_name("concat")
    container.add_node("Concat", names, out, axis=1, name=scope.get_unique_operator_name("Concat"))
    return out


def _same_width_double(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    rows = operator.inputs[0].get_first_dimension()
    width = sum(v.get_second_dimension() or 1 for v in operator.inputs)
    operator.outputs[0].type = DoubleTensorType([rows, width])


def _convert_category_coder(scope: Any, operator: Any, container: Any) -> None:
    """Per column: a LabelEncoder from the learned categories to their codes (rare ones share a code), any
    other string to -1 (``UNKNOWN_CODE``), as the coder's ``transform`` does."""
    coder: CategoryCoder = operator.raw_operator
    x = _concat_inputs(scope, operator, container)
    columns = []
    for j, (frequent, rare) in enumerate(zip(coder.categories_, coder.infrequent_categories_)):
        index = scope.get_unique_variable_name(f"col{j}_index")
        container.add_initializer(index, 7, [1], [j])  # 7: INT64
        column = scope.get_unique_variable_name(f"col{j}")
        container.add_node("Gather", [x, index], column, axis=1, name=scope.get_unique_operator_name("Gather"))
        keys = [str(k) for k in (*frequent, *rare)]
        values = [float(i) for i in range(len(frequent))] + [float(len(frequent))] * len(rare)
        coded = scope.get_unique_variable_name(f"col{j}_code")
        as_float = scope.get_unique_variable_name(f"col{j}_float")
        # a column seen only missing has no categories: every value is unknown
        container.add_node("LabelEncoder", column, as_float, op_domain="ai.onnx.ml", op_version=2,
                           keys_strings=keys or [MISSING], values_floats=values or [float(UNKNOWN_CODE)],
                           default_float=float(UNKNOWN_CODE), name=scope.get_unique_operator_name("LabelEncoder"))
        container.add_node("Cast", as_float, coded, to=11, name=scope.get_unique_operator_name("Cast"))  # 11: DOUBLE
        columns.append(coded)
    if len(columns) == 1:
        container.add_node("Identity", columns, operator.outputs[0].full_name,
                           name=scope.get_unique_operator_name("Identity"))
    else:
        container.add_node("Concat", columns, operator.outputs[0].full_name, axis=1,
                           name=scope.get_unique_operator_name("Concat"))


def _convert_quantile_clipper(scope: Any, operator: Any, container: Any) -> None:
    clipper: QuantileClipper = operator.raw_operator
    x = _concat_inputs(scope, operator, container)
    lower, upper = scope.get_unique_variable_name("lower"), scope.get_unique_variable_name("upper")
    k = len(clipper.lower_)
    container.add_initializer(lower, 11, [1, k], np.asarray(clipper.lower_, dtype=np.float64).tolist())  # 11: DOUBLE
    container.add_initializer(upper, 11, [1, k], np.asarray(clipper.upper_, dtype=np.float64).tolist())
    capped = scope.get_unique_variable_name("capped")
    container.add_node("Min", [x, upper], capped, name=scope.get_unique_operator_name("Min"))
    container.add_node("Max", [capped, lower], operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Max"))


def _imputer_shape(operator: Any) -> None:
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    if operator.inputs[0].type.__class__.__name__ == "DoubleTensorType":
        _same_width_double(operator)
    else:
        calculate_sklearn_imputer_output_shapes(operator)


def _convert_simple_imputer(scope: Any, operator: Any, container: Any) -> None:
    """Missing numbers replaced by the learned statistics with standard operators (``Where(IsNaN)``), in the
    input's own precision: ONNX Runtime's ai.onnx.ml Imputer takes float32 only."""
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    if operator.inputs[0].type.__class__.__name__ != "DoubleTensorType":
        convert_sklearn_imputer(scope, operator, container)
        return
    imputer = operator.raw_operator
    x = _concat_inputs(scope, operator, container)
    fill = scope.get_unique_variable_name("fill")
    container.add_initializer(fill, 11, [1, len(imputer.statistics_)],
                              np.asarray(imputer.statistics_, dtype=np.float64).tolist())
    missing = scope.get_unique_variable_name("missing")
    container.add_node("IsNaN", x, missing, name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [missing, fill, x], operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Where"))


def _convert_seasonal_naive(scope: Any, operator: Any, container: Any) -> None:
    """The value one season ago: that window column of the input."""
    model = operator.raw_operator
    x = _concat_inputs(scope, operator, container)
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


@functools.cache
def register_converters() -> None:
    """Teach skl2onnx this project's transformers, LightGBM and CatBoost models (once per process)."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from sklearn.impute import SimpleImputer
    from skl2onnx.common.shape_calculator import (calculate_linear_classifier_output_shapes,
                                                  calculate_linear_regressor_output_shapes)

    from skl2onnx.shape_calculators.tfidf_transformer import calculate_sklearn_tfidf_transformer_output_shapes
    from sklearn.feature_extraction.text import TfidfTransformer

    from trainflow.models.boosters import (CatBoostClassifierModel, CatBoostRegressorModel, LightGBMClassifierModel,
                                           LightGBMRegressorModel)
    from trainflow.models.baselines import SeasonalNaive

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    update_registered_converter(CategoryCoder, "TrainflowCategoryCoder", _same_width_double, _convert_category_coder)
    update_registered_converter(QuantileClipper, "TrainflowQuantileClipper", _same_width_double,
                                _convert_quantile_clipper)
    for imputer in (SimpleImputer, Imputer):
        update_registered_converter(imputer, f"Trainflow{imputer.__name__}", _imputer_shape, _convert_simple_imputer,
                                    overwrite=True)
    update_registered_converter(SeasonalNaive, "TrainflowSeasonalNaive", calculate_linear_regressor_output_shapes,
                                _convert_seasonal_naive)
    # the TfidfVectorizer's converter hands its counts to whatever converts TfidfTransformer
    update_registered_converter(TfidfTransformer, "TrainflowTfidfTransformer",
                                calculate_sklearn_tfidf_transformer_output_shapes, _convert_tfidf, overwrite=True)
    update_registered_converter(LightGBMClassifierModel, "TrainflowLightGBMClassifier",
                                calculate_linear_classifier_output_shapes, _convert_lightgbm,
                                options=classifier_options)
    update_registered_converter(LightGBMRegressorModel, "TrainflowLightGBMRegressor",
                                calculate_linear_regressor_output_shapes, _convert_lightgbm)
    update_registered_converter(CatBoostClassifierModel, "TrainflowCatBoostClassifier",
                                calculate_linear_classifier_output_shapes, _convert_catboost,
                                options=classifier_options)
    update_registered_converter(CatBoostRegressorModel, "TrainflowCatBoostRegressor",
                                calculate_linear_regressor_output_shapes, _convert_catboost)
    update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes,
                                convert_lightgbm, options=classifier_options)
    update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes,
                                convert_lightgbm)


def _initial_types(schema: DatasetSchema) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    string_columns = {*schema.categorical_features, *schema.text_features}
    return [(c.name, StringTensorType([None, 1]) if c.name in string_columns else DoubleTensorType([None, 1]))
            for c in schema.features]


def _merged_encoding(steps: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The steps with a one-hot ``encode`` step folded into the preprocessor, giving the same columns in the
    same order (one-hot codes first, then the other columns as they were). In the graph the preprocessor's
    output is one tensor whose columns have no names and, while skl2onnx parses, no known width, so a second
    ColumnTransformer cannot pick columns from it; one ColumnTransformer picks them from the inputs."""
    import copy

    from sklearn.compose import ColumnTransformer

    if len(steps) < 3 or not isinstance(steps[1][1], ColumnTransformer):
        return steps
    pre, encode = steps[0][1], steps[1][1]
    chosen = [t for t in encode.transformers_ if t[0] != "remainder"]
    # the remainder: 'passthrough', or the identity FunctionTransformer scikit-learn puts in its place once fitted
    rest = [t for t in encode.transformers_ if t[0] == "remainder" and not (isinstance(t[1], str) and t[1] == "drop")]
    cat = [t for t in pre.transformers_ if t[0] == "cat"]
    if (len(chosen) != 1 or not cat or list(chosen[0][2]) != list(cat[0][2])
            or any(not (t[1] == "passthrough" if isinstance(t[1], str) else getattr(t[1], "func", 0) is None)
                   for t in rest)):
        raise ExportError("no ONNX export for an encoding step other than one-hot of the categorical columns")
    merged = copy.copy(pre)
    merged.transformers_ = [("cat", Pipeline([("codes", cat[0][1]), ("onehot", chosen[0][1])]), cat[0][2]),
                            *[t for t in pre.transformers_ if t[0] not in ("cat", "remainder")]]
    return [(steps[0][0], merged), *steps[2:]]


def _convert(model: Any, initial_types: list, options: dict | None, what: str,
             ignore: type[Warning] = Warning) -> Any:
    """skl2onnx's ``convert_sklearn`` at the project's opsets (the ModelProto), ``ignore`` warnings silenced, its
    failures as one ``ExportError`` naming ``what``: the model or pipeline part being converted."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.exceptions import MissingShapeCalculator

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ignore)
            return convert_sklearn(model, initial_types=initial_types, options=options,
                                   target_opset={"": ONNX_OPSET, "ai.onnx.ml": ONNX_ML_OPSET})
    except MissingShapeCalculator as exc:
        named = re.search(r"<class '([^']+)'>", str(exc))  # "... for type '<class 'module.Name'>'."
        kind = named.group(1).rsplit(".", 1)[-1] if named else str(exc).splitlines()[0]
        raise ExportError(f"no ONNX converter for {kind} (in the {what})") from None
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:
        raise ExportError(f"ONNX export of the {what} failed: {str(exc).splitlines()[0][:300]}") from None


EXPORT_SECONDS_PER_NODE = 1e-5  # skl2onnx walks a scikit-learn tree node by node: 18 s for 2.1M nodes (a forest
# of 85 trees on 54k rows, the quality benchmark's diamonds); LightGBM and CatBoost export in their own code, fast


def export_seconds(model: Any) -> float:
    """About how long ``to_onnx`` takes for ``model``: its scikit-learn trees' nodes (every member of an ensemble,
    every step of a Pipeline) times ``EXPORT_SECONDS_PER_NODE``; other models count as free."""
    return _tree_nodes(model) * EXPORT_SECONDS_PER_NODE


def _tree_nodes(model: Any) -> int:
    """The scikit-learn tree nodes in ``model``: its trees, its forests' trees, its ensemble members'."""
    from trainflow.models.bundle import fitted_parts
    from trainflow.models.ensemble import WeightedEnsemble

    nodes = 0
    for part in fitted_parts(model):
        if isinstance(part, WeightedEnsemble):
            nodes += sum(_tree_nodes(m) for m in part.members)
        for tree in [part, *getattr(part, "estimators_", [])]:
            nodes += getattr(getattr(tree, "tree_", None), "node_count", 0)
    return nodes


def to_onnx(pipeline: Pipeline, schema: DatasetSchema) -> bytes:
    """The serving Pipeline as one ONNX graph: one input per feature column (strings for categories,
    float64 for numbers), outputs ``label`` and ``probabilities`` (classifiers) or ``variable`` (regressors).

    Preprocessing runs in float64, as scikit-learn does, and its result is cast to float32 right before the
    model, whose ONNX operators compare in float32: a feature value equal to a split threshold (LightGBM puts
    thresholds on training values) then rounds the same way as the threshold and takes the same branch.
    Computing the preprocessing in float32 instead moved such values by one unit in the last place, to the
    other side of the threshold (seen: 0.0008 on one Adult row).

    Raises:
        ExportError: A step has no converter (its type is named).
    """
    register_converters()
    from skl2onnx.sklapi import CastTransformer

    from trainflow.models.ensemble import WeightedEnsemble

    if isinstance(pipeline.steps[-1][1], WeightedEnsemble):
        return _ensemble_to_onnx(pipeline, schema)
    if hasattr(pipeline.steps[-1][1], "export_module"):
        return _network_to_onnx(pipeline, schema)
    if schema.text_features:
        return _text_pipeline_to_onnx(pipeline, schema)
    steps = [(name, step) for name, step in pipeline.steps if not (isinstance(step, str) and step == "passthrough")]
    steps = _merged_encoding(steps)
    model = steps[-1][1]
    plain = Pipeline([*steps[:-1], ("float32", CastTransformer(dtype=np.float32).fit(np.zeros((1, 1)))), steps[-1]])
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    # FutureWarning: skl2onnx reads SVC's probA_/probB_, deprecated in scikit-learn 1.9
    return _convert(plain, _initial_types(schema), options, f"{type(model).__name__} pipeline",
                    FutureWarning).SerializeToString()


def _text_column(schema: DatasetSchema) -> str:
    """The one feature column of a text dataset (the preprocessor passes it through untouched)."""
    if len(schema.features) != 1 or not schema.text_features:
        raise ExportError("no ONNX export for a text column beside other feature columns")
    return schema.text_features[0]


SKLEARN_TOKENS = r"(?u)\b\w\w+\b"  # TfidfVectorizer's default token_pattern
RE2_TOKENS = r"[\pL\pN_]{2,}"  # the same tokens in RE2: runs of two or more letters, digits or underscores


@functools.cache
def lowercase_locale() -> str:
    """A locale ONNX Runtime's StringNormalizer can lower-case with on this machine (its default, en_US.UTF-8,
    is often not installed; C.UTF-8 lower-cases every alphabet as Python does, C only ASCII)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    for locale in ("C.UTF-8", "C.utf8", "en_US.UTF-8", "C"):
        node = helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="LOWER", locale=locale)
        graph = helper.make_graph([node], "probe", [helper.make_tensor_value_info("x", TensorProto.STRING, [None])],
                                  [helper.make_tensor_value_info("y", TensorProto.STRING, [None])])
        try:
            ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
                                 .SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001, S112 - onnxruntime's own error for a locale it cannot build
            continue
        return locale
    return "C"


def _text_pipeline_to_onnx(pipeline: Pipeline, schema: DatasetSchema) -> bytes:
    """A text model's Pipeline (``tfidf_logistic``): the model's own steps on the text column, TF-IDF through
    skl2onnx's tokeniser (RE2 in ONNX Runtime) with scikit-learn's default token pattern written for RE2."""
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer

    from trainflow.models.bundle import fitted_parts

    text = _text_column(schema)
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
    return _convert(model, [(text, StringTensorType([None, 1]))], options,
                    f"{type(parts[-1]).__name__} text pipeline").SerializeToString()


def _tokeniser(column: str, rules: dict) -> Any:
    """A graph from a text column ([rows, 1] strings) to token ids ([rows, tokens] int64) by a network's
    ``token_rules``: lower-case (StringNormalizer), the pattern's matches (com.microsoft Tokenizer, RE2), the
    vocabulary's ids (LabelEncoder; padding 0, any other word 1), at most ``max_tokens`` columns and at least one
    (a batch without any token)."""
    from onnx import TensorProto, helper

    pad = "<pad>"  # never a token: no token pattern of the networks matches "<"
    words = list(rules["vocabulary"])
    nodes = [
        helper.make_node("Squeeze", [column, "tok_axis1"], ["tok_flat"]),
        helper.make_node("StringNormalizer", ["tok_flat"], ["tok_lower"], case_change_action="LOWER",
                         locale=lowercase_locale()),
        helper.make_node("Tokenizer", ["tok_lower"], ["tok_words"], domain="com.microsoft", mark=0, mincharnum=1,
                         pad_value=pad, tokenexp=rules["pattern"]),
        helper.make_node("LabelEncoder", ["tok_words"], ["tok_ids"], domain="ai.onnx.ml",
                         keys_strings=[pad, *words], values_int64s=[0, *range(2, len(words) + 2)], default_int64=1),
        helper.make_node("Shape", [column], ["tok_shape"], start=0, end=1),
        helper.make_node("Concat", ["tok_shape", "tok_axis1"], ["tok_pad_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["tok_pad_shape"], ["tok_pad"],
                         value=helper.make_tensor("zero", TensorProto.INT64, [1], [0])),
        helper.make_node("Concat", ["tok_ids", "tok_pad"], ["tok_padded"], axis=1),
        helper.make_node("Slice", ["tok_padded", "tok_start", "tok_stop", "tok_axis1"], ["token_ids"]),
    ]
    constants = [helper.make_tensor("tok_axis1", TensorProto.INT64, [1], [1]),
                 helper.make_tensor("tok_start", TensorProto.INT64, [1], [0]),
                 helper.make_tensor("tok_stop", TensorProto.INT64, [1], [int(rules["max_tokens"])])]
    text = helper.make_tensor_value_info(column, TensorProto.STRING, [None, 1])
    graph = helper.make_graph(nodes, "tokeniser", [text],
                              [helper.make_tensor_value_info("token_ids", TensorProto.INT64, [None, None])], constants,
                              # the Tokenizer's output type, which onnx's shape inference cannot know (a contrib
                              # operator) and without which it crashes on the LabelEncoder (onnx 1.23, SIGSEGV)
                              value_info=[helper.make_tensor_value_info("tok_words", TensorProto.STRING,
                                                                        [None, None])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                   helper.make_opsetid("ai.onnx.ml", ONNX_ML_OPSET),
                                                   helper.make_opsetid("com.microsoft", 1)])


def _network_to_onnx(pipeline: Pipeline, schema: DatasetSchema) -> bytes:
    """A torch network's Pipeline as one graph: a front that does what the network's Python input code does
    before torch (the preprocessing through skl2onnx, ending in the float32 input columns; for a text network,
    a tokeniser of ONNX operators, ending in token ids); the network through ``torch.onnx.export`` (the dynamo
    exporter) of its ``export_module``, which does the rest in torch (embedding codes, standardisation); the two
    joined on that tensor."""
    import io
    import logging

    import onnx
    import torch
    from skl2onnx.sklapi import CastTransformer

    net = pipeline.steps[-1][1]
    module = net.export_module()
    if module is None:
        raise ExportError(f"no ONNX export for {type(net).__name__}")
    rows = torch.export.Dim("rows")
    if net.export_input == "token_ids":
        rules = net.token_rules()
        pre = _tokeniser(_text_column(schema), rules)
        example = torch.ones((2, min(4, rules["max_tokens"])), dtype=torch.int64)
        dims = {0: rows, 1: torch.export.Dim("tokens", min=1, max=rules["max_tokens"])}
    else:
        kept = [(n, s) for n, s in pipeline.steps[:-1] if not (isinstance(s, str) and s == "passthrough")]
        steps = _merged_encoding([*kept, ("model", None)])[:-1]  # merging looks for a step after the encoding
        front = Pipeline([*steps, ("float32", CastTransformer(dtype=np.float32).fit(np.zeros((1, 1))))])
        pre = _convert(front, _initial_types(schema), None, f"preprocessing of the {type(net).__name__} pipeline")
        example = torch.zeros((2, len(net.feature_names_in_)), dtype=torch.float32)
        dims = {0: rows}
    outputs = ["label", "probabilities"] if is_classifier(net) else ["variable"]
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, input_names=["features"],
                                        output_names=outputs, dynamic_shapes=(dims,), opset_version=ONNX_OPSET,
                                        verbose=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; the report names it
        raise ExportError(f"torch.onnx.export of {type(net).__name__} failed: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]}") from None
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    body = program.model_proto
    pre = onnx.compose.add_prefix(pre, "pre_", rename_inputs=False)  # its names never meet the network's
    body.ir_version = pre.ir_version = max(pre.ir_version, body.ir_version)
    imports = {o.domain: o.version for o in [*pre.opset_import, *body.opset_import]}
    for m in (pre, body):
        del m.opset_import[:]
        m.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in imports.items())
    merged = onnx.compose.merge_models(pre, body, io_map=[(pre.graph.output[0].name, "features")])
    del merged.opset_import[:]  # merge_models lists each model's imports: one per domain
    merged.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in imports.items())
    onnx.checker.check_model(merged)
    return merged.SerializeToString()


def _ensemble_to_onnx(pipeline: Pipeline, schema: DatasetSchema) -> bytes:
    """A weighted ensemble as one graph: each member's whole pipeline (the shared preprocessor, its encoding and
    model) converted on its own, its names prefixed, all reading the same inputs; then the weighted sum of their
    probabilities (or values) and, for classifiers, the label of the largest probability."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ensemble = pipeline.steps[-1][1]
    classifier = is_classifier(ensemble)
    classes = [str(c) for c in ensemble.classes_] if classifier else None
    graphs = []
    for i, member in enumerate(ensemble.members):
        if classifier and [str(c) for c in member.classes_] != classes:
            raise ExportError(f"ensemble member {ensemble.names[i]} orders its classes differently")
        full = Pipeline([*pipeline.steps[:-1], *member.steps])
        graphs.append(onnx.compose.add_prefix(onnx.load_from_string(to_onnx(full, schema)), f"m{i}_",
                                              rename_inputs=False))
    first = graphs[0].graph
    nodes, initializers = [], []
    for g in graphs:
        nodes += list(g.graph.node)
        initializers += list(g.graph.initializer)
    out_index = 1 if classifier else 0  # probabilities, or the predicted values
    weighted = []
    for i, (g, weight) in enumerate(zip(graphs, ensemble.weights)):
        w = f"ens_w{i}"
        initializers.append(numpy_helper.from_array(np.asarray(weight, dtype=np.float32), w))
        weighted.append(f"ens_weighted{i}")
        nodes.append(helper.make_node("Mul", [g.graph.output[out_index].name, w], [weighted[-1]], name=f"ens_mul{i}"))
    if classifier:
        nodes.append(helper.make_node("Sum", weighted, ["probabilities"], name="ens_sum"))
        nodes.append(helper.make_node("ArgMax", ["probabilities"], ["ens_argmax"], axis=1, keepdims=0,
                                      name="ens_argmax"))
        initializers.append(numpy_helper.from_array(np.asarray(classes, dtype=object), "ens_classes"))
        nodes.append(helper.make_node("Gather", ["ens_classes", "ens_argmax"], ["label"], axis=0, name="ens_label"))
        outputs = [helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
                   helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(classes)])]
    else:
        nodes.append(helper.make_node("Sum", weighted, ["variable"], name="ens_sum"))
        outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    graph = helper.make_graph(nodes, "weighted_ensemble", list(first.input), outputs, initializers)
    model = helper.make_model(graph, opset_imports=list(graphs[0].opset_import), producer_name="trainflow")
    model.ir_version = graphs[0].ir_version
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OnnxModel:
    """A serving Pipeline's ONNX graph under ONNX Runtime, with the Pipeline's prediction API.

    Args:
        data: The ``.onnx`` file's bytes.
        features: The feature columns, in the order of the graph's inputs (``to_onnx`` writes the schema's).
        classes: The class labels in the order of the probability columns (None for regression).
        categories: Per categorical column, the categories training saw (``known_categories``), for the
            same unseen-category check and report the native Pipeline gets.
        dataset: The dataset's name, for error messages.
        threads: ONNX Runtime intra-op threads (None: ``trainflow.threads``' choice for a spinning pool).
    """

    def __init__(self, data: bytes, features: list[str], classes: list | None = None,
                 categories: dict[str, list[str]] | None = None, dataset: str = "rows to score", threads: int | None = None):
        import onnxruntime as ort

        from trainflow.threads import fit_threads

        options = ort.SessionOptions()
        options.intra_op_num_threads = fit_threads(threads, barrier=True)
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors for bad files
            raise ArtifactError(f"not a loadable ONNX model: {str(exc).splitlines()[0][:200]}") from None
        self.data = data
        self.classes = None if classes is None else list(classes)
        self.dataset = dataset
        self.known_categories = {k: set(v) for k, v in (categories or {}).items()}
        inputs = self.session.get_inputs()  # one per feature column, in the schema's order (names sanitised)
        if len(inputs) != len(features):
            raise ArtifactError(f"the ONNX model has {len(inputs)} inputs for {len(features)} feature columns")
        self.inputs = [(column, i.name, i.type) for column, i in zip(features, inputs)]
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def _require_inputs(self, present: Collection[str]) -> None:
        missing = [column for column, _, _ in self.inputs if column not in present]
        if missing:
            raise DataError(self.dataset, f"feature column(s) {missing} missing", column=missing[0],
                            rule="expect_column_to_exist")

    def _not_numbers(self, column: str) -> DataError:
        return DataError(self.dataset, "values that are not numbers in a numeric column", column=column,
                         rule="expect_column_values_to_be_of_type")

    def feeds(self, x: pd.DataFrame) -> dict[str, np.ndarray]:
        """One column tensor per input: strings (missing as ``__missing__``) or float64 (missing as NaN)."""
        self._require_inputs(x.columns)
        out = {}
        for column_name, name, kind in self.inputs:
            column = x[column_name]
            if kind == "tensor(string)":
                values = column.astype("str").fillna(MISSING).to_numpy(dtype=object)
            else:
                try:
                    values = pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)
                except (ValueError, TypeError):
                    raise self._not_numbers(column_name) from None
            out[name] = values.reshape(-1, 1)
        return out

    def record_feeds(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """``feeds`` for rows given as mappings of plain Python values (online scoring's JSON rows, already
        typed by its row model): the same tensors, built without a DataFrame, whose per-call costs made most of
        scoring one row."""
        for row in rows:
            self._require_inputs(row)
        out = {}
        for column, name, kind in self.inputs:
            values = [row.get(column) for row in rows]
            if kind == "tensor(string)":
                tensor = np.array([MISSING if v is None else str(v) for v in values], dtype=object)
            else:
                try:
                    tensor = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
                except (ValueError, TypeError):
                    raise self._not_numbers(column) from None
            out[name] = tensor.reshape(-1, 1)
        return out

    def _run(self, x: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        return self.session.run(None, self.feeds(x) if isinstance(x, pd.DataFrame) else self.record_feeds(x))

    def predict_proba(self, x: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        probabilities = np.asarray(self._run(x)[1], dtype=np.float64)
        return probabilities / probabilities.sum(axis=1, keepdims=True)  # float32 sums are 1 only to ~1e-7

    def predict(self, x: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        result = self._run(x)
        if self.classes is None:
            return np.asarray(result[0], dtype=np.float64).ravel()
        return self.classes_[np.argmax(result[1], axis=1)]


SERVING_META = "serving.json"


def variant_files(model: Any, meta: dict) -> dict[str, bytes]:
    """A variant's files: ``model.onnx`` for an ONNX variant, the native bundle's files otherwise, and
    ``serving.json`` (variant name, runtime, feature order, classes, known categories)."""
    import json

    from trainflow.models.bundle import bundle_files

    if isinstance(model, OnnxModel):
        files = {"model.onnx": model.data}
    else:
        files = bundle_files(model, {k: v for k, v in meta.items() if k in ("family", "task", "label", "dataset")})
    files[SERVING_META] = json.dumps(meta, indent=2, default=str).encode()
    return files


def load_variant(files: dict[str, bytes]) -> tuple[Any, dict]:
    """The model of a variant's files (``variant_files``): an ``OnnxModel`` or a native Pipeline."""
    import json

    from trainflow.models.bundle import load_bundle

    meta = json.loads(files[SERVING_META])
    if meta["runtime"] == "onnx":
        return OnnxModel(files["model.onnx"], meta["features"], meta.get("classes"), meta.get("categories"),
                         meta.get("dataset", "rows to score")), meta
    return load_bundle({k: v for k, v in files.items() if k != SERVING_META})[0], meta
