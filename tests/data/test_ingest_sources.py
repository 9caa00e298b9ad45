"""Ingest reads every kind of source and normalises text noise, without changing types."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
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
    later = normalise(df.set_axis(range(10, 14)), ["?"])  # a later batch of a source: its index counts on
    assert later["a"].tolist() == out["a"].tolist() and list(later.index) == [10, 11, 12, 13]


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
    assert content_hash(df) != content_hash(df.assign(b=["x", None])) != content_hash(df.assign(b=["x", ""]))
    assert content_hash(df) != content_hash(df.assign(b=["xy", ""]))  # where one value ends and the next begins


def test_content_hash_is_independent_of_chunks_and_slices() -> None:
    table = pa.Table.from_pandas(read_source("data/sample/adult.parquet", "adult"), preserve_index=False)
    table = pa.concat_tables([table.slice(0, 1000), table.slice(1000)])  # two chunks, the second a slice
    assert table["workclass"].num_chunks == 2
    assert content_hash(table) == content_hash(table.combine_chunks())
    assert content_hash(table.slice(10, 500)) == content_hash(pa.Table.from_pandas(table.slice(10, 500).to_pandas()))


def test_a_large_parquet_source_is_ingested_batch_by_batch(tmp_path: Path, adult_schema: DatasetSchema) -> None:
    import pyarrow.parquet as pq

    from tasks.ingest import ingest
    from trainflow.catalog import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    whole = ingest.fn(str(store.root), "whole", adult_schema)
    batched = ingest.fn(str(store.root), "batched", adult_schema, query="age >= 30", batch_rows=5_000)
    assert pq.ParquetFile(store.local_path(batched)).metadata.num_row_groups == 7  # one per batch of 5,000 rows
    expected = store.read_table(whole).query("age >= 30", engine="python").reset_index(drop=True)
    pd.testing.assert_frame_equal(store.read_table(batched), expected)
    report = store.read_table(store.find("batched", "ingest", "ingest_report")).iloc[0]
    assert report["rows"] == len(expected) and report["missing_cells"] == expected.isna().sum().sum()
    assert report["content_sha256"] == content_hash(expected)


def test_categories_read_as_dictionaries_are_normalised_to_the_same_rows_and_hash(
        tmp_path: Path, adult_schema: DatasetSchema) -> None:
    """Ingest reads the schema's categorical columns (and a classification label) from Parquet as dictionaries and
    normalises each distinct value once: the raw rows, their types and the content hash are those of the text
    normalised row by row. A column pandas stored as a Categorical (a dictionary in the file) is normalised too."""
    import pyarrow.parquet as pq

    from tasks.ingest import few_values, ingest
    from trainflow.catalog import ArtifactStore
    from trainflow.sources import iter_source

    sample = read_source("data/sample/adult.parquet", "adult").head(3000)
    noisy = sample.assign(workclass=sample["workclass"].where(sample.index % 7 > 0, "\u00a0Private\t"),
                          occupation=sample["occupation"].where(sample.index % 11 > 0, ""))
    src = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pandas(noisy, preserve_index=False), src, row_group_size=1000)
    assert {"workclass", "occupation", "income"} <= set(few_values(adult_schema))
    first = next(iter_source(str(src), "adult", batch_rows=1000, arrow=True, dictionary=few_values(adult_schema)))
    assert pa.types.is_dictionary(first["workclass"].type) and pa.types.is_dictionary(first["income"].type)

    store = ArtifactStore(tmp_path / "store")
    raw = store.read_arrow(ingest.fn(str(store.root), "run", adult_schema, str(src), batch_rows=1000))
    expected = pa.Table.from_pandas(normalise(noisy, ["?"]), preserve_index=False)
    assert raw.schema.remove_metadata() == expected.schema.remove_metadata()
    assert raw.replace_schema_metadata(None).equals(expected.replace_schema_metadata(None))
    assert raw["workclass"].null_count == noisy["workclass"].str.strip().eq("?").sum() > 0  # Adult's markers
    assert "Private" in raw["workclass"].to_pylist()[::7] and raw["occupation"].null_count > 3000 // 11
    report = store.read_table(store.find("run", "ingest", "ingest_report")).iloc[0]
    assert report["content_sha256"] == content_hash(expected)

    categorical = tmp_path / "c.parquet"  # pandas writes a Categorical as a dictionary column
    noisy.astype({"workclass": "category"}).to_parquet(categorical, index=False)
    raw = store.read_arrow(ingest.fn(str(store.root), "categorical", adult_schema, str(categorical)))
    assert raw["workclass"].type == pa.large_string()
    assert raw["workclass"].to_pylist() == expected["workclass"].to_pylist()


def test_a_database_source_is_only_read_and_a_failed_read_leaves_nothing(tmp_path: Path,
                                                                          adult_schema: DatasetSchema) -> None:
    from trainflow.errors import DataError

    missing = tmp_path / "db.sqlite"  # the README's example before the table exists
    with pytest.raises(DataError, match="no SQLite database file at") as error:
        ingest_data(adult_schema, f"sqlite:///{missing}", "SELECT * FROM adult")
    assert error.value.rule == "source_exists" and not missing.exists()  # SQLite would have created it
    db = tmp_path / "a.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    for query, said in (("SELECT * FROM adult", "no such table: adult"), ("SELECT a FROM t WHERE", "not one statement that can be read")):
        with pytest.raises(DataError, match=said) as error:
            ingest_data(adult_schema, f"sqlite:///{db}", query)
        assert error.value.rule in ("sql_readable", "sql_read_only") and "\n" not in str(error.value)


WRITING_QUERIES = {  # each reached the database before, and one of them created a file
    "attach": ("ATTACH DATABASE '{tmp}/x.db' AS x", "ATTACH"),
    "delete returning": ("DELETE FROM keep RETURNING *", "DELETE, not a SELECT"),
    "delete in a with": ("WITH d AS (DELETE FROM keep RETURNING *) SELECT * FROM d", "DELETE inside its SELECT"),
    "load_extension": ("SELECT load_extension('{tmp}/evil')", "calls load_extension()"),
    "two statements": ("SELECT * FROM keep; DROP TABLE keep", "2 statements"),
    "pragma": ("PRAGMA writable_schema = 1", "PRAGMA, not a SELECT"),
    "select into": ("SELECT * INTO copy FROM keep", "INTO inside its SELECT"),
    "insert": ("INSERT INTO keep VALUES (2)", "INSERT, not a SELECT"),
}


@pytest.fixture
def keep_db(tmp_path: Path) -> Path:
    db = tmp_path / "keep.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE keep (a INTEGER)"))
        conn.execute(sa.text("INSERT INTO keep VALUES (1)"))
    engine.dispose()
    return db


def _unchanged(db: Path, tmp: Path) -> None:
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM keep")).scalar() == 1
    assert sorted(p.name for p in tmp.iterdir()) == ["keep.db"]  # no attached or copied database made


@pytest.mark.parametrize("payload", sorted(WRITING_QUERIES))
def test_a_query_that_writes_is_refused_before_it_reaches_the_database(payload: str, keep_db: Path,
                                                                        adult_schema: DatasetSchema) -> None:
    from trainflow.errors import DataError

    query, said = WRITING_QUERIES[payload]
    with pytest.raises(DataError, match=said) as error:
        ingest_data(adult_schema, f"sqlite:///{keep_db}", query.format(tmp=keep_db.parent))
    assert error.value.rule == "sql_read_only" and "\n" not in str(error.value)
    _unchanged(keep_db, keep_db.parent)


@pytest.mark.parametrize("payload", sorted(WRITING_QUERIES))
def test_the_session_itself_is_read_only_when_a_query_gets_past_the_parser(payload: str, keep_db: Path,
                                                                           adult_schema: DatasetSchema,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from trainflow import sources
    from trainflow.errors import DataError

    monkeypatch.setattr(sources, "check_query", lambda *args: None)  # as if the parser missed it
    query = WRITING_QUERIES[payload][0].format(tmp=keep_db.parent)
    with pytest.raises(DataError) as error:
        ingest_data(adult_schema, f"sqlite:///{keep_db}", query)
    assert error.value.rule in ("sql_readable", "non_empty") and "\n" not in str(error.value)
    _unchanged(keep_db, keep_db.parent)


def test_a_plain_select_with_a_with_clause_and_a_union_is_read(keep_db: Path, adult_schema: DatasetSchema) -> None:
    from trainflow.sources import read_source

    rows = read_source(f"sqlite:///{keep_db}", "keep",
                       "WITH k AS (SELECT a FROM keep) SELECT a FROM k UNION ALL SELECT lower('2') AS a")
    assert sorted(map(str, rows["a"])) == ["1", "2"]
