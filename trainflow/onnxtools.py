"""What exporting to ONNX shares between the project's exporter (``trainflow.export``) and the model families
that export themselves (a family's ``onnx_converters`` and ``to_onnx``): the opsets, the one error, skl2onnx's
conversion at those opsets, the graph inputs a schema gives, and the text front ends (a locale ONNX Runtime can
lower-case with, a tokeniser of ONNX operators).

Nothing here runs at import: skl2onnx, onnx and ONNX Runtime are imported by the functions that use them.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from trainflow.errors import ArtifactError
from trainflow.schema import DatasetSchema

ONNX_OPSET = 18  # ai.onnx; ai.onnx.ml 3 (onnxruntime 1.32 runs both; skl2onnx 1.20, onnxmltools 1.16 and torch's
# dynamo exporter write them)
ONNX_ML_OPSET = 3


class ExportError(ArtifactError):
    """A pipeline (or one of its steps) has no ONNX converter; the message names the step."""


def concat_inputs(scope: Any, operator: Any, container: Any) -> str:
    """The operator's inputs as one tensor (a ColumnTransformer hands over one variable per column)."""
    names = [v.full_name for v in operator.inputs]
    if len(names) == 1:
        return names[0]
    out = scope.get_unique_variable_name("concat")
    container.add_node("Concat", names, out, axis=1, name=scope.get_unique_operator_name("Concat"))
    return out


def fitted_parts(est: Any) -> Any:
    """An estimator and every fitted step inside it (Pipeline steps, ColumnTransformer transformers)."""
    yield est
    children = ([s for _, s in est.steps] if isinstance(est, Pipeline)
                else [t[1] for t in getattr(est, "transformers_", [])])
    for child in children:
        if not isinstance(child, str):
            yield from fitted_parts(child)


def same_width_double(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    rows = operator.inputs[0].get_first_dimension()
    width = sum(v.get_second_dimension() or 1 for v in operator.inputs)
    operator.outputs[0].type = DoubleTensorType([rows, width])


def initial_types(schema: DatasetSchema) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    string_columns = {*schema.categorical_features, *schema.text_features}
    return [(c.name, StringTensorType([None, 1]) if c.name in string_columns else DoubleTensorType([None, 1]))
            for c in schema.features]


def merged_encoding(steps: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
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


def convert(model: Any, inputs: list, options: dict | None, what: str,
            ignore: type[Warning] = Warning) -> Any:
    """skl2onnx's ``convert_sklearn`` at the project's opsets (the ModelProto), ``ignore`` warnings silenced, its
    failures as one ``ExportError`` naming ``what``: the model or pipeline part being converted."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.exceptions import MissingShapeCalculator

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ignore)
            return convert_sklearn(model, initial_types=inputs, options=options,
                                   target_opset={"": ONNX_OPSET, "ai.onnx.ml": ONNX_ML_OPSET})
    except MissingShapeCalculator as exc:
        named = re.search(r"<class '([^']+)'>", str(exc))  # "... for type '<class 'module.Name'>'."
        kind = named.group(1).rsplit(".", 1)[-1] if named else str(exc).splitlines()[0]
        raise ExportError(f"no ONNX converter for {kind} (in the {what})") from None
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:
        raise ExportError(f"ONNX export of the {what} failed: {str(exc).splitlines()[0][:300]}") from None


def float32_step() -> Any:
    """A fitted step that casts to float32, put right before a model: its ONNX operators compare in float32 (see
    ``trainflow.export.to_onnx``)."""
    from skl2onnx.sklapi import CastTransformer

    return CastTransformer(dtype=np.float32).fit(np.zeros((1, 1)))


def text_column(schema: DatasetSchema) -> str:
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


def tokeniser(column: str, rules: dict) -> Any:
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
