"""The Arrow engine of validation gives Great Expectations' results: each expectation type it computes, on
the column types it computes, against GX itself on the same frame (success, unexpected count and percent,
sample values, observed value, quarantined rows); what it does not compute is handed to GX."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.validate import validate_data
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
