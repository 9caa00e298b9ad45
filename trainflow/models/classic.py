"""The classic tabular families: LightGBM (early stopping on the validation rows), logistic or ridge
regression, a decision tree, a random forest, extremely randomised trees and an SVM (kernel up to a row limit, linear beyond)."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from trainflow.models.family import BuildRequest, Family, FitRequest, FitResult


def build_lightgbm(r: BuildRequest) -> Any:
    import lightgbm as lgb

    base = dict(n_estimators=r.settings.lightgbm_max_rounds, learning_rate=r.settings.lightgbm_learning_rate,
                num_leaves=31, min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                random_state=r.seed, n_jobs=r.settings.n_jobs, verbose=-1, deterministic=True, force_row_wise=True)
    return (lgb.LGBMRegressor if r.regression else lgb.LGBMClassifier)(**{**base, **r.params})


def fit_lightgbm(est: Any, r: FitRequest) -> FitResult:
    """Boost until the validation score has not improved for ``early_stopping_rounds`` rounds (without
    validation rows: all ``n_estimators`` rounds, as a refit with the rounds cross-validation found)."""
    import lightgbm as lgb

    cats = r.schema.categorical_features if r.encoding == "native" else "auto"
    if r.x_validation is None:
        callbacks = [] if r.on_iteration is None else [lambda env: r.on_iteration(env.iteration + 1, float("nan"))]
        est.fit(r.x_train, r.y_train, categorical_feature=cats, callbacks=callbacks)
        return FitResult(best_iteration=est.n_estimators)
    with warnings.catch_warnings():
        # LightGBM 4.7 deprecates eval_set for eval_X/eval_y, but its eval_X path does not encode
        # string class labels (ValueError: could not convert string to float); eval_set does.
        warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
        callbacks = [lgb.early_stopping(r.settings.early_stopping_rounds, verbose=False)]
        if r.on_iteration is not None:
            on_iteration = r.on_iteration

            def report(env: Any) -> None:
                _, _, value, higher_better = env.evaluation_result_list[0][:4]
                on_iteration(env.iteration + 1, value if higher_better else -value)

            callbacks.append(report)
        est.fit(r.x_train, r.y_train, eval_set=[(r.x_validation, r.y_validation)], eval_names=["validation"],
                categorical_feature=cats, callbacks=callbacks)
    curves = est.evals_result_.get("validation", {})
    history = pd.DataFrame([{"family": "lightgbm", "iteration": i + 1, "split": "validation", "metric": m, "value": v}
                            for m, values in curves.items() for i, v in enumerate(values)])
    return FitResult(best_iteration=int(est.best_iteration_ or est.n_estimators), history=history)


def build_logistic(r: BuildRequest) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    if r.regression:
        return Ridge(**{"alpha": 1.0, **r.params})
    return LogisticRegression(**{"max_iter": 3000, "C": 1.0, **r.params})


def build_decision_tree(r: BuildRequest) -> Any:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    cls = DecisionTreeRegressor if r.regression else DecisionTreeClassifier
    return cls(**{"max_depth": 10, "min_samples_leaf": 20, "random_state": r.seed, **r.params})


def build_random_forest(r: BuildRequest) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestRegressor if r.regression else RandomForestClassifier
    return cls(**{"n_estimators": 300, "min_samples_leaf": 2, "random_state": r.seed, "n_jobs": r.settings.n_jobs,
                  **r.params})


def build_extra_trees(r: BuildRequest) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    cls = ExtraTreesRegressor if r.regression else ExtraTreesClassifier
    return cls(**{"n_estimators": 200, "min_samples_leaf": 2, "max_features": 0.5, "random_state": r.seed,
                  "n_jobs": r.settings.n_jobs, **r.params})


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


LIGHTGBM = Family(build_lightgbm, fit_lightgbm)
LOGISTIC = Family(build_logistic)
DECISION_TREE = Family(build_decision_tree)
RANDOM_FOREST = Family(build_random_forest)
EXTRA_TREES = Family(build_extra_trees)
SVM = Family(build_svm)
