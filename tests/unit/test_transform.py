"""Transform: learns from the training split alone; never changes its input; unseen categories coded -1."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.impute import SimpleImputer

from trainflow.schema import DatasetSchema
from tasks.split import SplitSettings, split_data
from tasks.transform import fit_transform_splits
from trainflow.folds import fold_features
from trainflow.features import as_model_input, Imputer, QuantileClipper, TransformSettings, UNKNOWN_CODE


def test_fitted_on_train_only(adult_raw: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    splits, _ = split_data(adult_raw, adult_schema, SplitSettings(), seed=0)
    before = {k: v.copy() for k, v in splits.items()}
    pre, feats = fit_transform_splits(splits, adult_schema, TransformSettings())
    # scaled training features have mean ~0 and std ~1; the other splits only approximately
    assert abs(feats["train"]["age"].mean()) < 1e-9
    # poison the test split: the fitted statistics must not move
    poisoned = {**splits, "test": splits["test"].assign(age=1000)}
    pre2, _ = fit_transform_splits(poisoned, adult_schema, TransformSettings())
    num = lambda p: p.named_transformers_["num"].named_steps["scale"].mean_  # noqa: E731
    np.testing.assert_allclose(num(pre), num(pre2))
    for k in splits:  # inputs are not modified
        pd.testing.assert_frame_equal(splits[k], before[k])
    assert list(feats["test"].index) == list(splits["test"].index)


def test_unseen_category_gets_unknown_code(adult_raw: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    splits, _ = split_data(adult_raw, adult_schema, SplitSettings(), seed=0)
    pre, _ = fit_transform_splits(splits, adult_schema, TransformSettings())
    rows = as_model_input(splits["test"].head(3), adult_schema)
    rows.iloc[0, rows.columns.get_loc("workclass")] = "Space-agency"
    out = pre.transform(rows)
    assert out["workclass"].iloc[0] == UNKNOWN_CODE and out["workclass"].iloc[1] != UNKNOWN_CODE


def test_each_fold_fits_its_own_preprocessing(adult_raw: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    rows = adult_raw.head(400).reset_index(drop=True)
    folds = [(np.arange(100, 400), np.arange(0, 100)), (np.arange(0, 300), np.arange(300, 400))]
    rows.loc[0:9, "workclass"] = "Space-agency"  # only in fold 1's held-out rows
    rows.loc[0:99, "age"] = 90  # fold 1's held-out rows are old
    data = fold_features(rows, folds, adult_schema, TransformSettings())
    (fit1, held1), (fit2, held2) = data
    assert (held1["workclass"].iloc[:10] == UNKNOWN_CODE).all()  # fold 1 never saw the category
    assert (fit2["workclass"].iloc[:10] != UNKNOWN_CODE).all()  # fold 2 learnt it from these rows
    assert abs(fit1["age"].mean()) < 1e-9 and abs(fit2["age"].mean()) < 1e-9  # scaled on its own rows
    assert held1["age"].mean() > 1  # the old rows stand out against fold 1's scaling; they shaped fold 2's
    assert list(held1.index) == list(range(100)) and held1["income"].tolist() == rows["income"].iloc[:100].tolist()


def test_clipper_uses_training_quantiles() -> None:
    x = pd.DataFrame({"a": np.arange(1000, dtype=float)})
    clip = QuantileClipper(0.01, 0.99).fit(x)
    out = clip.transform(pd.DataFrame({"a": [-1e6, 500.0, 1e6]}))
    assert out[0, 0] == clip.lower_[0] and out[1, 0] == 500.0 and out[2, 0] == clip.upper_[0]
    assert 9 < clip.lower_[0] < 11 and 988 < clip.upper_[0] < 990


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")
@pytest.mark.parametrize("strategy", ["median", "mean", "most_frequent"])
@pytest.mark.parametrize("keep_empty", [False, True])
def test_imputer_learns_what_simple_imputer_learns(strategy: str, keep_empty: bool) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1001, 4)).round(1)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 2] = np.nan  # a column with no value at all
    x[::2, 3] = np.nan
    ours = Imputer(strategy=strategy, keep_empty_features=keep_empty).fit(x)
    theirs = SimpleImputer(strategy=strategy, keep_empty_features=keep_empty).fit(x)
    np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)
    np.testing.assert_array_equal(ours.transform(x), theirs.transform(x))


def test_the_stage_transforms_batch_by_batch_what_it_would_at_once(adult_raw: pd.DataFrame,
                                                                   adult_schema: DatasetSchema, tmp_path) -> None:
    from tasks.transform import transform
    from trainflow.catalog import ArtifactStore

    store = ArtifactStore(tmp_path)
    parts, _ = split_data(adult_raw, adult_schema, SplitSettings(), seed=0)
    refs = {name: store.write_table("r", "split", name, part) for name, part in parts.items()}
    _, expected = fit_transform_splits(parts, adult_schema, TransformSettings())
    batched = transform.fn(str(tmp_path), "r", adult_schema, refs, TransformSettings(), batch_rows=4_000)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(store.read_table(batched[name]), frame)
    assert pq.ParquetFile(store.local_path(batched["train"])).metadata.num_row_groups == 6  # 22,792 rows


def test_the_coder_learns_and_codes_the_same_from_a_categorical_as_from_text() -> None:
    from trainflow.features import CategoryCoder

    rng = np.random.default_rng(0)
    values = pd.Series(rng.choice(np.array(["a", "b", " c", "rare1", "rare2", None], dtype=object), 4000,
                                  p=[.4, .35, .24, .0006, .0004, .009]))
    text = pd.DataFrame({"x": values.astype("str"), "y": pd.Series(rng.choice(["u", "v"], 4000)).astype("str")})
    coded = text.astype("category")
    coded["x"] = coded["x"].cat.add_categories(["no row has it"])  # a category of the dictionary left unused
    unseen = pd.DataFrame({"x": pd.Series(["a", "zzz", None, "rare2"], dtype=object).astype("str"),
                           "y": pd.Series(["u", "v", "w", "u"]).astype("str")})
    for min_frequency in (1, 5):
        expected, got = CategoryCoder(min_frequency).fit(text), CategoryCoder(min_frequency).fit(coded)
        for a, b in [*zip(expected.categories_, got.categories_),
                     *zip(expected.infrequent_categories_, got.infrequent_categories_)]:
            assert list(a) == list(b)
        np.testing.assert_array_equal(expected.transform(text), got.transform(coded))
        np.testing.assert_array_equal(expected.transform(unseen), expected.transform(unseen.astype("category")))
    assert "no row has it" not in list(got.categories_[0]) + list(got.infrequent_categories_[0])
