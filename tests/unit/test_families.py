"""What each family declares, read the way the stages read it."""

import pytest

from trainflow.models.families import FAMILIES


@pytest.mark.parametrize(("family", "setting", "expected"), [
    ("lightgbm", "auto", "native"), ("lightgbm_xt", "native", "native"), ("lightgbm", "onehot", "onehot"),
    ("random_forest", "auto", "ordinal"), ("decision_tree", "native", "ordinal"), ("extra_trees", "onehot", "onehot"),
    ("logistic", "auto", "onehot"), ("svm", "native", "ordinal"), ("catboost", "ordinal", "ordinal"),
    ("mlp", "auto", "ordinal"), ("mlp", "onehot", "ordinal"),  # embeddings need codes, whatever the setting
])
def test_the_encoding_a_family_gets_under_each_setting(family: str, setting: str, expected: str) -> None:
    assert FAMILIES[family].encoding(setting) == expected


def test_every_family_but_the_ensemble_can_be_tuned_and_every_one_is_interruptible_or_not_by_its_kind() -> None:
    untunable = {name for name, f in FAMILIES.items() if not f.tunable}
    assert untunable == {"ensemble", "seasonal_naive"}  # made from the others / nothing to tune
    assert {name for name, f in FAMILIES.items() if f.interruptible} == {
        "lightgbm", "lightgbm_xt", "catboost", "mlp", "cnn", "transformer", "gru"}
