"""Split: sizes, stratification, time order, groups, seeds."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trainflow.errors import DataError
from trainflow.schema import ColumnSpec, DatasetSchema
from tasks.split import SplitSettings, split_data


def _schema(**roles: str) -> DatasetSchema:
    cols = [ColumnSpec(name="x", type="float"), ColumnSpec(name="y", type="category", role="label")]
    cols += [ColumnSpec(name=n, type="int", role=r) for n, r in roles.items()]
    return DatasetSchema(name="toy", task="binary", label="y", columns=cols)


def _frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "y": np.where(rng.random(n) < 0.2, "a", "b"),
                         "t": np.arange(n)[::-1], "g": rng.integers(0, 50, n)})


def test_stratified_sizes_balance_and_disjoint(adult_raw: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    splits, summary = split_data(adult_raw, adult_schema, SplitSettings(), seed=7)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == len(adult_raw)
    assert abs(sizes["train"] / len(adult_raw) - 0.70) < 0.005 and abs(sizes["test"] / len(adult_raw) - 0.15) < 0.005
    idx = [set(v.index) for v in splits.values()]
    assert not (idx[0] & idx[1]) and not (idx[0] & idx[2]) and not (idx[1] & idx[2])
    shares = summary[summary["class"] == ">50K"]["class_share"]
    assert shares.max() - shares.min() < 0.003  # stratified: same class balance in every split


def test_seeded() -> None:
    df, schema = _frame(), _schema()
    a, _ = split_data(df, schema, SplitSettings(), seed=1)
    b, _ = split_data(df, schema, SplitSettings(), seed=1)
    c, _ = split_data(df, schema, SplitSettings(), seed=2)
    assert list(a["test"].index) == list(b["test"].index) != list(c["test"].index)


def test_time_ordered_puts_latest_rows_last() -> None:
    splits, summary = split_data(_frame(), _schema(t="time"), SplitSettings(), seed=0)
    assert splits["train"]["t"].max() < splits["validation"]["t"].min()
    assert splits["validation"]["t"].max() < splits["test"]["t"].min()
    assert set(summary["strategy"]) == {"time"}


def test_group_aware_keeps_groups_whole() -> None:
    splits, _ = split_data(_frame(), _schema(g="group"), SplitSettings(), seed=0)
    groups = [set(v["g"]) for v in splits.values()]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])


def test_class_too_small_to_stratify_is_named() -> None:
    df = _frame()
    df.loc[df.index[:2], "y"] = "rare"
    df = df[(df["y"] != "rare") | (df.index < 2)]
    with pytest.raises(DataError, match="'rare' has 2 rows") as err:
        split_data(df, _schema(), SplitSettings(), seed=0)
    assert err.value.column == "y"


@pytest.mark.parametrize("roles", [{}, {"t": "time"}, {"g": "group"}])
def test_an_arrow_table_splits_as_its_dataframe_does(roles: dict, tmp_path) -> None:
    """The stage splits the Arrow table it reads; what it writes reads back as the DataFrame split would be."""
    from trainflow.catalog import ArtifactStore

    df = _frame().iloc[::-1].iloc[50:]  # an index that is not a plain range (as after quarantine)
    df.loc[df.index[::7], "x"] = np.nan
    store = ArtifactStore(tmp_path)
    valid = store.write_table("r", "validate", "valid", df)
    frames, frame_summary = split_data(df, _schema(**roles), SplitSettings(), seed=3)
    tables, table_summary = split_data(store.read_arrow(valid), _schema(**roles), SplitSettings(), seed=3)
    pd.testing.assert_frame_equal(table_summary, frame_summary)
    for name, part in tables.items():
        back = store.read_table(store.write_table("r", "split", name, part))
        pd.testing.assert_frame_equal(back, frames[name])


@pytest.mark.parametrize("roles", [{}, {"t": "time"}])
def test_the_stage_streams_a_large_input_into_the_same_parts(roles: dict, tmp_path) -> None:
    from tasks.split import split
    from trainflow.catalog import ArtifactStore

    df = _frame().iloc[::-1].iloc[50:]
    store = ArtifactStore(tmp_path)
    valid = store.write_table("r", "validate", "valid", df)
    whole = split.fn(str(tmp_path), "whole", _schema(**roles), valid, SplitSettings(train_fraction=0.8), 3)
    batched = split.fn(str(tmp_path), "batched", _schema(**roles), valid, SplitSettings(train_fraction=0.8), 3,
                       batch_rows=128)
    for name, ref in batched.items():
        pd.testing.assert_frame_equal(store.read_table(ref), store.read_table(whole[name]))
        groups = pq.ParquetFile(store.local_path(ref)).metadata.num_row_groups
        assert groups == (8 if not roles else 1)  # 950 rows in batches of 128; a time split does not stream
    pd.testing.assert_frame_equal(store.read_table(store.find("batched", "split", "split_summary")),
                                  store.read_table(store.find("whole", "split", "split_summary")))


@pytest.mark.parametrize("n, classes, frac, seed", [(1000, 2, 0.15, 0), (5003, 7, 0.1765, 43), (40, 3, 0.5, 1),
                                                    (20000, 5, 0.3, 7), (31, 10, 0.2, 2)])
def test_stratified_positions_are_scikit_learns(n: int, classes: int, frac: float, seed: int) -> None:
    from sklearn.model_selection import train_test_split

    from tasks.split import _stratified_two_way

    rng = np.random.default_rng(seed)
    codes = np.minimum(rng.geometric(0.4, n) - 1, classes - 1)  # unbalanced, every class present
    codes[:classes] = np.arange(classes)
    pos = rng.permutation(n * 2)[:n]  # positions in no order, as the second split gets them
    try:
        theirs = train_test_split(pos, test_size=frac, random_state=seed, stratify=codes)
    except ValueError:  # (31 rows, 10 classes: too few for scikit-learn, which then decides, and refuses)
        with pytest.raises(ValueError):
            _stratified_two_way(pos, frac, seed, codes)
        return
    ours = _stratified_two_way(pos, frac, seed, codes)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    # a part the caller does not need shuffled: the same positions; the shuffled one still in scikit-learn's order
    first, rest = _stratified_two_way(pos, frac, seed, codes, shuffled=(True, False))
    np.testing.assert_array_equal(first, theirs[0])
    np.testing.assert_array_equal(np.sort(rest), np.sort(theirs[1]))
    neither = _stratified_two_way(pos, frac, seed, codes, shuffled=(False, False))
    for part, expected in zip(neither, theirs):
        np.testing.assert_array_equal(np.sort(part), np.sort(expected))


@pytest.mark.parametrize("labels", [["b", "a", "c", None], [3, 1, 2, 1], [True, False, False, False]])
def test_the_summary_counts_each_splits_classes_as_value_counts_does(labels: list) -> None:
    from tasks.split import split_positions

    n = 400
    y = pd.Series([labels[i % len(labels)] for i in range(n)])
    df = pd.DataFrame({"x": np.arange(n), "y": y.astype("str").where(y.notna()) if isinstance(labels[0], str) else y})
    positions, summary, _ = split_positions(df, _schema(), SplitSettings(strategy="random"), seed=5)
    for name, pos in positions.items():
        part = df["y"].iloc[pos]
        counts = part.value_counts().sort_index()
        got = summary[summary["split"] == name]
        assert got["class"].tolist() == [str(c) for c in counts.index]
        assert got["class_rows"].tolist() == counts.tolist()
        assert got["class_share"].tolist() == pytest.approx((counts / len(part)).tolist())
        assert set(got["rows"]) == {len(part)}
