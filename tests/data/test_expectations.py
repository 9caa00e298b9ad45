"""The Arrow engine of validation gives Great Expectations' results: each expectation type it computes, on
the column types it computes, against GX itself on the same frame (success, unexpected count and percent,
sample values, observed value, quarantined rows); what it does not compute is handed to GX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tasks.validate import judge_batches, judge_table, validate, validate_data
from trainflow.catalog import ArtifactStore
from trainflow.errors import ValidationFailed
from trainflow.expectations import COMPILED, run_compiled
from trainflow.schema import DatasetSchema, load_schema

N = 14


def _frame() -> pd.DataFrame:
    s = ["x", "y", None, "zz", "x", "wé", "x", "long one", "y", "", "x", "ü", "x", "y"]
    return pd.DataFrame({
        "i": np.array([1, 2, 3, 3, 5, 4, 6, 7, 8, 9, 10, 11, 12, 40], dtype=np.int64),
        "f": [0.5, np.nan, 2.5, 3.0, -1.0, 9.9, 1.0, 1.0, np.inf, -np.inf, 4.0, 4.5, np.nan, 7.0],
        "s": pd.array(s, dtype="str"),
        "b": np.array([True, False] * 7),
        "null_f": np.full(N, np.nan),
        "null_s": pd.array([None] * N, dtype="str"),
        "mixed": pd.Series([1, "a", 2.5, None, "b", 3, 4, 5, 6, 7, 8, 9, 10, "z"], dtype=object),
        "nullable": pd.array([1, None, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], dtype="Int64"),
    })


def _e(kind: str, severity: str = "critical", **kwargs) -> dict:  # noqa: ANN003
    return {"type": kind, "kwargs": kwargs, "meta": {}, "severity": severity}


EXPECTATIONS = [
    _e("expect_table_row_count_to_be_between", min_value=1),
    _e("expect_table_row_count_to_be_between", min_value=20, severity="warning"),
    _e("expect_table_row_count_to_be_between", min_value=1, max_value=N, strict_max=True, severity="warning"),
    *[_e("expect_column_to_exist", column=c) for c in ("i", "f", "s", "b", "mixed")],
    _e("expect_column_to_exist", column="absent", severity="warning"),
    _e("expect_column_values_to_not_be_null", column="i"),
    _e("expect_column_values_to_not_be_null", column="f"),
    _e("expect_column_values_to_not_be_null", column="s", mostly=0.9, severity="warning"),
    _e("expect_column_values_to_not_be_null", column="null_s", severity="warning"),
    _e("expect_column_values_to_not_be_null", column="null_f", mostly=0.5, severity="warning"),
    _e("expect_column_values_to_not_be_null", column="b"),
    _e("expect_column_values_to_be_between", column="i", min_value=0, max_value=10),
    _e("expect_column_values_to_be_between", column="i", min_value=1, strict_min=True, mostly=0.8),
    _e("expect_column_values_to_be_between", column="f", min_value=0, max_value=5, severity="warning"),
    _e("expect_column_values_to_be_between", column="f", max_value=9.9, strict_max=True, severity="warning"),
    _e("expect_column_values_to_be_between", column="null_f", min_value=0, max_value=1, severity="warning"),
    _e("expect_column_values_to_be_between", column="absent", min_value=0, severity="warning"),
    _e("expect_column_values_to_be_in_set", column="s", value_set=["x", "y"], severity="warning"),
    _e("expect_column_values_to_be_in_set", column="s", value_set=["x", "y", "zz", "wé", "long one", "", "ü"]),
    _e("expect_column_values_to_be_in_set", column="i", value_set=[1, 2, 3, 4, 5], mostly=0.2, severity="warning"),
    _e("expect_column_values_to_be_in_set", column="f", value_set=[1, 2.5, 4.5], severity="warning"),
    _e("expect_column_values_to_be_in_set", column="null_s", value_set=["x"]),
    *[_e("expect_column_values_to_be_in_type_list", column=c, type_list=types, severity="warning")
      for c in ("i", "f", "s", "b", "null_s")
      for types in (["int64"], ["float64", "float32"], ["int", "float"], ["StringDtype", "str"], ["bool"],
                    ["string"], ["object"])],
    _e("expect_column_values_to_be_increasing", column="i", strictly=True, severity="warning"),
    _e("expect_column_values_to_be_increasing", column="i", severity="warning"),
    _e("expect_column_values_to_be_increasing", column="f", severity="warning"),
    _e("expect_column_values_to_be_increasing", column="f", strictly=True, mostly=0.5, severity="warning"),
    _e("expect_column_unique_value_count_to_be_between", column="s", min_value=1, max_value=3, severity="warning"),
    _e("expect_column_unique_value_count_to_be_between", column="f", min_value=5),
    _e("expect_column_unique_value_count_to_be_between", column="null_s", min_value=0, max_value=0),
    _e("expect_column_value_lengths_to_be_between", column="s", min_value=1, max_value=2, severity="warning"),
    _e("expect_column_value_lengths_to_be_between", column="s", max_value=5, mostly=0.5),
    # left to GX: object and nullable-integer columns, a type it does not know
    _e("expect_column_values_to_be_between", column="nullable", min_value=2, severity="warning"),
    _e("expect_column_values_to_not_be_null", column="mixed", severity="warning"),
    _e("expect_column_values_to_be_in_type_list", column="mixed", type_list=["int", "str"], severity="warning"),
    _e("expect_column_values_to_match_regex", column="s", regex="^x", severity="warning"),
]

COMPARED = ["expectation", "column", "severity", "success", "unexpected_count", "observed_value", "sample",
            "exception", "kwargs", "quarantined"]


@pytest.fixture(scope="module")
def schema() -> DatasetSchema:
    return load_schema("adult").model_copy(update={"expectations": EXPECTATIONS})


def test_every_compiled_type_is_computed_in_arrow_here() -> None:
    done, left = run_compiled(_frame(), EXPECTATIONS, complete=True)
    assert {EXPECTATIONS[i]["type"] for i in done} == set(COMPILED)
    assert [EXPECTATIONS[i]["kwargs"]["column"] for i in left] == ["nullable", "mixed", "mixed", "s"]


@pytest.mark.parametrize("quarantine", [False, True])
def test_arrow_engine_gives_great_expectations_results(schema: DatasetSchema, quarantine: bool) -> None:
    df = _frame()
    arrow = validate_data(df, schema, quarantine=quarantine, max_quarantine_fraction=1.0, engine="arrow")
    gx = validate_data(df, schema, quarantine=quarantine, max_quarantine_fraction=1.0, engine="gx")
    a, g = arrow.results, gx.results
    assert len(a) == len(g) == len(EXPECTATIONS)
    for column in COMPARED:
        for k, (x, y) in enumerate(zip(a[column], g[column])):
            assert (pd.isna(x) and pd.isna(y)) or x == y, (column, a.loc[k, "expectation"], a.loc[k, "column"], x, y)
    np.testing.assert_allclose(a["unexpected_percent"].astype(float), g["unexpected_percent"].astype(float))
    assert not a["success"].all() and a["unexpected_count"].fillna(0).sum() > 20  # the frame breaks rules
    pd.testing.assert_frame_equal(arrow.valid, gx.valid)
    pd.testing.assert_frame_equal(arrow.quarantine.reset_index(drop=True), gx.quarantine.reset_index(drop=True))
    assert arrow.errors == gx.errors
    if quarantine:
        assert len(arrow.quarantine) and len(arrow.valid) < len(df)


def test_a_bundled_dataset_validates_the_same_way_in_both_engines(adult_raw: pd.DataFrame,
                                                                  adult_schema: DatasetSchema) -> None:
    df = adult_raw.head(3000).copy()
    df.loc[:40, "age"] = -5  # a row-level error for quarantine
    df.loc[50:60, "workclass"] = "Unheard-of"
    for quarantine in (False, True):
        arrow = validate_data(df, adult_schema, quarantine=quarantine, engine="arrow")
        gx = validate_data(df, adult_schema, quarantine=quarantine, engine="gx")
        pd.testing.assert_frame_equal(arrow.results, gx.results)
        pd.testing.assert_frame_equal(arrow.valid, gx.valid)
        assert arrow.errors == gx.errors
    done, left = run_compiled(df, adult_schema.expectations, complete=False)
    assert not left  # every rule of the bundled suite runs in Arrow


COMPILED_ONLY = [e for e in EXPECTATIONS if e["kwargs"].get("column") not in ("nullable", "mixed")
                 and e["type"] in COMPILED]


@pytest.mark.parametrize("rows", [1, 3, 5, N])
def test_a_table_judged_in_batches_gets_the_whole_tables_results(schema: DatasetSchema, rows: int) -> None:
    df = _frame().drop(columns=["nullable", "mixed"])
    df.index = df.index * 10 + 7  # labels that are not positions
    suite = schema.model_copy(update={"expectations": COMPILED_ONLY})
    whole = judge_table(df, suite, True, 1.0, "arrow")
    batched = judge_batches((df.iloc[i:i + rows] for i in range(0, N, rows)), suite, True, 1.0)
    pd.testing.assert_frame_equal(batched.results, whole.results)
    assert batched.set_aside == whole.set_aside and batched.errors == whole.errors
    assert whole.results["unexpected_count"].fillna(0).sum() > 20 and whole.set_aside  # the frame breaks rules
    increasing = whole.results[whole.results["expectation"] == "expect_column_values_to_be_increasing"]
    assert increasing["unexpected_count"].gt(0).all()  # batch boundaries fall on decreasing pairs (rows 4-5 of i)
    strict = judge_batches((df.iloc[i:i + rows] for i in range(0, N, rows)), suite, False, 0.01)
    assert strict.results["quarantined"].sum() == 0 and not strict.set_aside


def test_a_suite_with_a_rule_for_gx_is_not_judged_in_batches(schema: DatasetSchema) -> None:
    assert judge_batches([_frame()], schema, True, 1.0) is None  # object and nullable columns: GX, whole table


def test_batches_read_back_in_the_whole_tables_dtypes(tmp_path: Path) -> None:
    df = pd.DataFrame({"i": [1.0, 2.0, None, 4.0, 5.0, 6.0], "b": pd.array([True, False, None, True, True, False],
                                                                              dtype=object),
                       "n": [1, 2, 3, 4, 5, 6], "s": pd.array(["a", None, "b", "c", "d", "e"], dtype="str")})
    table = pa.table({"i": pa.array([1, 2, None, 4, 5, 6]), "b": pa.array([True, False, None, True, True, False]),
                      "n": pa.array([1, 2, 3, 4, 5, 6]), "s": pa.array(["a", None, "b", "c", "d", "e"])})
    store = ArtifactStore(tmp_path)
    ref = store.write_table("r", "ingest", "raw", table)
    whole = store.read_table(ref)
    pd.testing.assert_frame_equal(whole, df)
    batches = list(store.read_table_batches(ref, 2))
    assert [b.dtypes.tolist() for b in batches] == [whole.dtypes.tolist()] * 3
    pd.testing.assert_frame_equal(pd.concat(batches), whole)


def test_the_validate_stage_streams_a_large_table_with_the_whole_tables_outcome(
        adult_raw: pd.DataFrame, adult_schema: DatasetSchema, tmp_path: Path) -> None:
    df = adult_raw.head(5000).copy()
    df["hours-per-week"] = df["hours-per-week"].astype(float)
    df.loc[4000:4002, "hours-per-week"] = np.inf  # error rules for quarantine: infinite hours
    df.loc[2990:3010, "workclass"] = "Unheard-of"  # a warning, across a batch boundary
    age = pa.array(df["age"]).to_pylist()
    for i in [*range(100, 221), 4001]:  # and 2.4% missing ages (2% allowed) in an integer column, in two batches
        age[i] = None
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    table = table.set_column(0, "age", pa.array(age, pa.int64()))
    store = ArtifactStore(tmp_path)
    raw = store.write_table("r", "ingest", "raw", table)
    outs = {}
    for run, batch_rows in (("whole", None), ("batched", 1000)):
        valid = validate.fn(str(tmp_path), run, adult_schema, raw, quarantine=True, batch_rows=batch_rows)
        outs[run] = [store.read_table(store.find(run, "validate", name))
                     for name in ("validation_results", "quarantine")] + [store.read_table(valid)]
    results, quarantine, valid = outs["batched"]
    pd.testing.assert_frame_equal(results, outs["whole"][0])
    assert results["quarantined"].sum() == 2 and len(quarantine) == 122 + 3 and len(valid) == 5000 - 124  # 4001: both
    failed = results.loc[~results["success"], ["column", "expectation"]].to_numpy().tolist()
    assert failed == [["age", "expect_column_values_to_not_be_null"],
                      ["workclass", "expect_column_values_to_be_in_set"],
                      ["hours-per-week", "expect_column_values_to_be_between"],
                      ["hours-per-week", "expect_column_values_to_be_finite"]]
    pd.testing.assert_frame_equal(quarantine.sort_values(["_rule", "_column"], kind="stable"),
                                  outs["whole"][1].sort_values(["_rule", "_column"], kind="stable"))
    pd.testing.assert_frame_equal(valid, outs["whole"][2])
    with pytest.raises(ValidationFailed):  # too many to set aside: the same failure in batches
        validate.fn(str(tmp_path), "strict", adult_schema, raw, quarantine=True, max_quarantine_fraction=0.001,
                    batch_rows=1000)


def test_a_schema_without_rules_validates_every_row() -> None:
    """A schema whose suite is empty (a user may write one) passes its rows on; it once failed on the results'
    missing columns."""
    from tasks.validate import validate_data
    from trainflow.schema import load_schema

    schema = load_schema("breast_cancer").model_copy(update={"expectations": []})
    rows = pd.DataFrame({c.name: [1.0, 2.0] for c in schema.columns})
    outcome = validate_data(rows, schema, quarantine=True)
    assert len(outcome.valid) == 2 and outcome.results.empty and outcome.errors == []
