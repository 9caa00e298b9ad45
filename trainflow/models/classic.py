"""The classic tabular families: LightGBM (early stopping on the validation rows) and its variant with extremely
randomised splits, CatBoost (oblivious trees), logistic or ridge regression, a decision tree, a random forest
(scored on its out-of-bag predictions), extremely randomised trees and an SVM (kernel up to a row limit, linear
beyond)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trainflow.features import as_model_input
from trainflow.metrics import label_values, predict_scores, relative_drop, score, threshold_of
from trainflow.models.boosters import (CATBOOST_CBM, LIGHTGBM_TEXT, LightGBMModel, catboost_onnx_converters,
                                      lightgbm_onnx_converters)
from trainflow.models.family import (BuildRequest, Compressed, CompressRequest, Family, FitRequest, FitResult, param,
                                     plain_fit, scalar_params)
from trainflow.progress import run_logger
from trainflow.threads import fit_threads

if TYPE_CHECKING:
    from trainflow.schema import DatasetSchema


ROWS_PER_BIN = 10
MIN_BINS, MAX_BINS = 31, 255  # the most: LightGBM's default
CATBOOST_MAX_BORDERS = 254  # CatBoost's default


def histogram_bins(n_rows: int, most: int = MAX_BINS) -> int:
    """How many bins a boosted family cuts each numeric column into for ``n_rows`` training rows: one per
    ``ROWS_PER_BIN`` rows, between ``MIN_BINS`` and ``most`` (the library's default), so only small tables get
    fewer than the defaults. On few rows a round's cost grows with columns x bins, and a bin of two or three rows
    only lets a split chase noise (the measurements: benchmarks/README, time limit)."""
    return max(MIN_BINS, min(most, n_rows // ROWS_PER_BIN))


def build_lightgbm(r: BuildRequest) -> Any:
    import lightgbm as lgb

    base = dict(n_estimators=r.settings.lightgbm_max_rounds, learning_rate=r.settings.lightgbm_learning_rate,
                num_leaves=31, min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                max_bin=histogram_bins(r.n_rows), random_state=r.seed,
                n_jobs=fit_threads(r.settings.n_jobs, barrier=True), verbose=-1, deterministic=True, force_row_wise=True)
    return (lgb.LGBMRegressor if r.regression else lgb.LGBMClassifier)(**{**base, **r.params})


XT_LEARNING_RATE = 0.05


def build_lightgbm_xt(r: BuildRequest) -> Any:
    """LightGBM with extremely randomised splits (``extra_trees``: one random threshold per feature at each
    node) at learning rate ``XT_LEARNING_RATE``, otherwise the ``lightgbm`` family's defaults: AutoGluon's
    LightGBMXT, a gradient-boosted member whose errors differ from plain LightGBM's, so the ensemble gains from
    both (tuning's parameters stay the ``lightgbm`` family's). Random thresholds need more rounds than the best
    ones, so it learns twice as fast as the ``lightgbm`` family to stop in about as many rounds; on the quality
    benchmark's tables that rate made the ensembles at least as good."""
    return build_lightgbm(replace(r, params={"extra_trees": True, "learning_rate": XT_LEARNING_RATE, **r.params}))


def _unknown_as_missing(x: pd.DataFrame | None, cats: Any) -> pd.DataFrame | None:
    """Native category codes with the unknown code (-1, a category the coder never saw) as missing: LightGBM reads
    a negative code as missing anyway, but prints a warning on every fit that meets one, whatever ``verbose``
    says (a cross-validation fold's rows can hold categories the training split did not)."""
    if x is None or not isinstance(cats, list):
        return x
    negative = [c for c in cats if c in x.columns and (x[c] < 0).any()]
    return x.assign(**{c: x[c].where(x[c] >= 0) for c in negative}) if negative else x


def fit_lightgbm(est: Any, r: FitRequest) -> FitResult:
    """Boost until the validation score has not improved for ``early_stopping_rounds`` rounds (without
    validation rows: all ``n_estimators`` rounds, as a refit with the rounds cross-validation found)."""
    import lightgbm as lgb

    cats = r.schema.categorical_features if r.encoding == "native" else "auto"
    r = replace(r, x_train=_unknown_as_missing(r.x_train, cats), x_validation=_unknown_as_missing(r.x_validation, cats))
    if r.settings.dask_address:
        return _fit_lightgbm_dask(est, r, cats)
    if r.x_validation is None:
        callbacks = [] if r.on_iteration is None else [lambda env: r.on_iteration(env.iteration + 1, float("nan"))]
        est.fit(r.x_train, r.y_train, categorical_feature=cats, callbacks=[*callbacks, *_lightgbm_clock(r)])
        best = int(est.best_iteration_ or est.n_estimators) if r.clock and r.clock.stopped_at else est.n_estimators
        return FitResult(best_iteration=best, extra=_clock_facts(r))
    with warnings.catch_warnings():
        # LightGBM 4.7 deprecates eval_set for eval_X/eval_y, but its eval_X path does not encode
        # string class labels (ValueError: could not convert string to float); eval_set does.
        warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
        callbacks = [lgb.early_stopping(r.settings.early_stopping_rounds, verbose=False), *_lightgbm_clock(r)]
        if r.on_iteration is not None:
            on_iteration = r.on_iteration

            def report(env: Any) -> None:
                _, _, value, higher_better = env.evaluation_result_list[0][:4]
                on_iteration(env.iteration + 1, value if higher_better else -value)

            callbacks.append(report)
        est.fit(r.x_train, r.y_train, eval_set=[(r.x_validation, r.y_validation)], eval_names=["validation"],
                categorical_feature=cats, callbacks=callbacks)
    return FitResult(best_iteration=int(est.best_iteration_ or est.n_estimators),
                     history=_history(r.family, est.evals_result_.get("validation", {})), extra=_clock_facts(r))


def _lightgbm_clock(r: FitRequest) -> list:
    """A LightGBM callback that stops boosting when ``r.clock`` says the time is up, keeping the best round so
    far on the first validation metric (the last round without validation rows), as early stopping does."""
    if r.clock is None:
        return []
    import lightgbm as lgb

    clock, best = r.clock, {"iteration": -1, "value": None, "results": []}

    def stop_at_deadline(env: Any) -> None:
        results = env.evaluation_result_list or []
        if results:
            _, _, value, higher_better = results[0][:4]
            if best["value"] is None or (value > best["value"] if higher_better else value < best["value"]):
                best.update(iteration=env.iteration, value=value, results=results)
        else:
            best.update(iteration=env.iteration, results=results)
        if clock.tick(env.iteration + 1):
            raise lgb.callback.EarlyStopException(best["iteration"], best["results"])

    stop_at_deadline.order = 40  # after early stopping's own check (order 30)
    return [stop_at_deadline]


def _clock_facts(r: FitRequest) -> dict[str, Any] | None:
    """What a fit's clock did, for the leaderboard: the round at which the time limit stopped it."""
    if r.clock is None or r.clock.stopped_at is None:
        return None
    return {"stopped_by_time_limit": r.clock.stopped_at}


def _history(family: str, curves: dict[str, list[float]]) -> pd.DataFrame:
    """LightGBM's validation curves (``evals_result_["validation"]``) as learning-curve rows."""
    return pd.DataFrame([{"family": family, "iteration": i + 1, "split": "validation", "metric": m, "value": v}
                         for m, values in curves.items() for i, v in enumerate(values)])


HIGHER_IS_BETTER = ("auc", "average_precision", "map", "ndcg")


def _fit_lightgbm_dask(est: Any, r: FitRequest, cats: Any) -> FitResult:
    """``est``'s parameters trained by ``lightgbm.dask`` on the Dask cluster of ``settings.dask_address``, the rows
    split into a partition per worker. With validation rows every round is trained and scored (lightgbm.dask
    stops no worker early) and the model is cut at the best round on them, as early stopping would have kept
    it. Class labels go to the workers as codes (each worker's LightGBM would otherwise number the classes it
    sees its own way). Returns the model as LightGBM text with its classes, as a registered model loads."""
    import dask.dataframe as dd
    import lightgbm as lgb

    from trainflow.cluster import dask_client
    from trainflow.errors import TrainflowError
    from trainflow.models.boosters import LightGBMClassifierModel, LightGBMRegressorModel

    client = dask_client(r.settings.dask_address)
    parts = max(1, len(client.scheduler_info()["workers"]))
    regression = isinstance(est, lgb.LGBMRegressor)
    classes = None if regression else np.unique(r.y_train)

    def frames(x: pd.DataFrame, y: np.ndarray) -> tuple[Any, Any]:  # rows and labels in matching partitions
        codes = y if classes is None else np.searchsorted(classes, y)
        return (dd.from_pandas(x, npartitions=parts),
                dd.from_pandas(pd.Series(codes, index=x.index, name="label"), npartitions=parts))

    x, y = frames(r.x_train, r.y_train)
    if classes is not None and client.compute(y.map_partitions(pd.Series.nunique)).result().min() < len(classes):
        raise TrainflowError(f"train.dask_address: a worker's share of the {len(r.x_train):,} training rows lacks a "
                             "class, and lightgbm.dask needs every class on every worker; train in this process")
    model = (lgb.DaskLGBMRegressor if regression else lgb.DaskLGBMClassifier)(client=client, **est.get_params())
    best, history = model.n_estimators, None
    with client.as_current():  # lightgbm.dask waits on its data through the current client (not the default)
        if r.x_validation is None:
            model.fit(x, y, categorical_feature=cats)
        else:
            with warnings.catch_warnings():  # as in this process's fit: eval_set, not eval_X
                warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
                model.fit(x, y, eval_set=[frames(r.x_validation, r.y_validation)], eval_names=["validation"],
                          categorical_feature=cats)
    if r.x_validation is not None:
        curves = model.evals_result_.get("validation", {})
        metric, values = next(iter(curves.items()))
        best = int(np.argmax(values) if metric in HIGHER_IS_BETTER else np.argmin(values)) + 1
        history = _history(r.family, curves)
    text = model.booster_.model_to_string(num_iteration=best)
    fitted = (LightGBMRegressorModel.from_text(text) if regression
              else LightGBMClassifierModel.from_text(text, classes=classes.tolist()))
    return FitResult(best_iteration=best, history=history, estimator=fitted,
                     extra={"params": scalar_params(est.get_params())})


CATBOOST_LEARNING_RATE = 0.08


def build_catboost(r: BuildRequest) -> Any:
    """CatBoost (``trainflow.models.boosters``' ``CatBoostClassifierModel`` / ``CatBoostRegressorModel``): depth-6
    oblivious trees at ``CATBOOST_LEARNING_RATE``, early-stopped like LightGBM: a boosted member whose trees
    differ from LightGBM's, as AutoGluon's CatBoost beside its LightGBM models.

    Categories reach it one-hot, from the family's encoding step as for logistic regression, not as CatBoost's
    own categorical features: CatBoost cannot export a model with those to ONNX, and its target statistics
    for them were most of its time without making it better: in 5-fold CV on Adult and the quality benchmark's
    tables, CatBoost's own categories took two to three times as long as one-hot columns and scored no
    better."""
    from trainflow.models.boosters import CatBoostClassifierModel, CatBoostRegressorModel

    # l2_leaf_reg and random_strength at CatBoost's own defaults, named so that tuning's trial 0 starts there
    params = {"n_estimators": r.settings.lightgbm_max_rounds, "learning_rate": CATBOOST_LEARNING_RATE, "depth": 6,
              "l2_leaf_reg": 3.0, "random_strength": 1.0,
              "border_count": histogram_bins(r.n_rows, CATBOOST_MAX_BORDERS), "random_seed": r.seed,
              "thread_count": fit_threads(r.settings.n_jobs, barrier=True), **r.params}
    return (CatBoostRegressorModel if r.regression else CatBoostClassifierModel)(params=params)


def fit_catboost(est: Any, r: FitRequest) -> FitResult:
    """Boost until the validation loss has not improved for ``early_stopping_rounds`` rounds, keeping the best
    round's model (without validation rows: all ``n_estimators`` rounds, a refit)."""
    callbacks = None if r.clock is None else [_CatBoostClock(r.clock)]
    if r.x_validation is None:
        est.fit(r.x_train, r.y_train, callbacks=callbacks)
        best, history = int(est.model_.tree_count_), None
    else:
        est.fit(r.x_train, r.y_train, eval_set=(r.x_validation, r.y_validation),
                early_stopping_rounds=r.settings.early_stopping_rounds, callbacks=callbacks)
        best = int(est.model_.get_best_iteration()) + 1
        history = _history(r.family, est.model_.get_evals_result().get("validation", {}))
    return FitResult(best_iteration=best, history=history, extra={"params": scalar_params(est.model_.get_params()),
                                                                  **(_clock_facts(r) or {})})


class _CatBoostClock:
    """A CatBoost callback: stop when the clock says the time is up (CatBoost keeps the best round so far on the
    validation rows, ``use_best_model``)."""

    def __init__(self, clock: Any):
        self.clock = clock

    def after_iteration(self, info: Any) -> bool:
        return not self.clock.tick(int(info.iteration))


def build_logistic(r: BuildRequest) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    if r.regression:
        return Ridge(**{"alpha": 1.0, **r.params})
    return LogisticRegression(**{"max_iter": 3000, "C": 1.0, **r.params})


NEWTON_MAX_COEFFICIENTS = 200


def fit_logistic(est: Any, r: FitRequest) -> FitResult:
    """Logistic regression by scikit-learn's ``newton-cholesky`` solver where the coefficients are few (at most
    ``NEWTON_MAX_COEFFICIENTS`` columns x classes; one class's for two), the solver scikit-learn recommends for
    many rows and one-hot columns: the same penalised optimum as the default lbfgs in a few Newton steps instead
    of dozens of lbfgs iterations. lbfgs beyond that (the Hessian grows as its square) and
    whenever ``train.params`` names a solver; ridge regression as it is."""
    from sklearn.linear_model import LogisticRegression

    if isinstance(est, LogisticRegression) and "solver" not in r.settings.params.get(r.family, {}):
        classes = len(np.unique(r.y_train))
        if r.x_train.shape[1] * (1 if classes <= 2 else classes) <= NEWTON_MAX_COEFFICIENTS:
            est.set_params(solver="newton-cholesky")
    est.fit(r.x_train, r.y_train)
    return FitResult()


def build_decision_tree(r: BuildRequest) -> Any:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    cls = DecisionTreeRegressor if r.regression else DecisionTreeClassifier
    return cls(**{"max_depth": 10, "min_samples_leaf": 20, "random_state": r.seed, **r.params})


def build_random_forest(r: BuildRequest) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestRegressor if r.regression else RandomForestClassifier
    return cls(**{"n_estimators": 300, "min_samples_leaf": 2, "random_state": r.seed, "n_jobs": fit_threads(r.settings.n_jobs),
                  **r.params})


def build_extra_trees(r: BuildRequest) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    cls = ExtraTreesRegressor if r.regression else ExtraTreesClassifier
    return cls(**{"n_estimators": 200, "min_samples_leaf": 2, "max_features": 0.5, "random_state": r.seed,
                  "n_jobs": fit_threads(r.settings.n_jobs), **r.params})


def fit_forest(est: Any, request: FitRequest) -> FitResult:
    """Fit on ``n_jobs`` cores, then leave prediction to the caller's joblib ``parallel_config`` (``n_jobs=None``:
    one thread unless the caller asks for more). A forest left to use every core dispatches every tree to a
    thread pool on each call, slower than one thread for a single row and for small batches
    (``trainflow.metrics.predict_scores`` raises it for large ones)."""
    fitted = plain_fit(est, request) if request.clock is None or request.clock.deadline is None \
        else _forest_in_time(est, request)
    est.set_params(n_jobs=None)
    return fitted


def _forest_in_time(est: Any, r: FitRequest) -> FitResult:
    """A forest grown in two steps under a time limit: a tenth of its trees (at least 10) timed, then as many of
    the rest as the time left allows (scikit-learn's ``warm_start`` adds trees to the same forest, so the probe is
    not wasted). The out-of-bag predictions are those of every tree grown."""
    import time

    total = int(est.n_estimators)
    first = min(total, max(10, total // 10))
    started = time.time()
    est.set_params(n_estimators=first, warm_start=True)
    est.fit(r.x_train, r.y_train)
    per_tree = (time.time() - started) / first
    affordable = first + int(max(0.0, r.clock.deadline - time.time()) / max(per_tree, 1e-9))
    grown = min(total, affordable)
    if grown > first:
        est.set_params(n_estimators=grown)
        est.fit(r.x_train, r.y_train)
    est.set_params(warm_start=False)
    if grown < total:
        r.clock.stopped_at = grown
        run_logger().info("%s: %d of %d trees fit in its share of the time limit (%.2f s a tree)", r.clock.label,
                          grown, total, per_tree)
    return FitResult(extra=_clock_facts(r))


def build_svm(r: BuildRequest) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

    if r.n_rows <= r.settings.svm_kernel_max_rows:
        if r.regression:
            return SVR(**r.params)
        return CalibratedClassifierCV(SVC(**{"random_state": r.seed, **r.params}), ensemble=False)
    if r.regression:
        return LinearSVR(**{"random_state": r.seed, "max_iter": 5000, **r.params})
    return CalibratedClassifierCV(LinearSVC(**{"random_state": r.seed, "max_iter": 5000, **r.params}), cv=3)


def _fewer_trees(pipeline: Any, meta: dict, schema: DatasetSchema, validation: pd.DataFrame,
                 history: pd.DataFrame | None, allowed_drop: float) -> tuple[Any, int, int, str] | str | None:
    """The pipeline with LightGBM's first k trees, k the smallest of n/8, n/4, n/2, 3n/4 that costs less than
    ``allowed_drop`` (relative), judged on rows the model did not learn from: the validation split when the
    model was trained on the training split only; after a refit on train+validation, LightGBM's own
    out-of-fold loss curves from cross-validation (``train/training_history``), at the same fraction of trees.
    None when the model is not LightGBM; why not, when no k qualifies."""
    model = pipeline.steps[-1][1]
    if not isinstance(model, LightGBMModel):
        return None
    n = model.booster_.num_trees() // max(1, model.booster_.num_model_per_iteration())

    def truncated(k: int) -> Any:
        small = type(model).from_text(model.booster_.model_to_string(num_iteration=k), classes=model.classes)
        return type(pipeline)(pipeline.steps[:-1] + [("model", small)])

    refit = "CV" in str(meta.get("selected_on", ""))
    if refit:
        folds = None if history is None else history[(history["family"] == meta["family"])
                                                     & history["fit"].astype(str).str.startswith("fold")]
        if folds is None or folds.empty:
            return "not applicable: no out-of-fold curves to choose the trees on"
        loss_name = folds["metric"].iloc[0]
        # iterations every fold reached (a fold that stopped early has no value after its end)
        curve = folds[folds["metric"] == loss_name].pivot_table(index="iteration", columns="fit", values="value")
        curve = curve.dropna().mean(axis=1)
        if curve.empty:
            return "not applicable: no out-of-fold curves to choose the trees on"

        def loss_at(k: int) -> float:
            return float(curve.iloc[min(k, len(curve)) - 1])

        full = loss_at(n)
        costs = []
        for k in _tree_counts(n):
            at = loss_at(k)
            costs.append(relative_drop("log_loss", full, at))  # a loss: lower is better
            if costs[-1] <= allowed_drop:
                return truncated(k), k, n, f"out-of-fold {loss_name} {at:.4f} against {full:.4f} with all {n}"
        return (f"not applicable: {3 * n // 4} of {n} trees already cost {costs[-1]:.2%} of the out-of-fold "
                f"{loss_name} (allowed {allowed_drop:.2%})" if costs else None)
    metric = meta["selection_metric"]
    x, y = as_model_input(validation, schema), label_values(validation, schema)
    classes = getattr(model, "classes_", None)
    full = score(schema.task, y, predict_scores(pipeline, x, schema.task), classes, schema.positive_class,
                 (metric,), threshold_of(meta))[metric]
    cost = None
    for k in _tree_counts(n):
        candidate = truncated(k)
        value = score(schema.task, y, predict_scores(candidate, x, schema.task), classes, schema.positive_class,
                      (metric,), threshold_of(meta))[metric]
        cost = relative_drop(metric, full, value)
        if cost <= allowed_drop:
            return candidate, k, n, f"validation {metric} {value:.4f} against {full:.4f}"
    return None if cost is None else (f"not applicable: {3 * n // 4} of {n} trees already cost {cost:.2%} of the "
                                      f"validation {metric} (allowed {allowed_drop:.2%})")


def _tree_counts(n: int) -> list[int]:
    """Tree counts tried for the fewer-trees variant, smallest first."""
    return sorted({k for k in (n // 8, n // 4, n // 2, 3 * n // 4) if 1 <= k < n})


def lightgbm_compressions(r: CompressRequest) -> tuple[list[Compressed], list[dict[str, Any]]]:
    """LightGBM with only its first k trees, in ONNX Runtime (``onnx_lightgbm_<k>``), k the smallest of 1/8, 1/4,
    1/2 and 3/4 of the trees whose held-out loss stays within half the allowed drop: a smaller model, not only
    another format. The native booster cut the same way is never faster than its ONNX form, so it is not
    measured. Off with the compress stage's ``fewer_trees``."""
    if not r.options["fewer_trees"]:
        return [], []
    found = _fewer_trees(r.pipeline, r.meta, r.schema, r.validation, r.history, r.options["max_metric_drop"] / 2)
    if isinstance(found, str):
        return [], [{"variant": "lightgbm_fewer_trees", "runtime": "native", "status": "not applicable",
                     "reason": found.removeprefix("not applicable: ")}]
    if found is None:
        return [], []
    small, k, n, why = found
    return [Compressed(f"lightgbm_{k}", small, f"first {k} of {n} trees ({why})", native=False,
                       onnx=f"onnx_lightgbm_{k}")], []


# costs: each family's 5-fold CV and refit on Adult against LightGBM's (4.0 s; lightgbm_xt 6.8 s, CatBoost 10.8 s,
# logistic 1.3 s, the random forest's one out-of-bag fit 3.5 s), the others guessed from their kind
LIGHTGBM_SPACE = {"num_leaves": param("int", 8, 256, log=True), "learning_rate": param("float", 0.01, 0.3, log=True),
                  "min_child_samples": param("int", 5, 200, log=True), "colsample_bytree": param("float", 0.4, 1.0),
                  "subsample": param("float", 0.5, 1.0), "reg_lambda": param("float", 1e-8, 10.0, log=True)}
FOREST_SPACE = {"max_depth": param("categorical", choices=[None, 8, 16, 32]),
                "min_samples_leaf": param("int", 1, 50, log=True),
                "max_features": param("categorical", choices=["sqrt", "log2", 0.5, 1.0])}
NATIVE = ("native", "ordinal", "onehot")  # LightGBM splits on category codes as categories
CODES = ("ordinal", "onehot")  # trees split on integer codes as well as on one-hot columns, with fewer columns
LIGHTGBM = Family(build_lightgbm, fit_lightgbm, boosted=True, cost=1.0, search_space=LIGHTGBM_SPACE,
                  model_format=LIGHTGBM_TEXT, onnx_converters=lightgbm_onnx_converters,
                  compressions=lightgbm_compressions, encodings=NATIVE)
LIGHTGBM_XT = Family(build_lightgbm_xt, fit_lightgbm, boosted=True, cost=1.7, search_space=LIGHTGBM_SPACE,
                     model_format=LIGHTGBM_TEXT, onnx_converters=lightgbm_onnx_converters,
                     compressions=lightgbm_compressions, encodings=NATIVE)
CATBOOST = Family(build_catboost, fit_catboost, boosted=True, cost=2.7, model_format=CATBOOST_CBM, search_space={
    "depth": param("int", 4, 10), "learning_rate": param("float", 0.01, 0.3, log=True),
    "l2_leaf_reg": param("float", 1.0, 30.0, log=True), "random_strength": param("float", 0.1, 10.0, log=True)},
                  onnx_converters=catboost_onnx_converters)
LOGISTIC = Family(build_logistic, fit_logistic, cost=0.3, search_space={"C": param("float", 1e-3, 100.0, log=True)})
TREES = frozenset({"sklearn.tree._tree.Tree"})  # the fitted trees of a scikit-learn tree or forest
DECISION_TREE = Family(build_decision_tree, cost=0.1, skops_types=TREES, encodings=CODES, search_space={
    "max_depth": param("int", 2, 20), "min_samples_leaf": param("int", 1, 100, log=True)})
RANDOM_FOREST = Family(build_random_forest, fit_forest, out_of_bag=True, cost=0.9, search_space=FOREST_SPACE,
                       skops_types=TREES, encodings=CODES)
EXTRA_TREES = Family(build_extra_trees, fit_forest, cost=0.7, search_space=FOREST_SPACE, skops_types=TREES,
                     encodings=CODES)
SVM = Family(build_svm, cost=2.0, search_space={"C": param("float", 1e-2, 100.0, log=True)},  # calibrated scores
             skops_types=frozenset({"sklearn.calibration._CalibratedClassifier",
                                    "sklearn.calibration._SigmoidCalibration"}))
