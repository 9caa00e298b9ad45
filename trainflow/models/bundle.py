"""A model bundle's files: the one serving Pipeline (preprocessing + model) as ``pipeline.skops`` (allow-listed,
``trainflow.modelio``), the model itself in its family's own format beside it (``Family.model_format``: LightGBM
text, CatBoost ``cbm``, safetensors for a network, each ensemble member as a bundle of its own) and
``model.json`` metadata. Nothing here names a family: each declares its format and its skops types."""

from __future__ import annotations

import json

from sklearn.pipeline import Pipeline

from trainflow.errors import ArtifactError
from trainflow.modelio import dump_skops, load_skops
from trainflow.models.families import FAMILIES
from trainflow.models.family import ModelFormat

SKOPS = "skops"  # model_format of a model saved inside the Pipeline's skops file


def _formats() -> dict[str, ModelFormat]:
    """Every family's model format by name (families may share one: lightgbm and lightgbm_xt, the networks)."""
    return {f.model_format.name: f.model_format for f in FAMILIES.values() if f.model_format is not None}


def _trusted_types(family: str | None) -> frozenset[str]:
    """The skops types a bundle of ``family`` may name beyond the preprocessor's: that family's own, or every
    family's for a bundle that does not say which family it holds."""
    if family in FAMILIES:
        return FAMILIES[family].skops_types
    return frozenset().union(*(f.skops_types for f in FAMILIES.values()))


def bundle_files(pipeline: Pipeline, meta: dict) -> dict[str, bytes]:
    """Files of a model bundle: ``pipeline.skops`` (everything scikit-learn, the model step left out when its
    family saves it in its own format), that format's files, and ``model.json`` metadata."""
    model = pipeline.steps[-1][1]
    fmt = next((f for f in _formats().values() if f.claims(model)), None)
    files: dict[str, bytes] = {}
    if fmt is None:
        meta = {**meta, "model_format": SKOPS}
    else:
        files, extra = fmt.dump(model, lambda member, family: bundle_files(member, {"family": family}))
        meta = {**meta, "model_format": fmt.name, **extra}
        pipeline = Pipeline(pipeline.steps[:-1] + [("model", "passthrough")])
    files["pipeline.skops"] = dump_skops(pipeline)
    files["model.json"] = json.dumps(meta, indent=2, default=str).encode()
    return files


def load_bundle(files: dict[str, bytes]) -> tuple[Pipeline, dict]:
    """Rebuild the one serving Pipeline (preprocessing + model) from a bundle's files.

    Raises:
        ArtifactError: The bundle names a format no family declares, or types its family does not trust.
    """
    meta = json.loads(files["model.json"])
    pipeline = load_skops(files["pipeline.skops"], _trusted_types(meta.get("family")))
    name = meta.get("model_format", SKOPS)
    if name == SKOPS:
        return pipeline, meta
    fmt = _formats().get(name)
    if fmt is None:
        raise ArtifactError(f"model.json names model format '{name}', which no model family declares")
    model = fmt.load(files, meta, lambda member: load_bundle(member)[0])
    return Pipeline(pipeline.steps[:-1] + [("model", model)]), meta
