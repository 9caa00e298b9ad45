"""Ingest reads every kind of source and normalises text noise, without changing types."""

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.ingest import ingest_data
from trainflow.sources import content_hash, normalise, read_source
from trainflow.schema import DatasetSchema, load_schema


def test_adult_normalised(adult_raw: pd.DataFrame) -> None:
    assert adult_raw.shape == (32561, 14)
    assert adult_raw["workclass"].isna().sum() == 1836  # the '?' markers are now missing values
    assert not adult_raw["occupation"].dropna().str.startswith(" ").any()  # leading spaces stripped
    assert set(adult_raw["income"]) == {"<=50K", ">50K"}
    assert adult_raw["age"].dtype.kind == "i"


def test_normalise_does_not_modify_input() -> None:
    df = pd.DataFrame({"a": [" x", "?", None, "y "], "n": [1, 2, 3, 4]})
    before = df.copy()
    out = normalise(df, ["?"])
    pd.testing.assert_frame_equal(df, before)
    assert out["a"].tolist()[0] == "x" and out["a"].isna().tolist() == [False, True, True, False]


@pytest.mark.parametrize("kind", ["csv", "parquet", "folder", "sql"])
def test_sources_give_same_content(kind: str, tmp_path: Path, adult_schema: DatasetSchema) -> None:
    sample = read_source("data/sample/adult.parquet", "adult").head(500)
    if kind == "csv":
        src, query = tmp_path / "a.csv", None
        sample.to_csv(src, index=False)
    elif kind == "parquet":
        src, query = tmp_path / "a.parquet", None
        sample.to_parquet(src)
    elif kind == "folder":
        src, query = tmp_path / "parts", None
        sample.assign(part=sample.index % 3).to_parquet(src, partition_cols=["part"])
    else:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
        sample.to_sql("adult", engine, index=False)
        engine.dispose()
        src, query = f"sqlite:///{tmp_path / 'a.db'}", "SELECT * FROM adult"
    raw, report = ingest_data(adult_schema, str(src), query)
    raw = raw.drop(columns=["part"], errors="ignore")
    assert len(raw) == 500 and report.loc[0, "rows"] == 500
    expected = normalise(sample, ["?"])
    key = list(expected.columns)  # partitions come back in another order: compare as sets of rows
    a = raw[key].sort_values(key).reset_index(drop=True)
    b = expected.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.mark.parametrize("name,rows,label_kind", [("breast_cancer", 569, "O"), ("wine", 178, "O"),
                                                  ("diabetes", 442, "f")])
def test_sklearn_datasets(name: str, rows: int, label_kind: str) -> None:
    schema = load_schema(name)
    raw, _ = ingest_data(schema)
    assert len(raw) == rows
    assert (raw["target"].dtype.kind == "f") == (label_kind == "f")


def test_content_hash_is_order_and_format_independent_of_file() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert content_hash(df) == content_hash(df.copy())
    assert content_hash(df) != content_hash(df.assign(a=[1, 3]))
