"""The layers' arrows point one way: deployments -> flows -> tasks -> trainflow (the library), and no module
comes back to itself through its imports (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("trainflow", "tasks", "flows", "deployments")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each project module with the project modules it imports, anywhere in its body (imports for type checkers
    alone, under ``if TYPE_CHECKING:``, never run and are left out)."""
    modules = {module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def test_each_layer_imports_only_the_layers_below_it() -> None:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = {(m, t) for m, targets in import_graph().items() for t in targets
              if rank[t.split(".")[0]] > rank[m.split(".")[0]]}
    assert upward == set()


def test_no_import_circles() -> None:
    graph = import_graph()
    circles = []

    def reaches(start: str, goal: str, seen: set[str]) -> list[str] | None:
        for nxt in sorted(graph[start]):
            if nxt == goal:
                return [start, nxt]
            if nxt not in seen:
                seen.add(nxt)
                path = reaches(nxt, goal, seen)
                if path:
                    return [start, *path]
        return None

    for module in sorted(graph):
        path = reaches(module, module, set())
        if path:
            circles.append(" -> ".join(path))
    assert circles == []
