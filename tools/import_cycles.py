"""Find import cycles among the modules of a package, deferred (function-level) imports included.

Usage: ``python tools/import_cycles.py [PACKAGE_DIR]`` (default: ``src/genvae``). Parses every
module with :mod:`ast` (nothing is imported), builds the graph of imports between the package's
own modules and prints each cycle; exits 1 when there is one, 0 otherwise.

What counts as an import of module ``m``:

- ``import genvae.m`` and ``from genvae.m import x``, at module level or inside a function;
- ``from genvae import x``: the submodule ``genvae.x`` when ``x`` is one, else ``genvae/__init__``
  (importing the package's ``__init__`` from one of its modules closes a cycle through it);
- relative imports, resolved against the importing module.

Imports under ``if TYPE_CHECKING:`` (or ``if typing.TYPE_CHECKING:``) are left out: they never run.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Graph", "cycles", "import_graph", "main", "strongly_connected"]

Graph = dict[str, set[str]]


def _module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (``genvae.evaluation``; a package's
    ``__init__.py`` by the package's own name)."""
    root = package_dir.name
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [root, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree``, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the else branch runs
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules that ``node`` (in ``module``) imports."""
    if isinstance(node, ast.Import):
        found = set()
        for alias in node.names:
            name = alias.name  # ``import a.b.c`` runs a, a.b and a.b.c; the deepest known one is the edge
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
        return found
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        anchor = parts if is_package else parts[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:
            found.add(sub)
        elif base in modules:
            found.add(base)
    return found


def import_graph(package_dir: Path) -> Graph:
    """Module -> the package's modules it imports (self-imports left out)."""
    names = _module_names(package_dir)
    known = set(names)
    graph: Graph = {name: set() for name in names}
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in _imports(tree):
            graph[name] |= _targets(node, name, is_package, known) - {name}
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def cycles(graph: Graph, limit: int = 1000) -> list[list[str]]:
    """Elementary cycles (at most ``limit``), each starting at its smallest module, found by a
    depth-first search from each module over the modules greater than it (each cycle once)."""
    found: list[list[str]] = []
    for component in strongly_connected(graph):
        members = set(component)
        for start in component:
            path = [start]
            work = [iter(sorted(graph[start] & members))]
            while work and len(found) < limit:
                child = next(work[-1], None)
                if child is None:
                    work.pop()
                    path.pop()
                elif child == start:
                    found.append([*path, start])
                elif child > start and child not in path:
                    path.append(child)
                    work.append(iter(sorted(graph[child] & members)))
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    package_dir = Path(args[0] if args else "src/genvae")
    if not (package_dir / "__init__.py").is_file():
        print(f"package_dir: expected a package directory with __init__.py, got {package_dir}", file=sys.stderr)
        return 2
    graph = import_graph(package_dir)
    components = strongly_connected(graph)
    found = cycles(graph)
    for component in components:
        print("strongly connected: " + ", ".join(component))
    for cycle in found:
        print("cycle: " + " -> ".join(cycle))
    print(f"{len(found)} import cycle(s) in {len(components)} strongly connected component(s) of {package_dir}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
