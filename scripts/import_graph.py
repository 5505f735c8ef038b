"""Print which top-level packages of vmsite import which (migrations left out), and the
circles among them. `python scripts/import_graph.py` from the repository root."""
from __future__ import annotations

import ast
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "bench", "scripts", "docs", "node_modules", "static", "templates"}


def packages() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir()
                  if p.is_dir() and (p / "__init__.py").exists() and p.name not in SKIP)


def imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def import_graph() -> dict[str, set[str]]:
    known = set(packages())
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for package in known:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for module in imported_modules(ast.parse(path.read_text())):
                top = module.split(".")[0]
                if top in known and top != package:
                    graph[package].add(top)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
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


if __name__ == "__main__":
    graph = import_graph()
    for package in sorted(graph):
        print(f"{package:12} -> {', '.join(sorted(graph[package]))}")
    for component in circles(graph):
        print("circle:", " <-> ".join(component))
    sys.exit(0)
