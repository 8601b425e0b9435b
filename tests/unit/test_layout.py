"""The layout's promises, checked on the source: imports point one way and never in a circle,
nothing imports the CLI, and only the database package imports psycopg."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "loader"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each loader module with the modules it imports (at the top or inside a function)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    is_module = (ROOT.parent / (full.replace(".", "/") + ".py")).exists() or \
                        (ROOT.parent / full.replace(".", "/")).is_dir()
                    deps.add(full if is_module else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[_module_name(path)] = deps
    return graph


def test_loader_imports_have_no_cycle() -> None:
    graph = {m: {d for d in deps if d.startswith("loader")} for m, deps in _imports().items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path[path.index(dep):], dep])
            if dep in graph and dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_nothing_imports_the_cli() -> None:
    importers = [m for m, deps in _imports().items() if "loader.cli" in deps and m != "loader.__main__"]
    assert importers == []


def test_only_the_database_package_imports_psycopg() -> None:
    users = sorted(m for m, deps in _imports().items() if any(d == "psycopg" or d.startswith("psycopg.")
                                                               for d in deps))
    assert users and all(m.startswith("loader.db.") for m in users), users



def test_no_module_is_much_over_350_lines() -> None:
    """loader/ and benchmarks/: each module does one job."""
    files = [*ROOT.rglob("*.py"), *(ROOT.parent / "benchmarks").rglob("*.py")]
    long = {str(p.relative_to(ROOT.parent)): n for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 360}
    assert long == {}
