"""The ``ensemble`` family: a weighted average of the other families, weights by greedy forward selection.

Caruana et al., "Ensemble selection from libraries of models" (ICML 2004), as AutoGluon's WeightedEnsemble
and auto-sklearn do: start from nothing, add (with replacement) the member whose addition scores best on
the out-of-fold predictions, for a fixed number of rounds; a member's weight is how often it was added. The
ensemble kept is the one of the best round, so it is never worse on those predictions than the best single
family. It is fitted from the other families' cross-validation in the train stage, not by ``fit``.

Weights chosen on the predictions they are then scored on flatter the ensemble, so its score for model
selection is nested (``held_out_blend``): each fold's rows are blended with the weights chosen on the other
folds' rows, and the ensemble is chosen over the best single family only if that blend scores better.

``WeightedEnsembleClassifier`` / ``WeightedEnsembleRegressor`` hold the refitted member pipelines (encoding
step and model) and average their probabilities or predictions; inside the saved Pipeline they are stored
member by member in the members' own safe formats (``trainflow.models.bundle``), never pickled. In ONNX the
ensemble is one graph: its members' graphs side by side on the same inputs, then their weighted sum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.pipeline import Pipeline

from trainflow.errors import TrainflowError
from trainflow.models.family import BuildRequest, Family, ModelFormat, model_classes
from trainflow.onnxtools import ExportError

if TYPE_CHECKING:
    from trainflow.schema import DatasetSchema

ROUNDS = 25  # AutoGluon's default ensemble size


def greedy_weights(predictions: dict[str, np.ndarray], metric: Callable[[np.ndarray], float], maximize: bool,
                   rounds: int = ROUNDS) -> tuple[dict[str, float], float]:
    """Caruana's forward selection with replacement over out-of-fold predictions.

    Args:
        predictions: Member name -> its out-of-fold predictions (probabilities or values), same rows for all.
        metric: Scores one set of predictions.
        maximize: Whether a larger metric is better.
        rounds: Additions to make.

    Returns:
        ``(weights, score)`` of the best round: member name -> weight (summing to 1, members never added
        left out) and that ensemble's score. Ties go to the member listed first.
    """
    counts: Counter[str] = Counter()
    total: np.ndarray | None = None
    best: tuple[float, dict[str, float]] | None = None
    for n in range(1, rounds + 1):
        round_best: tuple[float, str] | None = None
        for name, pred in predictions.items():
            value = metric(pred if total is None else (total + pred) / n)
            if round_best is None or (value > round_best[0] if maximize else value < round_best[0]):
                round_best = (value, name)
        value, name = round_best
        counts[name] += 1
        total = predictions[name].copy() if total is None else total + predictions[name]
        if best is None or (value > best[0] if maximize else value < best[0]):
            best = (value, {k: c / n for k, c in counts.items()})
    return best[1], best[0]


def held_out_blend(predictions: dict[str, np.ndarray], folds: np.ndarray,
                   metric_on: Callable[[np.ndarray], Callable[[np.ndarray], float]], maximize: bool,
                   rounds: int = ROUNDS) -> np.ndarray:
    """The ensemble's out-of-fold predictions: each fold's rows blended with the weights that greedy
    selection chose on the other folds' rows, so that no row is scored by weights chosen on it.

    Args:
        predictions: Member name -> its out-of-fold predictions, same rows for all.
        folds: The fold of each row.
        metric_on: A row mask -> the metric over those rows (of predictions for those rows only).
        maximize: Whether a larger metric is better.
        rounds: Additions to make for each fold's weights.

    Returns:
        The blended predictions, shaped like one member's.
    """
    first = next(iter(predictions.values()))
    out = np.zeros(first.shape, dtype=float)
    for fold in np.unique(folds):
        inner, rows = folds != fold, folds == fold
        weights, _ = greedy_weights({k: v[inner] for k, v in predictions.items()}, metric_on(inner), maximize, rounds)
        out[rows] = np.sum([w * predictions[k][rows] for k, w in weights.items()], axis=0)
    return out


class WeightedEnsemble(BaseEstimator):
    """A weighted average of fitted member pipelines.

    Args:
        members: The fitted member pipelines (each its family's encoding step and model).
        weights: One weight per member, summing to 1.
        names: The members' family names.
    """

    def __init__(self, members: list | None = None, weights: list[float] | None = None,
                 names: list[str] | None = None):
        self.members = members
        self.weights = weights
        self.names = names

    def fit(self, X, y=None):  # noqa: ANN001, ANN201, N803
        raise TrainflowError("an ensemble is made by the train stage from its members' cross-validation, not fitted")

    def __sklearn_is_fitted__(self) -> bool:
        return bool(self.members)


class WeightedEnsembleClassifier(ClassifierMixin, WeightedEnsemble):
    """Averages the members' class probabilities (columns aligned by class)."""

    @property
    def classes_(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(m.classes_).astype(str) for m in self.members]))

    def predict_proba(self, X) -> np.ndarray:  # noqa: ANN001, N803
        classes = list(self.classes_)
        out = np.zeros((len(X), len(classes)))
        for member, weight in zip(self.members, self.weights):
            cols = [classes.index(c) for c in np.asarray(member.classes_).astype(str)]
            out[:, cols] += weight * member.predict_proba(X)
        return out

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class WeightedEnsembleRegressor(RegressorMixin, WeightedEnsemble):
    """Averages the members' predictions."""

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        return np.sum([w * np.asarray(m.predict(X), dtype=float) for m, w in zip(self.members, self.weights)], axis=0)


def weighted_ensemble(regression: bool, members: list, weights: list[float], names: list[str]) -> WeightedEnsemble:
    """The classifier or regressor that averages ``members`` (fitted pipelines) with ``weights``."""
    cls = WeightedEnsembleRegressor if regression else WeightedEnsembleClassifier
    return cls(members=members, weights=weights, names=names)


def build_ensemble(r: BuildRequest) -> WeightedEnsemble:
    raise TrainflowError("the ensemble family is made by the train stage from the other families' out-of-fold "
                         "predictions: it needs train.cv_folds >= 2 and at least one other family")


def _dump_ensemble(model: WeightedEnsemble, dump_member: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    files: dict[str, bytes] = {}
    for i, (member, name) in enumerate(zip(model.members, model.names)):
        files.update({f"member{i}.{k}": v for k, v in dump_member(member, name).items()})
    return files, {"members": model.names, "weights": list(model.weights), "classes": model_classes(model)}


def _load_ensemble(files: dict[str, bytes], meta: dict[str, Any], load_member: Any) -> WeightedEnsemble:
    members = [load_member({k.removeprefix(f"member{i}."): v for k, v in files.items()
                            if k.startswith(f"member{i}.")}) for i in range(len(meta["members"]))]
    return weighted_ensemble(meta["classes"] is None, members, meta["weights"], meta["members"])


def _ensemble_to_onnx(pipeline: Pipeline, schema: DatasetSchema, export: Callable[[Pipeline, str], bytes]) -> bytes:
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
        graphs.append(onnx.compose.add_prefix(onnx.load_from_string(export(full, ensemble.names[i])), f"m{i}_",
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


# each member a bundle of its own (its files prefixed ``member<i>.``), in its own family's format
ENSEMBLE_FORMAT = ModelFormat("ensemble", lambda model: isinstance(model, WeightedEnsemble), _dump_ensemble,
                              _load_ensemble)
ENSEMBLE = Family(build_ensemble, model_format=ENSEMBLE_FORMAT, to_onnx=_ensemble_to_onnx)
