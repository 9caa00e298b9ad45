"""trainflow's library: what the stages in ``tasks/`` share (artifact catalog and cache policy, dataset
schemas, source readers, errors, metrics, progress and logging, device choice, lineage, the UI's forms and
artifacts). It imports nothing from ``tasks`` or ``flows``."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # relative paths in schemas and settings start here
