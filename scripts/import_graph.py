"""Print which top-level packages of vmsite import which (migrations left out), and the
circles among them. `python scripts/import_graph.py` from the repository root.

`--modules` prints the circles among modules (files) instead: an import inside a function counts
as much as one at the top, since it ties the two files together all the same."""
from __future__ import annotations

import ast
import collections
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "bench", "scripts", "docs", "node_modules", "static", "templates"}


def packages(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and (p / "__init__.py").exists() and p.name not in SKIP)


def source_files(package: str, root: Path = ROOT) -> Iterator[Path]:
    """The package's Python files, migrations left out."""
    for path in sorted((root / package).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def imported_modules(tree: ast.AST) -> list[str]:
    """Every absolute import in the tree; `from a import b` gives both a and a.b (b may be a module)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def import_graph() -> dict[str, set[str]]:
    known = set(packages())
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for package in known:
        for path in source_files(package):
            for module in imported_modules(ast.parse(path.read_text())):
                top = module.split(".")[0]
                if top in known and top != package:
                    graph[package].add(top)
    return graph


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """vmsite's own modules by dotted name (a package by its __init__.py)."""
    return {module_name(path, root): path for package in packages(root) for path in source_files(package, root)}


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Which module (file) imports which, among vmsite's own modules."""
    files = module_files(root)
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for module, path in files.items():
        for imported in imported_modules(ast.parse(path.read_text())):
            if imported in files and imported != module:
                graph[module].add(imported)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    if "--modules" in argv:
        for component in circles(module_graph()):
            print("circle:", " <-> ".join(component))
        return 0
    graph = import_graph()
    for package in sorted(graph):
        print(f"{package:12} -> {', '.join(sorted(graph[package]))}")
    for component in circles(graph):
        print("circle:", " <-> ".join(component))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
