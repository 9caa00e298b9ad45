"""Train: fit each requested model family, score it on the validation split, keep the best.

Families: logistic regression (ridge for regression), decision tree, random forest, SVM (kernel SVM
up to a row limit, linear beyond it), LightGBM with early stopping on the validation split, and the
networks of ``tasks.nn`` (``mlp``, ``cnn``, ``transformer``, ``gru``) with their baselines
(``tfidf_logistic``, ``seasonal_naive``). Every family gets the same fitted preprocessor; the winner
is saved with it as one serving Pipeline (skops, LightGBM's own text format, safetensors), and every
other candidate beside it so that evaluate can score all of them on the test split.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from prefect import task
from pydantic import Field
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from trainflow.cache import CONTENT
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.device import detect_accelerator
from trainflow.errors import TrainflowError
from trainflow.forms import FormModel, optional_twin
from trainflow.metrics import DEFAULT_METRIC, DIRECTION, classification_metrics, regression_metrics
from tasks.modelio import bundle_files, load_skops
from tasks.nn import NETWORKS, NNSettings
from trainflow.progress import Progress, progress, run_logger
from trainflow.schema import DatasetSchema
from tasks.transform import TransformSettings, encoder_for, encoding_for

Family = Literal["lightgbm", "logistic", "decision_tree", "random_forest", "svm", "mlp", "cnn", "transformer", "gru",
                 "tfidf_logistic", "seasonal_naive"]
FAMILIES: tuple[str, ...] = ("lightgbm", "logistic", "decision_tree", "random_forest", "svm", "mlp", "cnn",
                             "transformer", "gru", "tfidf_logistic", "seasonal_naive")
DEFAULT_FAMILIES = {"tabular": ["lightgbm", "logistic"], "image": ["cnn", "logistic"],
                    "text": ["transformer", "tfidf_logistic"], "series": ["gru", "seasonal_naive"]}


NNChoices = optional_twin(NNSettings, "NNChoices", "Network settings this run sets; each one left empty comes from "
                                                    "the dataset schema's nn block, else the built-in default.")


class TrainSettings(FormModel):
    """Which model families to train and how."""

    families: list[Family] | None = Field(
        None, description="model families to train and compare; empty: the schema's, else by kind of data (tabular: "
                          "lightgbm, logistic; images: cnn, logistic; text: transformer, tfidf_logistic; series: "
                          "gru, seasonal_naive)")
    selection_metric: str | None = Field(
        None, description="validation metric that picks the winner; empty: roc_auc, f1_macro or rmse by task")
    lightgbm_max_rounds: int = Field(2000, ge=1, description="LightGBM boosting rounds before early stopping")
    lightgbm_learning_rate: float = Field(0.05, gt=0, description="LightGBM learning rate")
    early_stopping_rounds: int = Field(100, ge=1, description="stop LightGBM after this many rounds without gain")
    svm_kernel_max_rows: int = Field(
        10_000, ge=0, description="kernel (RBF) SVM up to this many training rows, linear SVM beyond")
    n_jobs: int = Field(-1, description="parallel jobs for families that support them (-1: all cores)")
    params: dict[str, dict[str, Any]] = Field(
        {}, description='extra estimator parameters per family, e.g. {"lightgbm": {"num_leaves": 63}}')
    nn: NNChoices = Field(default_factory=NNChoices, description="the neural network families (mlp, cnn, "
                                                                  "transformer, gru)")


def families_for(schema: DatasetSchema, settings: TrainSettings) -> list[str]:
    """The families to train: the settings', else the schema's, else the default for the kind of data."""
    return list(dict.fromkeys(settings.families or schema.families or DEFAULT_FAMILIES[schema.modality]))


def nn_settings_for(schema: DatasetSchema | None, settings: TrainSettings) -> NNSettings:
    """The network settings a run uses: those the settings set, else the schema's (``schema.nn``), else the
    built-in defaults."""
    return NNSettings(**{**(schema.nn if schema is not None else {}), **settings.nn.model_dump(exclude_none=True)})


def network_spec(family: str, schema: DatasetSchema) -> dict[str, Any]:
    """What a network reads, from the schema: category columns, image shape, text column or window."""
    if family == "cnn":
        if schema.image is None:
            raise TrainflowError(f"the cnn family needs an image dataset; schema '{schema.name}' has no image block")
        return {"shape": [schema.image.channels, schema.image.height, schema.image.width]}
    if family == "transformer":
        if not schema.text_features:
            raise TrainflowError(f"the transformer family needs a text column; schema '{schema.name}' has none")
        return {"text": schema.text_features[0]}
    if family == "gru":
        lags = [c for c in schema.numeric_features if c.startswith("lag_")]
        if not lags:
            raise TrainflowError(f"the gru family needs a time series; schema '{schema.name}' has no series block")
        return {"lags": lags}
    return {"categorical": schema.categorical_features}


def build_estimator(family: str, task_type: str, settings: TrainSettings, seed: int, n_rows: int,
                    overrides: dict[str, Any] | None = None, schema: DatasetSchema | None = None) -> Any:
    """An unfitted estimator for a family and task type (``schema``: what networks and baselines read)."""
    reg = task_type == "regression"
    extra = {**settings.params.get(family, {}), **(overrides or {})}
    if family in NETWORKS:
        from tasks.nn import network_for

        base = nn_settings_for(schema, settings)
        nn_settings = base.model_copy(update={k: v for k, v in extra.items() if k in NNSettings.model_fields})
        spec = network_spec(family, schema) if schema is not None else {}
        return network_for(family, task_type)(settings=nn_settings.model_dump(), seed=seed, spec=spec)
    if family == "seasonal_naive":
        from tasks.baselines import SeasonalNaive

        if schema is None or schema.series is None:
            raise TrainflowError("the seasonal_naive family needs a time series (a schema with a series block)")
        return SeasonalNaive(lag_column=schema.series.lag(schema.series.season))
    if family == "tfidf_logistic":
        from tasks.baselines import tfidf_logistic

        if schema is None or not schema.text_features:
            raise TrainflowError("the tfidf_logistic family needs a text column")
        return tfidf_logistic(schema.text_features[0], seed, **extra)
    if family == "lightgbm":
        import lightgbm as lgb

        base = dict(n_estimators=settings.lightgbm_max_rounds, learning_rate=settings.lightgbm_learning_rate,
                    num_leaves=31, min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                    random_state=seed, n_jobs=settings.n_jobs, verbose=-1, deterministic=True, force_row_wise=True)
        return (lgb.LGBMRegressor if reg else lgb.LGBMClassifier)(**{**base, **extra})
    if family == "logistic":
        from sklearn.linear_model import LogisticRegression, Ridge

        return Ridge(**{"alpha": 1.0, **extra}) if reg else LogisticRegression(**{"max_iter": 3000, "C": 1.0, **extra})
    if family == "decision_tree":
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        cls = DecisionTreeRegressor if reg else DecisionTreeClassifier
        return cls(**{"max_depth": 10, "min_samples_leaf": 20, "random_state": seed, **extra})
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if reg else RandomForestClassifier
        return cls(**{"n_estimators": 300, "min_samples_leaf": 2, "random_state": seed, "n_jobs": settings.n_jobs,
                      **extra})
    if family == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

        if n_rows <= settings.svm_kernel_max_rows:
            if reg:
                return SVR(**extra)
            return CalibratedClassifierCV(SVC(**{"random_state": seed, **extra}), ensemble=False)
        if reg:
            return LinearSVR(**{"random_state": seed, "max_iter": 5000, **extra})
        return CalibratedClassifierCV(LinearSVC(**{"random_state": seed, "max_iter": 5000, **extra}), cv=3)
    raise TrainflowError(f"unknown model family '{family}' (known: {', '.join(FAMILIES)})")


def predict_scores(model: Any, x: pd.DataFrame, task_type: str) -> np.ndarray:
    """Class probabilities for classifiers, predictions for regressors."""
    return model.predict(x) if task_type == "regression" else model.predict_proba(x)


def score(task_type: str, y: np.ndarray, scores: np.ndarray, classes: np.ndarray | None,
          positive: object) -> dict[str, float]:
    """All metrics for one set of predictions."""
    if task_type == "regression":
        return regression_metrics(y, scores)
    return classification_metrics(y, scores, classes, positive)


def fit_family(family: str, schema: DatasetSchema, train: pd.DataFrame, validation: pd.DataFrame,
               transform_settings: TransformSettings, settings: TrainSettings, seed: int,
               checkpoint_dir: str | None = None, init_weights: dict | None = None,
               on_iteration: Any = None) -> tuple[Pipeline, dict, pd.DataFrame]:
    """Fit one family's encoding step and estimator on training features.

    Args:
        checkpoint_dir: Networks checkpoint every epoch to ``<dir>/<family>.pt`` and resume from it.
        init_weights: A state dict a network starts from (transfer learning).
        on_iteration: ``f(step, score)`` after each LightGBM round or network epoch, with the validation
            score (larger is better: LightGBM's first metric, negated when it is a loss; the network's
            epoch metric); tuning prunes trials with it by raising.

    Returns:
        ``(fitted encode+model pipeline, info, history)``; ``info`` holds the validation metrics,
        timings and the best iteration, ``history`` the per-iteration validation curve (LightGBM)
        or the per-epoch history (networks).
    """
    label = schema.label
    x_tr, y_tr = train.drop(columns=[label]), train[label].to_numpy()
    x_va, y_va = validation.drop(columns=[label]), validation[label].to_numpy()
    if schema.task == "regression":
        y_tr, y_va = y_tr.astype(float), y_va.astype(float)
    else:
        y_tr, y_va = y_tr.astype(str), y_va.astype(str)
    encoding = encoding_for(family, transform_settings.categorical_encoding)
    encoder = encoder_for(schema, encoding)
    if encoder != "passthrough":
        encoder = clone(encoder).set_output(transform="pandas").fit(x_tr)
        x_tr_e, x_va_e = encoder.transform(x_tr), encoder.transform(x_va)
    else:
        x_tr_e, x_va_e = x_tr, x_va
    est = build_estimator(family, schema.task, settings, seed, len(x_tr), schema=schema)
    started = time.perf_counter()
    history = pd.DataFrame()
    best_iteration = None
    if family == "lightgbm":
        import lightgbm as lgb

        cats = schema.categorical_features if encoding == "native" else "auto"
        with warnings.catch_warnings():
            # LightGBM 4.7 deprecates eval_set for eval_X/eval_y, but its eval_X path does not encode
            # string class labels (ValueError: could not convert string to float); eval_set does.
            warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
            callbacks = [lgb.early_stopping(settings.early_stopping_rounds, verbose=False)]
            if on_iteration is not None:
                def report(env: Any) -> None:
                    _, _, value, higher_better = env.evaluation_result_list[0][:4]
                    on_iteration(env.iteration + 1, value if higher_better else -value)

                callbacks.append(report)
            est.fit(x_tr_e, y_tr, eval_set=[(x_va_e, y_va)], eval_names=["validation"], categorical_feature=cats,
                    callbacks=callbacks)
        best_iteration = int(est.best_iteration_ or est.n_estimators)
        curves = est.evals_result_.get("validation", {})
        history = pd.DataFrame([{"family": family, "iteration": i + 1, "split": "validation", "metric": m, "value": v}
                                for m, values in curves.items() for i, v in enumerate(values)])
    elif family in NETWORKS:
        s = est.nn_settings
        path = Path(checkpoint_dir) / f"{family}.pt" if checkpoint_dir and s.checkpoint else None
        bar = Progress(s.max_epochs, f"{family} epochs") if on_iteration is None else None  # no artifact per trial

        def on_epoch(row: dict) -> None:
            if bar is not None:
                loss = row.get("validation_loss", row["train_loss"])
                bar.advance(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, validation loss {loss:.4f}, "
                            f"validation metric {row.get('validation_metric', float('nan')):.4f}")
            if on_iteration is not None:
                on_iteration(row["epoch"], row["validation_metric"])

        try:
            est.fit(x_tr_e, y_tr, X_val=x_va_e, y_val=y_va, checkpoint=path, init_weights=init_weights,
                    on_epoch=on_epoch)
        finally:
            if bar is not None:
                bar.close()
        if bar is not None:
            bar.finish()
        if path is not None:
            path.unlink(missing_ok=True)  # the model is saved; a re-run starts afresh (or is cached)
        best_iteration = est.best_epoch_
        history = est.history_.melt(id_vars="epoch", var_name="metric", value_name="value").rename(
            columns={"epoch": "iteration"}).assign(family=family, split="train/validation")
    else:
        est.fit(x_tr_e, y_tr)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = predict_scores(est, x_va_e, schema.task)
    predict_seconds = time.perf_counter() - started
    classes = getattr(est, "classes_", None)
    metrics = score(schema.task, y_va, scores, classes, schema.positive_class)
    pipe = Pipeline([("encode", encoder), ("model", est)])
    info = {"family": family, "encoding": encoding, "estimator": type(est).__name__, "metrics": metrics,
            "device": getattr(est, "device_", "cpu"),
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "best_iteration": best_iteration,
            "n_train": len(x_tr), "params": {k: v for k, v in est.get_params(deep=False).items()
                                              if isinstance(v, (int, float, str, bool, type(None)))}}
    if family in NETWORKS:
        info["params"].update(est.nn_settings.model_dump(exclude={"init_from"}))
        info["transferred_tensors"] = est.transferred_
        info["precision"] = "bfloat16 autocast" if est.device_ == "cuda" else "float32"
    if history.empty:
        history = pd.DataFrame([{"family": family, "iteration": 1, "split": "validation",
                                 "metric": k, "value": v} for k, v in metrics.items()])
    return pipe, info, history


def train_models(schema: DatasetSchema, train: pd.DataFrame, validation: pd.DataFrame, preprocessor: Any,
                 transform_settings: TransformSettings, settings: TrainSettings, seed: int,
                 checkpoint_dir: str | None = None,
                 init_weights: dict | None = None) -> tuple[Pipeline, dict, pd.DataFrame, pd.DataFrame]:
    """Train every family and keep the best on the validation split: the pure part of the train stage.

    Args:
        schema: Dataset schema (for a series, its ``model_view``).
        train: Training features (from transform) with the label column.
        validation: Validation features with the label column.
        preprocessor: The fitted preprocessor, the first step of the saved Pipeline.
        transform_settings: Gives the categorical encoding.
        settings: Families and their settings.
        seed: Random seed.
        checkpoint_dir: Where networks checkpoint each epoch (None: no checkpoints).
        init_weights: A state dict the networks start from (transfer learning).

    Returns:
        ``(serving pipeline, metadata, leaderboard, history)``; ``metadata["candidates"]`` holds the
        serving pipeline of every other family, for scoring on the test split.

    Raises:
        TrainflowError: No family given, an unknown family, or an unknown selection metric.
    """
    families = families_for(schema, settings)
    if not families:
        raise TrainflowError("no model family to train: settings.train.families is empty")
    metric = settings.selection_metric or DEFAULT_METRIC[schema.task]
    if metric not in DIRECTION:
        raise TrainflowError(f"unknown selection metric '{metric}' (known: {', '.join(DIRECTION)})")
    accel = detect_accelerator()
    fitted, rows, histories = {}, [], []
    with progress(len(families), "training") as bar:
        for family in families:
            pipe, info, hist = fit_family(family, schema, train, validation, transform_settings, settings, seed,
                                          checkpoint_dir, init_weights)
            fitted[family] = (pipe, info)
            histories.append(hist)
            rows.append({"family": family, "estimator": info["estimator"], "encoding": info["encoding"],
                         "metric": metric, "validation_score": info["metrics"].get(metric, np.nan),
                         "fit_seconds": info["fit_seconds"], "predict_seconds": info["predict_seconds"],
                         "best_iteration": info["best_iteration"], "n_train": info["n_train"],
                         "device": info["device"], "accelerator_present": accel["device"],
                         "validation_metrics": json.dumps(info["metrics"]), "params": json.dumps(info["params"],
                                                                                               default=str)})
            bar.advance(family)
    board = pd.DataFrame(rows).sort_values("validation_score", ascending=not DIRECTION[metric],
                                           na_position="last", ignore_index=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    board["selected"] = board["rank"] == 1
    best = board.iloc[0]["family"]
    pipe, info = fitted[best]
    serving = Pipeline([("preprocess", preprocessor), *pipe.steps])
    meta = {"family": best, "task": schema.task, "label": schema.label, "dataset": schema.name,
            "features": [c.name for c in schema.features], "positive_class": schema.positive_class,
            "selection_metric": metric, "validation_metrics": info["metrics"], "best_iteration": info["best_iteration"],
            "params": info["params"], "encoding": info["encoding"], "seed": seed, "device": info["device"],
            "accelerator": accel, "versions": library_versions()}
    for key in ("transferred_tensors", "precision"):
        if key in info:
            meta[key] = info[key]
    meta["candidates"] = {f: Pipeline([("preprocess", preprocessor), *p.steps]) for f, (p, _) in fitted.items()
                          if f != best}
    return serving, meta, board, pd.concat(histories, ignore_index=True)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model depends on (recorded in its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for lib in ("scikit-learn", "lightgbm", "torch", "numpy", "pandas"):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            continue
    return out


def loss_curves(history: pd.DataFrame):  # noqa: ANN201 (a matplotlib Figure, or None)
    """Train and validation loss per epoch of each network family, as one figure (None: no network)."""
    nets = history[history["metric"].isin(["train_loss", "validation_loss"])]
    if nets.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (family, metric), part in nets.groupby(["family", "metric"]):
        ax.plot(part["iteration"], part["value"], label=f"{family} {metric.replace('_', ' ')}",
                linestyle="-" if metric == "train_loss" else "--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Loss curves")
    ax.legend()
    return fig


def checkpoint_dir_for(store_root: str, features: dict[str, ArtifactRef], settings: TrainSettings,
                       seed: int) -> str | None:
    """``<root>/checkpoints/<key>``: the same data, settings and seed find the same checkpoints after a crash.

    None for a remote store (checkpoints need a local file system).
    """
    key = hashlib.sha256(json.dumps([features["train"].sha256, features["validation"].sha256,
                                     settings.model_dump(mode="json"), seed]).encode()).hexdigest()[:20]
    folder = ArtifactStore(store_root).local_folder("checkpoints", key)
    return str(folder) if folder is not None else None


def registered_weights(init_from: str, registry_url: str | None) -> dict:
    """The network weights of a registered version, ``NAME@ALIAS`` or ``NAME:VERSION``, for fine-tuning."""
    from tasks.registry import load_model

    name, version, alias = init_from, None, "production"
    if "@" in init_from:
        name, alias = init_from.split("@", 1)
    elif ":" in init_from:
        name, v = init_from.split(":", 1)
        version, alias = int(v), None
    model = load_model(name, version, alias, registry_url).steps[-1][1]
    if not hasattr(model, "model_"):
        raise TrainflowError(f"init_from {init_from}: that version is a {type(model).__name__}, not a network")
    return model.model_.state_dict()


@task(name="train", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def train(store_root: str, run_id: str, schema: DatasetSchema, features: dict[str, ArtifactRef],
          transform_settings: TransformSettings, settings: TrainSettings, seed: int,
          registry_url: str | None = None) -> dict[str, ArtifactRef]:
    """Prefect task: write ``train/leaderboard``, ``train/training_history``, the ``train/model`` bundle,
    a ``train/candidate_<family>`` bundle per other family, and ``train/loss_curves.png`` for networks.

    Args:
        registry_url: The registry ``settings.nn.init_from`` names a model of (None: the default).

    Returns:
        References to the model bundle, the candidates, the leaderboard, the history and the plot.
    """
    store = ArtifactStore(store_root)
    preprocessor = load_skops(store.read_file(features["preprocessor"]))
    nn = nn_settings_for(schema, settings)
    init = registered_weights(nn.init_from, registry_url) if nn.init_from else None
    serving, meta, board, history = train_models(
        schema, store.read_table(features["train"]), store.read_table(features["validation"]), preprocessor,
        transform_settings, settings, seed, checkpoint_dir_for(store_root, features, settings, seed), init)
    meta["run_id"] = run_id
    if nn.init_from:
        meta["init_from"] = nn.init_from
    candidates = meta.pop("candidates")
    run_logger().info("train: selected %s, validation %s %.4f%s", meta["family"], meta["selection_metric"],
                      board.iloc[0]["validation_score"], "".join(
                          f"; {r['family']} {r['validation_score']:.4f}" for r in board.iloc[1:].to_dict("records")))
    refs = {
        "leaderboard": store.write_table(run_id, "train", "leaderboard", board),
        "history": store.write_table(run_id, "train", "training_history", history),
        "model": store.write_bundle(run_id, "train", "model", bundle_files(serving, meta)),
    }
    for family, pipe in candidates.items():
        refs[f"candidate_{family}"] = store.write_bundle(run_id, "train", f"candidate_{family}", bundle_files(
            pipe, {**meta, "family": family, "candidate": True}))
    figure = loss_curves(history)
    if figure is not None:
        refs["loss_curves"] = store.write_png(run_id, "train", "loss_curves", figure)
    return refs
