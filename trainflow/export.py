"""ONNX: the whole serving Pipeline (preprocessing and model) as one graph, and a model that runs it.

``to_onnx`` converts a serving Pipeline with skl2onnx: scikit-learn's steps by its own converters, a family's
own estimators by the converters the family declares (``Family.onnx_converters``; a family that exports itself,
``Family.to_onnx``, makes its whole graph), and this project's preprocessing by the converters registered here
(``CategoryCoder``: one ai.onnx.ml ``LabelEncoder`` per column; ``QuantileClipper``: ``Min``/``Max`` against the
learned bounds). ``OnnxModel`` runs the graph with ONNX Runtime and has the
native Pipeline's ``predict``/``predict_proba``/``classes_``, taking the same rows (``as_model_input``): the only
Python left on the serving path is handing each column over as a tensor (missing categories as the
``__missing__`` category the coder learned, numbers as float64 with NaN for missing).

Nothing here runs at import: the converters are registered on the first conversion.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from trainflow.errors import ArtifactError, DataError
from trainflow.features import MISSING, UNKNOWN_CODE, CategoryCoder, Imputer, QuantileClipper
from trainflow.onnxtools import (ExportError, concat_inputs, convert, fitted_parts, float32_step, initial_types,
                                 merged_encoding, same_width_double)
from trainflow.schema import DatasetSchema


def _convert_category_coder(scope: Any, operator: Any, container: Any) -> None:
    """Per column: a LabelEncoder from the learned categories to their codes (rare ones share a code), any
    other string to -1 (``UNKNOWN_CODE``), as the coder's ``transform`` does."""
    coder: CategoryCoder = operator.raw_operator
    x = concat_inputs(scope, operator, container)
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
    x = concat_inputs(scope, operator, container)
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
        same_width_double(operator)
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
    x = concat_inputs(scope, operator, container)
    fill = scope.get_unique_variable_name("fill")
    container.add_initializer(fill, 11, [1, len(imputer.statistics_)],
                              np.asarray(imputer.statistics_, dtype=np.float64).tolist())
    missing = scope.get_unique_variable_name("missing")
    container.add_node("IsNaN", x, missing, name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [missing, fill, x], operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Where"))


_REGISTERED: set[str] = set()  # the families whose converters skl2onnx knows in this process


@functools.cache
def _preprocessing_converters() -> None:
    """Teach skl2onnx this project's preprocessing steps (once per process)."""
    from skl2onnx import update_registered_converter
    from sklearn.impute import SimpleImputer

    update_registered_converter(CategoryCoder, "TrainflowCategoryCoder", same_width_double, _convert_category_coder)
    update_registered_converter(QuantileClipper, "TrainflowQuantileClipper", same_width_double,
                                _convert_quantile_clipper)
    for imputer in (SimpleImputer, Imputer):
        update_registered_converter(imputer, f"Trainflow{imputer.__name__}", _imputer_shape, _convert_simple_imputer,
                                    overwrite=True)


def register_converters() -> None:
    """Teach skl2onnx this project's preprocessing steps and every family's own estimators
    (``Family.onnx_converters``), once per process (and once for a family added later)."""
    from trainflow.models.families import FAMILIES

    _preprocessing_converters()
    for name, family in FAMILIES.items():
        if name not in _REGISTERED and family.onnx_converters is not None:
            family.onnx_converters()
        _REGISTERED.add(name)


EXPORT_SECONDS_PER_NODE = 1e-5  # skl2onnx walks a scikit-learn tree node by node: 18 s for 2.1M nodes (a forest
# of 85 trees on 54k rows, the quality benchmark's diamonds); LightGBM and CatBoost export in their own code, fast


def export_seconds(model: Any) -> float:
    """About how long ``to_onnx`` takes for ``model``: its scikit-learn trees' nodes (every member of an ensemble,
    every step of a Pipeline) times ``EXPORT_SECONDS_PER_NODE``; other models count as free."""
    return _tree_nodes(model) * EXPORT_SECONDS_PER_NODE


def _tree_nodes(model: Any) -> int:
    """The scikit-learn tree nodes in ``model``: its trees, its forests' trees, its ensemble members'."""
    nodes = 0
    for part in fitted_parts(model):
        nodes += sum(_tree_nodes(m) for m in getattr(part, "members", None) or [])  # an ensemble's
        for tree in [part, *getattr(part, "estimators_", [])]:
            nodes += getattr(getattr(tree, "tree_", None), "node_count", 0)
    return nodes


def to_onnx(pipeline: Pipeline, schema: DatasetSchema, family: str) -> bytes:
    """The serving Pipeline of a model of ``family`` as one ONNX graph: one input per feature column (strings for
    categories, float64 for numbers), outputs ``label`` and ``probabilities`` (classifiers) or ``variable``
    (regressors). A family that exports itself (``Family.to_onnx``: networks, the ensemble, the text baseline)
    makes the graph; otherwise skl2onnx converts the Pipeline.

    Preprocessing runs in float64, as scikit-learn does, and its result is cast to float32 right before the
    model, whose ONNX operators compare in float32: a feature value equal to a split threshold (LightGBM puts
    thresholds on training values) then rounds the same way as the threshold and takes the same branch.
    Computing the preprocessing in float32 instead moved such values by one unit in the last place, to the
    other side of the threshold (seen: 0.0008 on one Adult row).

    Raises:
        ExportError: A step has no converter (its type is named), or the family is unknown.
    """
    from trainflow.models.families import FAMILIES

    if family not in FAMILIES:
        raise ExportError(f"no ONNX export for family {family!r}: not a family of this project")
    register_converters()
    owner = FAMILIES[family]
    model = pipeline.steps[-1][1]
    # a model held in another family's format is exported as that family's (as trainflow.models.bundle saves it):
    # a boosted family's bag of fold models is an ensemble
    held = next((f.model_format for f in FAMILIES.values()
                 if f.model_format is not None and f.model_format.claims(model)), None)
    if held is not None and owner.model_format is not held:
        owner = next(f for f in FAMILIES.values() if f.model_format is held)
    if owner.to_onnx is not None:
        # a nested model named by no family is one of a bag's fold models ("lightgbm fold 1"): the family's own
        return owner.to_onnx(pipeline, schema, lambda nested, of: to_onnx(nested, schema, of if of in FAMILIES
                                                                          else family))
    steps = [(name, step) for name, step in pipeline.steps if not (isinstance(step, str) and step == "passthrough")]
    steps = merged_encoding(steps)
    model = steps[-1][1]
    plain = Pipeline([*steps[:-1], ("float32", float32_step()), steps[-1]])
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    # FutureWarning: skl2onnx reads SVC's probA_/probB_, deprecated in scikit-learn 1.9
    return convert(plain, initial_types(schema), options, f"{type(model).__name__} pipeline",
                   FutureWarning).SerializeToString()


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
