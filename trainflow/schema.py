"""Dataset schemas: columns, types, roles, label, task type and the Great Expectations suite.

A schema lives once, as JSON, in ``schemas/<name>.json``. ``trainflow schema infer`` writes a
starter schema from a sample of the data (types, label, task type, and a GX suite with types, null
rates, ranges and category sets) for a person to edit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from trainflow import PROJECT_ROOT
from trainflow.errors import DataError, TrainflowError
from trainflow.names import check_name, inside

DEFAULT_SCHEMAS_DIR = PROJECT_ROOT / "schemas"

ColumnType = Literal["int", "float", "category", "string", "text", "bool", "datetime"]
Role = Literal["feature", "label", "id", "time", "group", "split", "ignore"]
TaskType = Literal["binary", "multiclass", "regression"]

# pandas dtype names GX sees for each schema type (pandas `str` columns reach GX as
# `pd.StringDtype()`, see tasks.validate); numeric types accept each other because a
# missing value turns an int column into floats.
PANDAS_TYPES: dict[str, list[str]] = {
    "int": ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64", "uint8", "uint16", "uint32",
            "uint64", "UInt8", "UInt16", "UInt32", "UInt64", "float32", "float64", "Float32", "Float64"],
    "float": ["float16", "float32", "float64", "Float32", "Float64", "int8", "int16", "int32", "int64", "Int64",
              "uint8", "uint16", "uint32", "uint64"],
    "category": ["StringDtype", "object", "str", "category", "bool", "boolean"],
    "string": ["StringDtype", "object", "str"],
    "text": ["StringDtype", "object", "str"],
    "bool": ["bool", "boolean"],
    "datetime": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "datetime64[ns, UTC]",
                 "datetime64[us, UTC]", "StringDtype", "object", "str"],  # text: ISO 8601 (CSV), see ISO_DATE
}
# an ISO 8601 date or date and time, as ``schema infer`` recognises it in text columns: 2024-03-01,
# 2024-03-01T12:30, 2024-03-01 12:30:05.123+02:00
ISO_DATE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
NUMERIC = ("int", "float")


class ColumnSpec(BaseModel):
    """One column of a dataset."""

    name: str
    type: ColumnType
    role: Role = "feature"
    description: str = ""


class ImageSpec(BaseModel):
    """An image dataset: each row holds one image's pixels as feature columns, row by row."""

    height: int = Field(ge=1, description="pixels per column")
    width: int = Field(ge=1, description="pixels per row")
    channels: int = Field(1, ge=1, description="colour channels (channel-major pixel columns)")


class SeriesSpec(BaseModel):
    """A time series: one row per time step; models see a window of past values and forecast the next."""

    time: str = Field(description="the time column (ordered)")
    value: str = Field(description="the observed value, forecast one step ahead")
    window: int = Field(24, ge=2, description="past values the model sees")
    season: int = Field(12, ge=1, description="steps per season; the seasonal-naive baseline repeats this lag")

    def lag(self, k: int) -> str:
        return f"lag_{k}"


class DatasetSchema(BaseModel):
    """Everything the stages need to know about one dataset.

    Attributes:
        name: Dataset name (the file name in ``schemas/``).
        source: Default source (a path relative to the project root, ``sklearn:NAME``, or a SQLAlchemy URL).
        query: SQL query when the source is a database URL.
        task: binary, multiclass or regression.
        label: Label column.
        positive_class: The positive class of a binary label.
        columns: Every column with type and role.
        sensitive: Sensitive attributes, reported as slices.
        missing_markers: Strings that mean "missing" in the raw data (``?``).
        unknown_categories: At inference, ``ignore`` an unseen category (encoded as unknown) or ``error``.
        expectations: The Great Expectations suite, in GX's own JSON form.
        families: Model families trained when the settings name none (e.g. the CNN for an image dataset).
        nn: Network settings that suit this dataset (batch size, epochs...); fields set in the flow's
            settings win.
        image: Set for image datasets: the pixel columns' shape.
        series: Set for time series: models are trained on windows of past values (``model_view``).
    """

    name: str
    description: str = ""
    source: str | None = None
    query: str | None = None
    task: TaskType
    label: str
    positive_class: str | int | None = None
    columns: list[ColumnSpec]
    sensitive: list[str] = Field(default_factory=list)
    missing_markers: list[str] = Field(default_factory=list)
    unknown_categories: Literal["ignore", "error"] = "ignore"
    expectations: list[dict] = Field(default_factory=list)
    families: list[str] | None = None
    nn: dict = Field(default_factory=dict)
    image: ImageSpec | None = None
    series: SeriesSpec | None = None

    @property
    def modality(self) -> str:
        """tabular, image, text or series."""
        if self.image is not None:
            return "image"
        if self.series is not None:
            return "series"
        return "text" if self.text_features else "tabular"

    def model_view(self) -> "DatasetSchema":
        """The schema of what models see: for a time series, the windowed table the split stage makes
        (``time``, ``lag_{window}`` ... ``lag_1`` and the value as label); otherwise this schema."""
        if self.series is None:
            return self
        s = self.series
        cols = [ColumnSpec(name=s.time, type="float", role="time"),
                *[ColumnSpec(name=s.lag(k), type="float", description=f"value {k} steps before")
                  for k in range(s.window, 0, -1)],
                ColumnSpec(name=s.value, type="float", role="label")]
        return self.model_copy(update={"columns": cols, "label": s.value, "task": "regression", "expectations": [],
                                       "sensitive": []})

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def role_column(self, role: Role) -> str | None:
        hits = [c.name for c in self.columns if c.role == role]
        return hits[0] if hits else None

    @property
    def features(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role in ("feature", "time") and c.name != self.label]

    @property
    def numeric_features(self) -> list[str]:
        return [c.name for c in self.features if c.type in NUMERIC or c.type == "bool"]

    @property
    def datetime_features(self) -> list[str]:
        return [c.name for c in self.features if c.type == "datetime"]

    @property
    def categorical_features(self) -> list[str]:
        return [c.name for c in self.features if c.type == "category"]

    @property
    def text_features(self) -> list[str]:
        return [c.name for c in self.features if c.type == "text"]

    @property
    def is_classification(self) -> bool:
        return self.task in ("binary", "multiclass")

    def for_scoring(self) -> "DatasetSchema":
        """This schema without the label's column and rules: what rows to be scored must satisfy."""
        return self.model_copy(update={
            "columns": [c for c in self.columns if c.name != self.label],
            "expectations": [e for e in self.expectations if e.get("kwargs", {}).get("column") != self.label]})


def known_datasets(schemas_dir: str | Path | None = None) -> list[str]:
    """The names of the dataset schemas in a folder (the project's ``schemas/`` by default)."""
    return sorted(p.stem for p in (Path(schemas_dir) if schemas_dir else DEFAULT_SCHEMAS_DIR).glob("*.json"))


def load_schema(name: str, schemas_dir: str | Path | None = None) -> DatasetSchema:
    """Load ``schemas/<name>.json``.

    Raises:
        TrainflowError: No such schema, or the file is not a valid schema.
    """
    folder = Path(schemas_dir) if schemas_dir else DEFAULT_SCHEMAS_DIR
    path = inside(folder, f"{check_name(name, 'dataset name')}.json")
    if not path.exists():
        known = known_datasets(folder)
        raise TrainflowError(f"no schema for dataset '{name}' in {folder} (known: {', '.join(known) or 'none'}); "
                             f"create one with `trainflow schema infer --name {name} --source PATH --label COL`")
    try:
        return DatasetSchema.model_validate_json(path.read_text())
    except ValueError as exc:
        raise TrainflowError(f"schema {path} is not valid: {exc}") from exc


def save_schema(schema: DatasetSchema, schemas_dir: str | Path | None = None) -> Path:
    """Write a schema as indented JSON and return its path."""
    folder = Path(schemas_dir) if schemas_dir else DEFAULT_SCHEMAS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = inside(folder, f"{check_name(schema.name, 'dataset name')}.json")
    path.write_text(json.dumps(schema.model_dump(mode="json", exclude_none=True), indent=2) + "\n")
    return path


def _infer_type(s: pd.Series, n_rows: int) -> ColumnType:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        non_null = s.dropna()
        return "int" if len(non_null) and (non_null == non_null.round()).all() else "float"
    if _iso_dates(s):
        return "datetime"
    nunique = s.nunique(dropna=True)
    return "category" if nunique <= max(50, 0.05 * n_rows) else "string"


def _iso_dates(s: pd.Series) -> bool:
    """Every present value of a text column is an ISO 8601 date or date and time that exists (``ISO_DATE``)."""
    present = s.dropna().astype("str")
    if present.empty or not present.str.fullmatch(ISO_DATE).all():
        return False
    parsed = pd.to_datetime(present, format="ISO8601", errors="coerce", utc=True)
    return bool(parsed.notna().all())


def _infer_task(s: pd.Series, col_type: ColumnType) -> TaskType:
    nunique = s.nunique(dropna=True)
    if nunique == 2:
        return "binary"
    if col_type in NUMERIC and nunique > 20:
        return "regression"
    return "multiclass"


def _round_out(value: float, up: bool) -> float:
    return float(math.ceil(value) if up else math.floor(value))


def starter_expectations(df: pd.DataFrame, columns: list[ColumnSpec], label: str, task: TaskType) -> list[dict]:
    """A starter GX suite from a sample: what a person would otherwise write by hand, then edit.

    Table and type rules are error severity (``critical`` in GX); null floods are errors; value
    ranges and category sets seen in the sample are warnings, since new data may honestly widen them.
    """
    exp: list[dict] = [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "severity": "critical"},
    ]
    for col in columns:
        s = df[col.name]
        kw = {"column": col.name}
        exp.append({"type": "expect_column_to_exist", "kwargs": dict(kw), "severity": "critical"})
        exp.append({"type": "expect_column_values_to_be_in_type_list",
                    "kwargs": {**kw, "type_list": PANDAS_TYPES[col.type]}, "severity": "critical"})
        null_rate = float(s.isna().mean())
        if col.name == label:
            exp.append({"type": "expect_column_values_to_not_be_null", "kwargs": dict(kw), "severity": "critical"})
        else:
            mostly = round(max(0.0, 1.0 - max(2 * null_rate, 0.02)), 3)
            exp.append({"type": "expect_column_values_to_not_be_null", "kwargs": {**kw, "mostly": mostly},
                        "severity": "critical", "meta": {"notes": f"null rate in sample: {null_rate:.4f}"}})
        if col.type in NUMERIC and s.notna().any():
            lo, hi = float(s.min()), float(s.max())
            pad = 0.1 * (hi - lo) if hi > lo else abs(hi) * 0.1 + 1
            lo_b = 0.0 if lo >= 0 and lo - pad < 0 else _round_out(lo - pad, up=False)
            exp.append({"type": "expect_column_values_to_be_between",
                        "kwargs": {**kw, "min_value": lo_b, "max_value": _round_out(hi + pad, up=True)},
                        "severity": "critical" if col.name == label else "warning"})
        if col.type == "datetime" and not pd.api.types.is_datetime64_any_dtype(s):
            exp.append({"type": "expect_column_values_to_match_regex", "kwargs": {**kw, "regex": ISO_DATE},
                        "severity": "critical", "meta": {"notes": "ISO 8601 dates: the calendar features read them"}})
        if col.type == "category":
            values = sorted(str(v) for v in s.dropna().unique())
            exp.append({"type": "expect_column_values_to_be_in_set", "kwargs": {**kw, "value_set": values},
                        "severity": "critical" if col.name == label else "warning"})
    if task != "regression":
        exp.append({"type": "expect_column_unique_value_count_to_be_between",
                    "kwargs": {"column": label, "min_value": 2}, "severity": "critical",
                    "meta": {"notes": "a classification label needs at least two classes"}})
    return exp


def infer_schema(df: pd.DataFrame, name: str, label: str | None = None, source: str | None = None,
                 missing_markers: list[str] | None = None, sensitive: list[str] | None = None) -> DatasetSchema:
    """Infer a starter schema from a sample of (already ingested) data.

    Args:
        df: The sample, after ingest's normalisation.
        name: Dataset name.
        label: Label column; the last column when None.
        source: Default source to record.
        missing_markers: Missing-value markers to record.
        sensitive: Sensitive attribute columns.

    Returns:
        A schema with a starter GX suite.

    Raises:
        DataError: The sample is empty or the label is not a column.
    """
    if df.empty:
        raise DataError(name, "cannot infer a schema from an empty sample", rule="non_empty")
    label = label or df.columns[-1]
    if label not in df.columns:
        raise DataError(name, f"label column not found among {list(df.columns)}", column=label, rule="label_exists")
    columns = []
    for c in df.columns:
        ctype = _infer_type(df[c], len(df))
        role: Role = "label" if c == label else ("ignore" if ctype == "string" else "feature")
        columns.append(ColumnSpec(name=str(c), type=ctype, role=role))
    label_spec = next(c for c in columns if c.name == label)
    task = _infer_task(df[label], label_spec.type)
    if task != "regression" and label_spec.type in NUMERIC:
        label_spec.type = "category" if df[label].dtype == object else label_spec.type
    positive = None
    if task == "binary":
        counts = df[label].value_counts()
        positive = counts.index[-1].item() if hasattr(counts.index[-1], "item") else counts.index[-1]
    return DatasetSchema(name=name, source=source, task=task, label=label, positive_class=positive, columns=columns,
                         sensitive=sensitive or [], missing_markers=missing_markers or [],
                         expectations=starter_expectations(df, columns, label, task))
