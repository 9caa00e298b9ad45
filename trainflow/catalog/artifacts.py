"""Every artifact the stages write, declared once: its stage folder, its name and its kind. A stage writes and
reads through these (``ArtifactStore.put``, ``open``, ``get``), so a name is spelled in one place; a templated
name (``features_{split}``) is filled in with ``Artifact.of``.

Kinds: ``table`` (Parquet: one file, or a dataset of parts written by many processes), ``file`` (bytes, such as
a PNG or a skops file; the name carries its extension) and ``bundle`` (a folder of files: a model).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["table", "file", "bundle"]


@dataclass(frozen=True)
class Artifact:
    """One artifact a stage writes (``runs/<run-id>/<stage>/<name>``)."""

    stage: str
    name: str
    kind: Kind = "table"

    def of(self, **fields: str) -> Artifact:
        """The artifact with its name's template filled in: ``FEATURES.of(split="train")`` is ``features_train``."""
        return replace(self, name=self.name.format(**fields))


# ingest
RAW = Artifact("ingest", "raw")
INGEST_REPORT = Artifact("ingest", "ingest_report")
# validate
VALIDATION_RESULTS = Artifact("validate", "validation_results")
VALID = Artifact("validate", "valid")
QUARANTINE = Artifact("validate", "quarantine")
# split
SPLIT = Artifact("split", "{split}")  # train, validation, test
SPLIT_SUMMARY = Artifact("split", "split_summary")
# transform
FEATURES = Artifact("transform", "features_{split}")
PREPROCESSOR = Artifact("transform", "preprocessor.skops", "file")
# tune
TRIALS = Artifact("tune", "trials")
BEST_SCORE_PLOT = Artifact("tune", "best_score.png", "file")
# train
LEADERBOARD = Artifact("train", "leaderboard")
TRAINING_HISTORY = Artifact("train", "training_history")
MODEL = Artifact("train", "model", "bundle")
CANDIDATE = Artifact("train", "candidate_{family}", "bundle")  # each family the selected one beat
OOF_PREDICTIONS = Artifact("train", "oof_predictions")
LOSS_CURVES_PLOT = Artifact("train", "loss_curves.png", "file")
DISTRIBUTED = Artifact("train", "distributed")  # a DDP run's summary (flows/distributed.py)
# evaluate: metrics, cv, curves, confusion_matrix, errors, slices, slice_gaps, feature_importance,
# test_leaderboard; and the plots of the curves, the importances and the confusion matrix
EVALUATION = Artifact("evaluate", "{table}")
EVALUATION_PLOT = Artifact("evaluate", "{plot}.png", "file")
# compress
COMPRESSION_REPORT = Artifact("compress", "compression_report")
SIZE_LATENCY_PLOT = Artifact("compress", "size_latency.png", "file")
SERVING = Artifact("compress", "serving", "bundle")
# drift (profile: the reference the model was trained on; monitoring: a batch against it)
REFERENCE_PROFILE = Artifact("drift", "reference_profile")
DRIFT_REPORT = Artifact("drift", "drift_report")
DRIFT_SUMMARY = Artifact("drift", "drift_summary")
DRIFT_PLOT = Artifact("drift", "{plot}.png", "file")
# register, promote, retrain, predict, report
REGISTERED_VERSION = Artifact("register", "registered_version")
PROMOTION = Artifact("promote", "promotion")
TRAINING_DATA = Artifact("retrain", "training_data")
HOLDOUT = Artifact("retrain", "holdout")
PREDICTIONS = Artifact("predict", "predictions")
PREDICT_VALIDATION_RESULTS = Artifact("predict", "validation_results")
PREDICT_QUARANTINE = Artifact("predict", "quarantine")
PREDICT_REPORT = Artifact("predict", "predict_report")
RUN_SUMMARY = Artifact("report", "run_summary")
