"""The layers' arrows point one way and no module comes back to itself: import-linter's contracts
(``[tool.importlinter]`` in pyproject.toml: the layers, no circles among a package's modules with lazy imports
counted, the model families independent of each other, the stages too), plus what grimp does not see: a module that imports its own package's ``__init__`` while that ``__init__``
imports the package's modules, a circle through the package's face."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("trainflow", "tasks", "flows", "deployments", "cli")


def test_the_import_contracts_are_kept() -> None:
    linted = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert linted.returncode == 0, linted.stdout[-3000:] + linted.stderr[-2000:]
    assert "4 kept, 0 broken" in linted.stdout


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parent.parts)


def _face_imports_the_project(package: str) -> bool:
    """The package's ``__init__`` imports a project module (a face that only defines constants runs nothing)."""
    face = ROOT / package.replace(".", "/") / "__init__.py"
    return any(isinstance(node, (ast.Import, ast.ImportFrom)) and any(
        (name or "").split(".")[0] in LAYERS
        for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]))
        for node in ast.walk(ast.parse(face.read_text(encoding="utf-8"))))


def test_no_module_imports_its_own_packages_face() -> None:
    """Inside ``trainflow/models/``, ``from trainflow.models import classic`` goes through the package's
    ``__init__``: when that face imports the package's modules (``fit_family`` and the families, as it once
    did), the module and the face import each other. A package whose modules import it keeps a face that
    imports nothing of the project; a module reaches a sibling by its own name."""
    offenders = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            package = _package_of(path)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                        and (package == node.module or package.startswith(node.module + "."))
                        and _face_imports_the_project(node.module)):
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
    assert offenders == []
