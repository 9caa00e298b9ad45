"""Selection by cross-validation and the ensemble family: out-of-fold scores, greedy weights, safe files."""

import json

import numpy as np
import pandas as pd
import pytest

from tasks.ingest import ingest_data
from tasks.predict import predict_frame
from tasks.split import SplitSettings, split_data
from tasks.train import train_models
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings, as_model_input
from trainflow.metrics import score
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.models.settings import TrainSettings
from trainflow.models.ensemble import (WeightedEnsembleClassifier, WeightedEnsembleRegressor, greedy_weights,
                                      held_out_blend)
from trainflow.schema import load_schema


def test_greedy_selection_weights_complementary_members_and_drops_a_useless_one() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=2000) * 10  # spread far beyond the errors: shrinking toward 0 never pays
    a, b = truth + rng.normal(size=2000), truth + rng.normal(size=2000)  # independent errors: the mean is better
    noise = rng.normal(size=2000) * 3 + 5  # off by 5 on average: adding it always hurts
    predictions = {"a": a, "b": b, "noise": noise}

    def rmse(p: np.ndarray) -> float:
        return float(np.sqrt(np.mean((p - truth) ** 2)))

    weights, value = greedy_weights(predictions, rmse, maximize=False)
    assert set(weights) == {"a", "b"} and abs(sum(weights.values()) - 1) < 1e-9
    assert 0.3 < weights["a"] < 0.7 and value == pytest.approx(rmse(weights["a"] * a + weights["b"] * b))
    assert value < min(rmse(a), rmse(b)) * 0.8  # about 1/sqrt(2) of either alone
    alone, _ = greedy_weights({"a": a, "noise": noise}, rmse, maximize=False)
    assert alone == {"a": 1.0}  # never worse than the best single member


def test_the_held_out_blend_scores_no_row_with_weights_chosen_on_it() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=3000) * 10
    folds = np.repeat([0, 1, 2], 1000)
    a = truth + rng.normal(size=3000)
    lucky = np.where(folds == 0, truth, a + 3)  # exact on fold 0; elsewhere a's errors and 3 more

    def rmse_on(mask: np.ndarray):
        return lambda p: float(np.sqrt(np.mean((p - truth[mask]) ** 2)))

    preds, all_rows = {"a": a, "lucky": lucky}, np.ones(3000, bool)
    everywhere, _ = greedy_weights(preds, rmse_on(all_rows), maximize=False)
    assert everywhere.get("lucky", 0) > 0  # chosen on all rows, its luck on fold 0 earns it a weight
    blend = held_out_blend(preds, folds, rmse_on, maximize=False)
    np.testing.assert_allclose(blend[folds == 0], a[folds == 0])  # fold 0's weights come from folds 1 and 2
    assert rmse_on(all_rows)(blend) > rmse_on(all_rows)(sum(w * preds[k] for k, w in everywhere.items()))


def _trained(name: str, families: list[str], folds: int = 3, bag: bool = False):
    schema = load_schema(name)
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    out = train_models(schema, feats["train"], feats["validation"], pre, TransformSettings(),
                       TrainSettings(families=families, cv_folds=folds, bag=bag), seed=0)
    return schema, splits, feats, out


def test_families_are_chosen_on_out_of_fold_predictions_and_the_ensemble_round_trips() -> None:
    schema, splits, feats, (serving, meta, board, history) = _trained(
        "breast_cancer", ["lightgbm", "logistic", "decision_tree", "ensemble"])
    data = pd.concat([feats["train"], feats["validation"]], ignore_index=True)
    oof = meta["oof"]
    assert set(oof["family"]) == {"lightgbm", "logistic", "decision_tree"} and oof["fold"].nunique() == 3
    for family, part in oof.groupby("family"):  # the board's score is the metric of all out-of-fold predictions
        y = data[schema.label].to_numpy()[part["row"]].astype(str)
        recomputed = score(schema.task, y, part[["proba_benign", "proba_malignant"]].to_numpy(),
                           np.array(["benign", "malignant"]), schema.positive_class)["roc_auc"]
        assert board.set_index("family").loc[family, "score"] == pytest.approx(recomputed)
    assert (board["selected_on"].str.startswith("3-fold CV")).all() and board.iloc[0]["selected"]
    best_single = board[board["family"] != "ensemble"]["score"].max()
    ens = board.set_index("family").loc["ensemble"]
    assert ens["selected_on"] == "3-fold CV (weights chosen on the other folds)"
    # chosen only when its held-out blend beats the best single family (a tie goes to the family)
    weights = json.loads(ens["params"])
    assert (meta["family"] == "ensemble") == (ens["score"] > best_single and len(weights) > 1)
    x = as_model_input(splits["test"], schema)
    if meta["family"] == "ensemble":  # its members were refitted on all the training and validation rows
        model = serving.steps[-1][1]
        assert isinstance(model, WeightedEnsembleClassifier) and len(model.members) >= 2
        assert sum(model.weights) == pytest.approx(1)
    loaded, loaded_meta = load_bundle(bundle_files(serving, {k: v for k, v in meta.items()
                                                             if k not in ("candidates", "oof")}))
    np.testing.assert_allclose(loaded.predict_proba(x), serving.predict_proba(x))
    # batch inference's own path (breast_cancer has no categorical column: no known categories to check)
    rows, report = predict_frame(loaded, schema, splits["test"].drop(columns=[schema.label]))
    assert report["unseen_categories"] == {}
    np.testing.assert_allclose(rows[["proba_benign", "proba_malignant"]].to_numpy(), serving.predict_proba(x))
    candidates = meta["candidates"]
    if "ensemble" in candidates:
        files = bundle_files(candidates["ensemble"], {"family": "ensemble"})
        assert "member0.model.json" in files and not any(f.endswith(".pkl") for f in files)
        reloaded, _ = load_bundle(files)
        np.testing.assert_allclose(reloaded.predict_proba(x), candidates["ensemble"].predict_proba(x))
    lightgbm_folds = history[(history["family"] == "lightgbm")]["fit"].unique()
    assert {"fold 1", "fold 2", "fold 3"} <= set(lightgbm_folds)


def test_a_regression_ensemble_averages_its_members_and_round_trips() -> None:
    from sklearn.pipeline import Pipeline

    schema, splits, _, (serving, meta, _, _) = _trained("diabetes", ["lightgbm", "logistic"])
    pipes = {meta["family"]: serving, **meta["candidates"]}
    members = [Pipeline(pipes[f].steps[1:]) for f in ("lightgbm", "logistic")]  # encoding step and model
    ens = Pipeline([serving.steps[0], ("encode", "passthrough"), ("model", WeightedEnsembleRegressor(
        members=members, weights=[0.3, 0.7], names=["lightgbm", "logistic"]))])
    x = as_model_input(splits["test"], schema)
    np.testing.assert_allclose(ens.predict(x), 0.3 * pipes["lightgbm"].predict(x) + 0.7 * pipes["logistic"].predict(x))
    files = bundle_files(ens, {"family": "ensemble"})
    assert {"member0.model.txt", "member1.pipeline.skops"} <= set(files)  # LightGBM in its own text format
    loaded, loaded_meta = load_bundle(files)
    assert loaded_meta["members"] == ["lightgbm", "logistic"] and loaded_meta["weights"] == [0.3, 0.7]
    np.testing.assert_allclose(loaded.predict(x), ens.predict(x))


def test_the_validation_split_still_compares_when_cv_is_off() -> None:
    _, _, _, (_, meta, board, _) = _trained("wine", ["logistic", "decision_tree", "ensemble"], folds=0)
    assert meta["selected_on"] == "validation split" and "oof" not in meta
    assert list(board["family"]) != [] and "ensemble" not in set(board["family"])  # it needs out-of-fold predictions


def test_bagged_lightgbm_serves_its_fold_models_averaged_and_exports_as_one_graph() -> None:
    from trainflow.export import OnnxModel, to_onnx
    from trainflow.metrics import predict_scores

    schema = load_schema("breast_cancer")
    splits, _ = split_data(ingest_data(schema)[0], schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    serving, meta, board, history = train_models(
        schema, feats["train"], feats["validation"], pre, TransformSettings(),
        TrainSettings(families=["lightgbm", "logistic", "ensemble"], cv_folds=3, bag=True), seed=0)
    pipes = {meta["family"]: serving, **meta["candidates"]}
    bag = pipes["lightgbm"].steps[-1][1]
    assert isinstance(bag, WeightedEnsembleClassifier) and bag.weights == pytest.approx([1 / 3] * 3)
    assert bag.names == ["lightgbm fold 1", "lightgbm fold 2", "lightgbm fold 3"]
    assert board.set_index("family").loc["lightgbm", "estimator"] == "3 x LGBMClassifier, averaged"
    assert set(history[history["family"] == "lightgbm"]["fit"]) == {"fold 1", "fold 2", "fold 3"}  # no refit
    # each member is its fold's model: it gives the out-of-fold predictions the families were compared on
    data = pd.concat([feats["train"], feats["validation"]], ignore_index=True).drop(columns=[schema.label])
    oof = meta["oof"][meta["oof"]["family"] == "lightgbm"]
    for fold, member in enumerate(bag.members):
        held = oof[oof["fold"] == fold]
        np.testing.assert_allclose(member.predict_proba(data.iloc[held["row"]]),
                                   held[["proba_benign", "proba_malignant"]].to_numpy())
    x = as_model_input(splits["test"], schema)
    averaged = np.mean([m.predict_proba(pre.transform(x)) for m in bag.members], axis=0)
    np.testing.assert_allclose(pipes["lightgbm"].predict_proba(x), averaged)
    files = bundle_files(pipes["lightgbm"], {"family": "lightgbm"})
    assert {"member0.model.txt", "member2.model.txt"} <= set(files)  # each fold's booster in LightGBM's format
    loaded, _ = load_bundle(files)
    np.testing.assert_allclose(loaded.predict_proba(x), averaged)
    onnx = OnnxModel(to_onnx(pipes["lightgbm"], schema, "lightgbm"), [c.name for c in schema.features],
                     ["benign", "malignant"])
    # ONNX's trees compare in float32: a value within rounding of a threshold may take the other branch in one
    # of the three members (2 of 86 rows here); every other row matches to float32 precision
    diff = np.abs(predict_scores(onnx, x, schema.task) - averaged).max(axis=1)
    assert np.mean(diff < 1e-5) >= 0.95 and diff.max() < 0.01, np.sort(diff)[-5:]
    assert (onnx.predict(x) == loaded.predict(x)).all()


def test_the_random_forest_is_scored_on_its_out_of_bag_predictions_from_one_fit() -> None:
    from sklearn.base import clone

    from tasks.train import out_of_bag_applies

    schema, _, feats, (serving, meta, board, history) = _trained("breast_cancer", ["logistic", "random_forest"])
    forest = history[history["family"] == "random_forest"]
    assert set(forest["fit"]) == {"all rows, out-of-bag"}  # one fit, no folds, no refit
    on = board.set_index("family")["selected_on"]
    assert on["random_forest"] == "out-of-bag predictions (3 folds' rows)" and on["logistic"] == "3-fold CV"
    pipe = serving if meta["family"] == "random_forest" else meta["candidates"]["random_forest"]
    model = pipe.named_steps["model"]
    assert not hasattr(model, "oob_decision_function_")  # one value per training row: not saved with the model
    assert model.n_jobs is None  # fitted on n_jobs cores; predicts on as many as predict_scores gives it
    data = pd.concat([feats["train"], feats["validation"]], ignore_index=True)
    x, encode = data.drop(columns=[schema.label]), pipe.named_steps["encode"]
    x = x if encode == "passthrough" else encode.transform(x)
    again = clone(model).fit(x, data[schema.label].astype(str))  # the same forest: same seed, same rows
    part = meta["oof"][meta["oof"]["family"] == "random_forest"].sort_values("row")
    assert len(part) == len(data) and part["fold"].nunique() == 3
    np.testing.assert_allclose(part[["proba_benign", "proba_malignant"]].to_numpy(), again.oob_decision_function_)
    settings = TrainSettings()
    assert out_of_bag_applies("random_forest", settings, np.zeros(10)) and not out_of_bag_applies(
        "random_forest", settings, np.array([-1, -1, 0, 1]))  # forward-chaining folds: k fits
    assert not out_of_bag_applies("random_forest", TrainSettings(params={"random_forest": {"bootstrap": False}}),
                                  np.zeros(10)) and not out_of_bag_applies("extra_trees", settings, np.zeros(10))


def test_lightgbm_xt_is_a_boosted_family_of_its_own_refitted_bagged_and_saved_as_lightgbm() -> None:
    schema, splits, _, (serving, meta, board, history) = _trained(
        "breast_cancer", ["lightgbm", "lightgbm_xt", "logistic", "ensemble"])
    pipes = {meta["family"]: serving, **meta["candidates"]}
    xt = pipes["lightgbm_xt"]
    assert xt.named_steps["model"].get_params()["extra_trees"] is True
    assert not pipes["lightgbm"].named_steps["model"].get_params().get("extra_trees", False)
    assert xt.named_steps["encode"] == "passthrough"  # native categoricals, as the lightgbm family
    fits = history[history["family"] == "lightgbm_xt"]
    assert {"fold 1", "fold 2", "fold 3"} <= set(fits["fit"])  # each fold early-stopped on its held-out rows
    rounds = board.set_index("family").loc["lightgbm_xt", "best_iteration"]  # the folds' mean best round
    assert xt.named_steps["model"].n_estimators == rounds < TrainSettings().lightgbm_max_rounds  # the refit's
    files = bundle_files(xt, {"family": "lightgbm_xt"})
    assert "model.txt" in files and "[extra_trees: 1]" in files["model.txt"].decode()  # LightGBM's own format
    x = as_model_input(splits["test"], schema)
    loaded, loaded_meta = load_bundle(files)
    assert loaded_meta["model_format"] == "lightgbm-text"
    np.testing.assert_allclose(loaded.predict_proba(x), xt.predict_proba(x))
    _, _, _, (bagged, _, _, _) = _trained("breast_cancer", ["lightgbm_xt"], bag=True)
    model = bagged.steps[-1][1]  # train.bag: its fold models averaged, as LightGBM's
    assert isinstance(model, WeightedEnsembleClassifier)
    assert model.names == [f"lightgbm_xt fold {i}" for i in (1, 2, 3)] and model.weights == pytest.approx([1 / 3] * 3)


def test_unknown_category_codes_reach_lightgbm_as_missing_without_its_warning(capfd) -> None:
    from types import SimpleNamespace

    import lightgbm as lgb

    from trainflow.models.classic import fit_lightgbm
    from trainflow.models.family import FitRequest

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"c": np.r_[rng.integers(0, 5, 190), -np.ones(10, dtype=int)], "n": rng.random(200)})
    y = rng.random(200)
    # at LightGBM's warning level (verbose=0) in both fits: with -1 whether it warns depends on the global log
    # level the last LightGBM call left (the flow's fits printed it with -1)
    est = lgb.LGBMRegressor(n_estimators=5, verbose=0)
    fit_lightgbm(est, FitRequest("lightgbm", x, y, None, None, SimpleNamespace(categorical_features=["c"]),
                                 TrainSettings(), "native"))
    assert "negative value" not in capfd.readouterr().out
    plain = lgb.LGBMRegressor(n_estimators=5, verbose=0).fit(x, y, categorical_feature=["c"])
    assert "negative value in categorical features" in capfd.readouterr().out  # what the fit above avoids
    np.testing.assert_array_equal(est.predict(x), plain.predict(x))  # the same model: -1 is missing to LightGBM


def test_catboost_early_stops_and_round_trips_in_its_own_format() -> None:
    from trainflow.errors import ArtifactError
    from trainflow.models.boosters import CatBoostClassifierModel

    schema = load_schema("adult")
    raw = ingest_data(schema)[0].sample(3000, random_state=0)
    splits, _ = split_data(raw, schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    serving, meta, board, history = train_models(schema, feats["train"], feats["validation"], pre,
                                                 TransformSettings(), TrainSettings(families=["catboost"],
                                                                                    cv_folds=3), seed=0)
    assert meta["family"] == "catboost" and meta["encoding"] == "onehot"  # numbers only: ONNX can take it
    model = serving.named_steps["model"]
    assert isinstance(model, CatBoostClassifierModel) and not model.model_.get_cat_feature_indices()
    fits = history[history["family"] == "catboost"]
    assert {"fold 1", "fold 2", "fold 3"} <= set(fits["fit"])  # each fold early-stopped on its held-out rows
    rounds = board.set_index("family").loc["catboost", "best_iteration"]  # the folds' mean best round
    assert model.model_.tree_count_ == rounds < TrainSettings().lightgbm_max_rounds  # the refit's
    x = as_model_input(splits["test"], schema)
    x.loc[x.index[0], "occupation"] = None  # missing, and a category training never saw: both still score
    x.loc[x.index[1], "native-country"] = "Atlantis"
    files = bundle_files(serving, meta)
    assert "model.cbm" in files and files["model.cbm"][:4] == b"CBM1"  # CatBoost's own binary format
    loaded, loaded_meta = load_bundle(files)
    assert loaded_meta["model_format"] == "catboost-cbm" and loaded_meta["classes"] == ["<=50K", ">50K"]
    np.testing.assert_allclose(loaded.predict_proba(x), serving.predict_proba(x))
    assert list(loaded.predict(x)) == list(serving.predict(x))
    assert score(schema.task, splits["test"][schema.label].astype(str).to_numpy(), serving.predict_proba(x),
                 serving.classes_, schema.positive_class)["roc_auc"] > 0.85
    with pytest.raises(ArtifactError, match="CatBoost model file"):
        load_bundle({**files, "model.cbm": files["model.cbm"][:100]})


def test_a_catboost_regressor_joins_the_ensemble_and_the_ensemble_round_trips() -> None:
    schema, splits, _, (serving, meta, board, _) = _trained("diabetes", ["catboost", "logistic", "ensemble"])
    pipes = {meta["family"]: serving, **meta["candidates"]}
    assert "catboost" in pipes and board.set_index("family").loc["catboost", "best_iteration"] > 1
    assert meta["family"] == "ensemble" and "catboost" in serving.named_steps["model"].names
    x = as_model_input(splits["test"], schema)
    for family, pipe in pipes.items():
        loaded, _ = load_bundle(bundle_files(pipe, {"family": family}))
        np.testing.assert_allclose(loaded.predict(x), pipe.predict(x))
