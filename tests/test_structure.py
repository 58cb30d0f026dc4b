"""The shape of the code: short functions, and no module reaching into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "genvae"
FILES = sorted(SRC.rglob("*.py"))
MAX_LINES = 50


def functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the ``def`` to the end, without the docstring."""
    first = node.body[0]
    skip = 0
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        skip = (first.end_lineno or first.lineno) - first.lineno + 1
    return (node.end_lineno or node.lineno) - node.lineno + 1 - skip


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_functions_are_short(path: Path) -> None:
    tree = ast.parse(path.read_text())
    long = [f"{f.name} ({body_lines(f)} lines)" for f in functions(tree) if body_lines(f) > MAX_LINES]
    assert not long, f"functions over {MAX_LINES} lines: {', '.join(long)}"


def defined_names(tree: ast.AST) -> set[str]:
    """Every name a module defines itself: functions, classes, attributes assigned on self, etc."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


# Standard-library functions that are public and documented despite their underscore.
PUBLIC_UNDERSCORED = {("os", "_exit")}  # end the process at once (genvae._startup, on Ctrl-C)


def private_reaches(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    own = defined_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genvae"):
            found += [
                f"from {node.module} import {a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                continue
            if node.attr in own:  # the module's own private name, on another instance of its own class
                continue
            if (base.id if isinstance(base, ast.Name) else None, node.attr) in PUBLIC_UNDERSCORED:
                continue
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_reaches_into_another_modules_private_names(path: Path) -> None:
    assert not private_reaches(path), f"private names of other modules used: {private_reaches(path)}"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from genvae.models import _secret\n"
        "def f(model):\n    return model._posterior(1)\n" + "def g():\n" + "    x = 1\n" * (MAX_LINES + 1)
    )
    assert private_reaches(bad) == ["from genvae.models import _secret", "line 3: ._posterior"]
    assert [f.name for f in functions(ast.parse(bad.read_text())) if body_lines(f) > MAX_LINES] == ["g"]
