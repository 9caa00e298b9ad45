"""The skops allow-lists are exactly what the project's own files need: every family's bundle and the
preprocessor (with categories, numbers and dates) are saved here, and the types they name outside skops' own
trusted set must be ``ALLOWED_TYPES`` (the preprocessor's) plus the family's ``skops_types``, no more (an entry
nothing needs is a door left open) and no less (a family whose bundle would be refused)."""

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline

from tasks.ingest import ingest_data
from tasks.split import SplitSettings, split_data
from tasks.transform import fit_transform_splits
from trainflow.features import TransformSettings
from trainflow.modelio import ALLOWED_TYPES, dump_skops
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.models.families import FAMILIES
from trainflow.models.settings import TrainSettings
from trainflow.models.fit import fit_family
from trainflow.schema import infer_schema, load_schema

SMALL = TrainSettings(nn={"max_epochs": 1}, lightgbm_max_rounds=5,
                      params={f: {"n_estimators": 5} for f in ("random_forest", "extra_trees", "catboost")})
TABULAR = [f for f, fam in FAMILIES.items() if not fam.network and f not in ("ensemble", "tfidf_logistic",
                                                                               "seasonal_naive")] + ["mlp"]


def _named(data: bytes) -> set[str]:
    return set(sio.get_untrusted_types(data=data))


def _table(schema, rows: pd.DataFrame | None = None):
    raw = ingest_data(schema)[0] if rows is None else rows
    splits, _ = split_data(raw, schema, SplitSettings(), 0)
    return fit_transform_splits(splits, schema, TransformSettings())


@pytest.fixture(scope="module")
def named_by_project_files() -> dict[str, set[str]]:
    """Each saved file's types outside skops' trusted set, by what the file is."""
    named = {}
    adult = load_schema("adult")
    pre, feats = _table(adult, ingest_data(adult)[0].sample(600, random_state=0))
    named["adult preprocessor"] = _named(dump_skops(pre))
    for family in TABULAR:  # every tabular family on categories and numbers
        pipe, _, _ = fit_family(family, adult, feats["train"], feats["validation"], TransformSettings(), SMALL, 0)
        files = bundle_files(Pipeline([("preprocess", pre), *pipe.steps]), {"family": family})
        load_bundle(files)  # loads under the allow-list
        named[f"adult {family}"] = set().union(*(_named(v) for k, v in files.items() if k.endswith(".skops")))
    series = load_schema("air_passengers").model_view()
    pre, feats = _table(series)
    pipe, _, _ = fit_family("seasonal_naive", series, feats["train"], feats["validation"], TransformSettings(),
                            SMALL, 0)
    named["air_passengers seasonal_naive"] = _named(dump_skops(Pipeline([("preprocess", pre), *pipe.steps])))
    text = load_schema("fine_food")
    reviews = ingest_data(text)[0]
    pre, feats = _table(text, reviews.groupby("split").head(100))  # the dataset's own split tags
    pipe, _, _ = fit_family("tfidf_logistic", text, feats["train"], feats["validation"], TransformSettings(),
                            SMALL, 0)
    named["fine_food tfidf_logistic"] = _named(dump_skops(Pipeline([("preprocess", pre), *pipe.steps])))
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(200) % 90, unit="D")
    dated = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "y": np.where(np.arange(200) % 3, "a", "b")})
    pre, _ = _table(infer_schema(dated, "dated"), dated)
    named["a preprocessor of dates"] = _named(dump_skops(pre))
    return named


def test_the_allow_list_is_exactly_what_the_projects_files_name(named_by_project_files) -> None:
    preprocessors = set().union(*(v for k, v in named_by_project_files.items() if k.endswith("preprocessor")
                                  or k.endswith("dates")))
    assert preprocessors == set(ALLOWED_TYPES), "the preprocessor's allow-list differs from what it names"
    for what, named in named_by_project_files.items():
        family = what.split()[-1]
        if family in FAMILIES:
            own = FAMILIES[family].skops_types
            assert named - ALLOWED_TYPES == set(own), f"{family}: its skops_types differ from what its bundle names"
    declared = set().union(*(f.skops_types | ALLOWED_TYPES for f in FAMILIES.values()))
    assert all(not t.endswith(".") and t.count(".") >= 1 for t in declared)  # full names, no prefixes


def test_a_bundle_trusts_its_own_familys_types_alone(named_by_project_files) -> None:
    """A logistic model's bundle that names a forest's trees is refused: each family trusts its own types."""
    from trainflow.errors import ArtifactError

    adult = load_schema("adult")
    pre, feats = _table(adult, ingest_data(adult)[0].sample(600, random_state=0))
    pipe, _, _ = fit_family("decision_tree", adult, feats["train"], feats["validation"], TransformSettings(),
                            SMALL, 0)
    files = bundle_files(Pipeline([("preprocess", pre), *pipe.steps]), {"family": "decision_tree"})
    assert load_bundle(files)[1]["family"] == "decision_tree"
    import json

    files["model.json"] = json.dumps({**json.loads(files["model.json"]), "family": "logistic"}).encode()
    with pytest.raises(ArtifactError, match="sklearn.tree._tree.Tree"):
        load_bundle(files)
