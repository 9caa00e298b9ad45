"""trainflow's library: what the stages in ``tasks/`` share (artifact catalog and cache policy, dataset
schemas, source readers, features, metrics and scoring, model files, the registry database, errors, progress
and logging, device choice, lineage, the UI's forms and artifacts) and the model families
(``trainflow.models``). It imports nothing from ``tasks``, ``flows`` or ``deployments``."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # relative paths in schemas and settings start here
