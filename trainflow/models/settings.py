"""The train settings every model family reads (the train stage's form in the Prefect UI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from trainflow.forms import FormModel, optional_twin
from trainflow.models.families import FAMILIES
from trainflow.models.networks import NNSettings
from trainflow.schema import DatasetSchema

Family = Literal[tuple(FAMILIES)]  # type: ignore[valid-type]  # the form's choices are the registered families
DEFAULT_FAMILIES = {"tabular": ["lightgbm", "logistic"], "image": ["cnn", "logistic"],
                    "text": ["transformer", "tfidf_logistic"], "series": ["gru", "seasonal_naive"]}


NNChoices = optional_twin(NNSettings, "NNChoices", "Network settings this run sets; each one left empty comes from "
                                                    "the dataset schema's nn block, else the built-in default.")


class TrainSettings(FormModel):
    """Which model families to train and how."""

    families: list[Family] | None = Field(
        None, description="model families to train and compare; empty: the schema's, else by kind of data (tabular: "
                          "lightgbm, logistic; images: cnn, logistic; text: transformer, tfidf_logistic; series: "
                          "gru, seasonal_naive)")
    selection_metric: str | None = Field(
        None, description="validation metric that picks the winner; empty: roc_auc, f1_macro or rmse by task")
    lightgbm_max_rounds: int = Field(2000, ge=1, description="LightGBM boosting rounds before early stopping")
    lightgbm_learning_rate: float = Field(0.05, gt=0, description="LightGBM learning rate")
    early_stopping_rounds: int = Field(100, ge=1, description="stop LightGBM after this many rounds without gain")
    svm_kernel_max_rows: int = Field(
        10_000, ge=0, description="kernel (RBF) SVM up to this many training rows, linear SVM beyond")
    n_jobs: int = Field(-1, description="parallel jobs for families that support them (-1: all cores)")
    params: dict[str, dict[str, Any]] = Field(
        {}, description='extra estimator parameters per family, e.g. {"lightgbm": {"num_leaves": 63}}')
    nn: NNChoices = Field(default_factory=NNChoices, description="the neural network families (mlp, cnn, "
                                                                  "transformer, gru)")


def families_for(schema: DatasetSchema, settings: TrainSettings) -> list[str]:
    """The families to train: the settings', else the schema's, else the default for the kind of data."""
    return list(dict.fromkeys(settings.families or schema.families or DEFAULT_FAMILIES[schema.modality]))
