"""The documents are references: README.md short and undated, the documentation site built strictly (a broken
link or anchor, a page missing from the navigation or a settings model the reference cannot read fails)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MOST_LINES = 200


def test_the_readme_is_short_and_undated() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MOST_LINES
    dated = [line for line in lines if re.search(r"\b20\d\d-\d\d-\d\d\b", line)]
    assert not dated, dated


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # the tests' PREFECT_HOME
    assert built.returncode == 0, built.stderr[-3000:]
    settings = (tmp_path / "settings" / "index.html").read_text(encoding="utf-8")
    assert "--train.cv-folds" in settings and "--model.batch-rows" in settings  # generated from the models
    assert "Kolmogorov" in (tmp_path / "operations" / "index.html").read_text(encoding="utf-8")
