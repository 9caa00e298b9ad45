"""Date and datetime columns (ISO 8601 text in a CSV): ``schema infer`` finds them, the suite checks them, the
preprocessor turns them into calendar numbers, and a label that depends on the weekday is learnt from them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.ingest import ingest_data
from tasks.predict import predict_frame
from tasks.split import SplitSettings, split_data
from tasks.train import train_models
from tasks.transform import fit_transform_splits
from tasks.validate import validate_data
from trainflow.features import TransformSettings
from trainflow.models.settings import TrainSettings
from cli.main import main as trainflow
from trainflow.schema import infer_schema


@pytest.fixture(scope="module")
def dated(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """600 rows: a date, a timestamp with a time of day and an offset, a number; the label is the weekend."""
    rng = np.random.default_rng(0)
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, 600), unit="D")
    stamps = days + pd.to_timedelta(rng.integers(0, 86_400, 600), unit="s")
    frame = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "seen": stamps.strftime("%Y-%m-%dT%H:%M:%S+02:00"),
                          "amount": rng.normal(size=600).round(3),
                          "kind": np.where(days.day_of_week >= 5, "weekend", "weekday")})
    frame.loc[5, "day"] = None
    path = tmp_path_factory.mktemp("dated") / "dated.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_schema_infer_finds_the_dates_and_says_the_positive_class(dated, tmp_path: Path, capsys) -> None:
    path, _ = dated
    assert trainflow(["schema", "infer", "--name", "dated", "--source", str(path), "--schemas-dir", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    assert "positive class: 'weekend'" in said and "dates (calendar features): day, seen" in said
    text = pd.DataFrame({"d": ["2024-01-31", "2024-02-30"], "y": ["a", "b"]})  # no 30 February: not dates
    assert infer_schema(text, "t").columns[0].type != "datetime"
    codes = pd.DataFrame({"d": ["2024-01-31", "20240131"], "y": ["a", "b"]})  # one value not ISO: not dates
    assert infer_schema(codes, "t").columns[0].type != "datetime"


def test_a_label_of_the_weekday_is_learnt_from_the_calendar_features(dated) -> None:
    path, frame = dated
    schema = infer_schema(frame, "dated", source=str(path))
    assert schema.datetime_features == ["day", "seen"]
    raw, _ = ingest_data(schema)
    assert validate_data(raw, schema).errors == []
    bad = raw.copy()
    bad.loc[0, "day"] = "31/01/2024"
    errors = validate_data(bad, schema).errors
    assert errors and "day" in str(errors[0]) and "regex" in str(errors[0])
    splits, _ = split_data(raw, schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, schema, TransformSettings())
    assert {"day_day_of_week", "day_days", "seen_hour"} <= set(feats["train"].columns)
    assert "day_hour" not in feats["train"].columns  # dates alone have no time of day
    serving, meta, _, _ = train_models(schema, feats["train"], feats["validation"], pre, TransformSettings(),
                                       TrainSettings(families=["lightgbm"]), 0)
    test = splits["test"]
    predicted = predict_frame(serving, schema, test.drop(columns=["kind"]))[0]["prediction"]
    assert (predicted == test["kind"]).mean() > 0.95  # the weekday decides it; a model without dates: 5/7
