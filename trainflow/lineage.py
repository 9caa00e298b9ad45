"""Lineage: what a model came from, so any version can be explained and reproduced."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from typing import Any

from trainflow.device import detect_accelerator
from trainflow.schema import PROJECT_ROOT

LIBRARIES = ("trainflow", "prefect", "great-expectations", "scikit-learn", "lightgbm", "pandas", "pyarrow", "numpy",
             "skops", "sqlalchemy", "optuna", "torch")


def code_version() -> dict[str, Any]:
    """The git commit of the project and whether the tree had uncommitted changes (None outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a model depends on."""
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def environment_lineage() -> dict[str, Any]:
    """Code version, library versions, Python, platform and accelerator of this process."""
    return {**code_version(), "libraries": library_versions(), "python": platform.python_version(),
            "platform": platform.platform(), "accelerator": detect_accelerator()}
