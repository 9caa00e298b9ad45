"""Schema inference: types, label, task, and a starter GX suite, from a sample; and the command."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainflow.errors import TrainflowError
from trainflow.schema import infer_schema, load_schema
from tasks.validate import validate_data

ROOT = Path(__file__).resolve().parents[2]


def _toy(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"size": rng.normal(50, 10, n).round(2), "count": rng.integers(0, 9, n),
                         "colour": rng.choice(["red", "green", "blue"], n), "price": rng.normal(100, 5, n)})


def test_infer_types_task_and_suite() -> None:
    df = _toy()
    df.loc[:9, "colour"] = None
    schema = infer_schema(df, "toy", label="price")
    types = {c.name: c.type for c in schema.columns}
    assert types == {"size": "float", "count": "int", "colour": "category", "price": "float"}
    assert schema.task == "regression" and schema.label == "price"
    rules = {(e["type"], e["kwargs"].get("column")) for e in schema.expectations}
    assert ("expect_column_values_to_be_in_set", "colour") in rules
    assert ("expect_column_values_to_be_between", "size") in rules
    null_rule = next(e for e in schema.expectations if e["type"] == "expect_column_values_to_not_be_null"
                     and e["kwargs"]["column"] == "colour")
    assert 0.9 < null_rule["kwargs"]["mostly"] < 0.98  # 3.3% nulls in the sample, with slack
    assert validate_data(df, schema).errors == []  # the sample passes its own starter suite


def test_infer_binary_label() -> None:
    df = _toy().assign(churn=lambda d: np.where(d["size"] > 55, "yes", "no"))
    schema = infer_schema(df, "toy", label="churn")
    assert schema.task == "binary" and schema.positive_class == "yes"  # the minority class


def test_infer_command_writes_schema(tmp_path: Path) -> None:
    csv = tmp_path / "toy.csv"
    _toy().to_csv(csv, index=False)
    trainflow = Path(sys.executable).with_name("trainflow")  # the console command pyproject installs
    out = subprocess.run([str(trainflow), "schema", "infer", "--name", "toy", "--source", str(csv),
                          "--label", "price", "--schemas-dir", str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "toy.json").read_text())
    assert data["task"] == "regression" and data["source"] == str(csv)
    assert load_schema("toy", tmp_path).label == "price"


def test_unknown_schema_lists_known() -> None:
    with pytest.raises(TrainflowError, match="adult"):
        load_schema("no-such-dataset")
