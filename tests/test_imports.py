"""The package's structure: no module-level import cycle in agents/ or memenvs/ (a cycle makes
the import order matter and breaks a partial import)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, package: str) -> set[str]:
    """Modules of the project imported at module level (not inside functions, nor under
    ``if TYPE_CHECKING:``), resolving relative imports and ``from pkg import module``."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)

    visit(tree.body)
    return names


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for top in ("agents", "memenvs") for p in (ROOT / top).rglob("*.py")}
    return {name: {m for m in top_level_imports(path, name) if m in files and m != name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_no_module_level_import_cycle():
    graph = import_graph()
    assert "agents.supervised.trainer" in graph and "agents.cells.base" in graph["agents.init"] | graph["agents.cells.lstm"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["agents.cells.base"] = graph["agents.cells.base"] | {"agents.models"}  # models imports cells.base
    assert find_cycle(graph) is not None
