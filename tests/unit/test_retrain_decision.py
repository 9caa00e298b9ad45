"""The nightly run's decision whether to retrain (tasks.retrain.retrain_reasons), apart from the flow."""

from tasks.retrain import retrain_reasons


def test_no_production_model_is_a_reason_by_itself() -> None:
    assert retrain_reasons(None, 30, {"dataset_drift": True}) == ["no production model"]


def test_a_fresh_model_without_drift_is_kept() -> None:
    assert retrain_reasons(3.0, 30, {"dataset_drift": False, "prediction_drift": False,
                                     "performance_drift": False}) == []
    assert retrain_reasons(3.0, 30, None) == []  # no batch scored


def test_age_and_each_kind_of_drift_are_named() -> None:
    assert retrain_reasons(45.25, 30, {"dataset_drift": True, "prediction_drift": False,
                                       "performance_drift": True}) == [
        "production model is 45.2 days old (max 30)", "dataset drift", "performance drift"]
