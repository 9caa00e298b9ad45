"""The train settings every model family reads (the train stage's form in the Prefect UI)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from trainflow.forms import FormModel, Toggle, optional_twin
from trainflow.models.families import FAMILIES
from trainflow.models.networks import NNSettings
from trainflow.schema import DatasetSchema

DEFAULT_CV_FOLDS = 5  # k of the cross-validation that compares tabular families by default


def _known_family(name: str) -> str:
    if name not in FAMILIES:
        raise PydanticCustomError("unknown_family", "unknown model family '{name}' (known: {known})",
                                  {"name": name, "known": ", ".join(FAMILIES)})
    return name


# a family's name: the form offers the families registered when its schema is built (trainflow.models.families)
Family = Annotated[str, AfterValidator(_known_family),
                   Field(json_schema_extra=lambda schema: schema.update(enum=list(FAMILIES)))]
# tabular: LightGBM beside its extremely randomised variant and CatBoost (as AutoGluon's LightGBM, LightGBMXT and
# CatBoost), a linear model and a forest, so that the ensemble has members whose errors differ
DEFAULT_FAMILIES = {"tabular": ["lightgbm", "lightgbm_xt", "catboost", "logistic", "random_forest", "ensemble"],
                    "image": ["cnn", "logistic"],
                    "text": ["transformer", "tfidf_logistic"], "series": ["gru", "seasonal_naive"]}


NNChoices = optional_twin(NNSettings, "NNChoices", "Network settings this run sets; each one left empty comes from "
                                                    "the dataset schema's nn block, else the built-in default.")


class TrainSettings(FormModel):
    """Which model families to train and how."""

    families: list[Family] | None = Field(
        None, description="model families to train and compare; empty: the schema's, else by kind of data (tabular: "
                          "lightgbm, lightgbm_xt, catboost, logistic, random_forest and their ensemble; images: cnn, "
                          "logistic; text: "
                          "transformer, tfidf_logistic; series: gru, seasonal_naive)")
    selection_metric: str | None = Field(
        None, description="metric that picks the winner; empty: roc_auc, f1_macro or rmse by task")
    decision_metric: Literal["auto", "f1", "balanced_accuracy", "accuracy", "mcc", "none"] = Field(
        "auto", description="binary tasks: the metric the decision threshold is chosen for, on the winner's "
                            "out-of-fold predictions (the validation split's without cross-validation); stored in the "
                            "model and used wherever it predicts a class; auto: the selection metric when it scores "
                            "decisions, else f1 when under 20% of the rows are positive, else none; none: 0.5")
    cv_folds: int | None = Field(
        None, ge=0, description="compare the families by k-fold cross-validation over the training and validation "
                                "rows (out-of-fold predictions; LightGBM's rounds are the folds' mean best round), "
                                "then refit the families on all those rows; 0: compare on the validation split; "
                                "empty: 5 for tabular data, 0 for images, text, series and any network family (a "
                                "network fit takes minutes on a CPU)")
    bag: Toggle = Field(
        "auto", description="serve the boosted families (LightGBM, CatBoost) as the average of their cross-validation "
                            "fold models (bagging, as AutoGluon does: each fold's model early-stopped on the rows it "
                            "did not learn from) instead of one refit on all rows; needs cv_folds >= 2; auto: the "
                            "preset's (on in best), else off")
    lightgbm_max_rounds: int = Field(2000, ge=1, description="boosting rounds before early stopping (LightGBM and "
                                                              "CatBoost)")
    lightgbm_learning_rate: float = Field(0.025, gt=0, description="LightGBM learning rate (small: early stopping "
                                                                    "finds the rounds)")
    early_stopping_rounds: int = Field(100, ge=1, description="stop LightGBM or CatBoost after this many rounds "
                                                              "without gain")
    svm_kernel_max_rows: int = Field(
        10_000, ge=0, description="kernel (RBF) SVM up to this many training rows, linear SVM beyond")
    n_jobs: int | None = Field(None, description="threads per fit for families that run threads (-1: every core "
                                                 "this process may use); empty: chosen from those cores "
                                                 "(trainflow.threads: one thread for LightGBM and CatBoost below 4 "
                                                 "cores, where a busy core stalls their rounds)")
    dask_address: str | None = Field(
        None, description="train LightGBM with lightgbm.dask across the workers of this Dask cluster (the 'dask' "
                          "extra): tcp://host:8786, or 'local' for two worker processes here; every round is "
                          "trained (lightgbm.dask has no early stopping) and the best on the validation rows kept; "
                          "empty: in this process")
    params: dict[str, dict[str, Any]] = Field(
        {}, description='extra estimator parameters per family, e.g. {"lightgbm": {"num_leaves": 63}}')
    nn: NNChoices = Field(default_factory=NNChoices, description="the neural network families (mlp, cnn, "
                                                                  "transformer, gru)")


def selection_folds(schema: DatasetSchema, settings: TrainSettings) -> int:
    """k of the cross-validation that compares the families (below 2: the validation split compares them):
    the setting, else 5 for tabular data without a network family, else 0."""
    if settings.cv_folds is not None:
        return settings.cv_folds
    networks = any(FAMILIES[f].network for f in families_for(schema, settings))
    return DEFAULT_CV_FOLDS if schema.modality == "tabular" and not networks else 0


def families_for(schema: DatasetSchema, settings: TrainSettings) -> list[str]:
    """The families to train: the settings', else the schema's, else the default for the kind of data."""
    return list(dict.fromkeys(settings.families or schema.families or DEFAULT_FAMILIES[schema.modality]))
