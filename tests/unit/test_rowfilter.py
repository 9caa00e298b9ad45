"""Row filters for file sources: what pandas' query syntax allows for a filter works; nothing else runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from trainflow.errors import DataError
from trainflow.rowfilter import apply_filter, parse_filter

ROWS = pd.DataFrame({"age": [20.0, 35.0, 50.0, np.nan, 41.0], "work": ["a", "b", "c", "a", None],
                     "hours per week": [10, 40, 60, 38, 45], "flag": [True, False, True, False, True]})


@pytest.mark.parametrize("text", [
    "age >= 30", "work in ['a', 'b'] and not age.isna()", "`hours per week` > 39", "30 < age <= 50",
    "(age > 30) & (work == 'c')", "(age < 30) | (work != 'a')", "flag", "~flag", "age > -1", "work not in ('a',)",
    "age.notna() or work.isnull()", "work == None", "age != age",
])
def test_a_filter_selects_what_pandas_query_selects(text: str) -> None:
    expected = ROWS.query(text).index.tolist()  # the test's own strings: the reference the syntax follows
    assert apply_filter(ROWS, text, "d").index.tolist() == expected
    table = pa.Table.from_pandas(ROWS.assign(row=ROWS.index), preserve_index=False)  # as ingest reads Parquet
    assert apply_filter(table, text, "d")["row"].to_pylist() == expected


@pytest.mark.parametrize("text, says", [
    ("age.__class__.__init__.__globals__['sys'].modules['os'].system('touch {marker}') == 0", "is not allowed"),
    ("__import__('os').system('touch {marker}')", "a call other than column.isna()"),
    ("@pd.io.common.os.system('touch {marker}')", "is not an expression"),
    ("age + 1 > 2", "the operator Add is not allowed"),
    ("[c for c in work] == 1", "ListComp expression is not allowed"),
    ("age.isna", "the attribute .isna is not allowed"),
    ("work.str.len() > 1", "is not allowed"),
    ("age > 1 & work == 'a'", "put each comparison in parentheses"),
    ("nope > 1", "names columns the data lacks: 'nope'"),
    ("age > 'x'", "cannot be computed on these values"),
    ("work", "does not give true or false per row"),
    ("age > " + "9" * 3000, "at most 2,000"),
])
def test_anything_else_is_refused_with_one_line(text: str, says: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(DataError) as refused:
        apply_filter(ROWS, text.format(marker=marker), "shop")
    message = str(refused.value)
    assert says in message and "dataset 'shop'" in message and "[rule: query]" in message
    assert "\n" not in message and len(message) < 400
    assert not marker.exists()  # nothing was executed


def test_a_refused_filter_is_refused_before_any_data_is_read() -> None:
    with pytest.raises(DataError, match="is not allowed"):
        parse_filter("age.__class__ == 1", "shop")
    assert parse_filter("`hours per week` > 1 and age.isna()", "shop").columns == {"hours per week", "age"}
