"""The layers' arrows point one way: flows -> tasks -> trainflow (the library); the library imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(folder: str) -> dict[str, set[str]]:
    """Each module of a folder with the top-level packages it imports (at any depth, lazily too)."""
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
        out[str(path.relative_to(ROOT))] = names
    return out


def test_the_library_imports_no_stage_and_no_flow() -> None:
    found = {m: names & {"tasks", "flows", "deployments"} for m, names in imported_packages("trainflow").items()}
    assert {m: n for m, n in found.items() if n} == {}


def test_stages_import_no_flow() -> None:
    found = {m: names & {"flows", "deployments"} for m, names in imported_packages("tasks").items()}
    assert {m: n for m, n in found.items() if n} == {}
