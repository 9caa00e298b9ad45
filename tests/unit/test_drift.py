"""Drift tests: calibrated on samples of the reference itself, powerful on shifted data (fixed seeds)."""

import numpy as np
import pandas as pd
import pytest

from tasks.drift import PREDICTION, DriftSettings, build_profile, detect_drift
from trainflow.schema import DatasetSchema, load_schema
from tasks.split import SplitSettings, split_data


@pytest.fixture(scope="module")
def reference(adult_raw: pd.DataFrame, adult_schema: DatasetSchema) -> tuple[pd.DataFrame, pd.DataFrame]:
    splits, _ = split_data(adult_raw, adult_schema, SplitSettings(), seed=0)
    return build_profile(splits["train"], adult_schema), pd.concat([splits["validation"], splits["test"]])


def _alarm_rates(profile: pd.DataFrame, pool: pd.DataFrame, n: int, draws: int, **shift) -> pd.Series:
    alarms = []
    for i in range(draws):
        batch = pool.sample(n, random_state=i, replace=True)
        batch = batch.assign(**{k: batch[k] + v for k, v in shift.items()})
        alarms.append(detect_drift(profile, batch, DriftSettings())[0].set_index("feature")["drifted"])
    return pd.concat(alarms, axis=1).mean(axis=1)


def test_profile_has_no_raw_rows(reference, adult_schema: DatasetSchema) -> None:
    profile, _ = reference
    kinds = profile.groupby("feature")["kind"].first().to_dict()
    assert kinds["age"] == "discrete" and kinds["workclass"] == "categorical"  # whole years: tied values
    assert len(profile) < 2000 and set(profile["entry"]) <= {"rows", "missing_rate", "quantile", "std", "bin",
                                                             "category"}


@pytest.mark.parametrize("n", [300, 5000])
def test_false_alarms_stay_near_the_test_level(reference, n: int) -> None:
    profile, pool = reference
    rates = _alarm_rates(profile, pool, n, draws=80)
    # p < 0.05 per feature (small samples); distances are tighter than sampling noise on large ones
    assert rates.mean() <= 0.09 and rates.max() <= 0.17, rates.round(3).to_dict()


def test_continuous_ks_is_calibrated() -> None:
    schema = load_schema("breast_cancer")
    from tasks.ingest import ingest_data

    raw, _ = ingest_data(schema)
    profile = build_profile(raw, schema)
    assert (profile.groupby("feature")["kind"].first() == "continuous").sum() >= 20
    rates = _alarm_rates(profile, raw, 100, draws=40)  # 1,200 tests at the 5% level: a mean over 9% is no chance
    assert rates.mean() <= 0.09


@pytest.mark.parametrize("n,feature,shift,power", [(300, "age", 4, 0.8), (5000, "age", 3, 1.0),
                                                   (300, "hours-per-week", 3, 0.9)])
def test_shift_is_detected(reference, n: int, feature: str, shift: int, power: float) -> None:
    profile, pool = reference
    rates = _alarm_rates(profile, pool, n, draws=30, **{feature: shift})
    assert rates[feature] >= power


def test_new_category_missing_rate_and_dataset_drift(reference) -> None:
    profile, pool = reference
    batch = pool.sample(2000, random_state=1).copy()
    batch["workclass"] = batch["workclass"].astype(object)
    batch.iloc[:400, batch.columns.get_loc("workclass")] = "Gig-economy"
    batch.loc[batch.index[:600], "occupation"] = None
    report, summary = detect_drift(profile, batch, DriftSettings())
    row = report.set_index("feature").loc["workclass"]
    assert row["drifted"] and row["new_categories"] == "Gig-economy" and row["test"] == "jensen_shannon"
    assert report.set_index("feature").loc["occupation", "missing_rate_changed"]
    assert report["drifted"].is_monotonic_decreasing  # drifted features first
    assert not summary["dataset_drift"] and summary["drifted_features"] >= 1
    many = batch.assign(age=batch["age"] + 10, **{"hours-per-week": batch["hours-per-week"] + 10,
                                                  "capital-gain": batch["capital-gain"] + 5000,
                                                  "capital-loss": batch["capital-loss"] + 500,
                                                  "education-num": batch["education-num"] + 3})
    many["sex"] = "Female"
    many["race"] = "Other"
    assert detect_drift(profile, many, DriftSettings())[1]["dataset_drift"]


def test_prediction_drift_and_psi(reference, adult_schema: DatasetSchema) -> None:
    _, pool = reference
    rng = np.random.default_rng(0)
    profile = build_profile(pool, adult_schema, scores=rng.beta(2, 5, len(pool)))
    _, same = detect_drift(profile, pool.head(3000), DriftSettings(), scores=rng.beta(2, 5, 3000))
    _, moved = detect_drift(profile, pool.head(3000), DriftSettings(), scores=rng.beta(5, 2, 3000))
    assert same["prediction_drift"] is False and moved["prediction_drift"] is True
    report, _ = detect_drift(profile, pool.head(3000).assign(age=lambda d: d["age"] + 8),
                             DriftSettings(method="psi"), scores=rng.beta(2, 5, 3000))
    rows = report.set_index("feature")
    assert (rows["test"] == "psi").all() and rows.loc["age", "drifted"] and not rows.loc[PREDICTION, "drifted"]
