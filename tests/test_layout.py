"""The layers of docs/layout.md hold: every module of genvae is in one layer of its table, and no
module imports from a layer below its own (deferred imports included, TYPE_CHECKING ones not)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from import_cycles import import_graph  # noqa: E402

LAYOUT = ROOT / "docs" / "layout.md"


def documented_layers(text: str) -> dict[str, int]:
    """``genvae.<module>`` -> its layer number, from the rows ``| N. name | `a`, `b` | ... |``."""
    layers = {}
    for number, modules in re.findall(r"^\| (\d+)\. [^|]+\| ([^|]+) \|", text, flags=re.M):
        for name in re.findall(r"`([\w.]+)`", modules):
            layers[f"genvae.{name}"] = int(number)
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of ``module``, or of the package holding it (``genvae.training.trainer`` -> ``genvae.training``)."""
    if module == "genvae":
        return max(layers.values()) + 1  # the package's __init__ gathers everything
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        if ".".join(parts[:end]) in layers:
            return layers[".".join(parts[:end])]
    return None


def test_the_table_parses() -> None:
    layers = documented_layers(LAYOUT.read_text())
    assert layers["genvae._validation"] == 1 and layers["genvae.cli"] == max(layers.values())


def test_every_module_has_a_layer_and_imports_only_upwards() -> None:
    layers = documented_layers(LAYOUT.read_text())
    graph = import_graph(ROOT / "src" / "genvae")
    unplaced = sorted(m for m in graph if layer_of(m, layers) is None)
    assert not unplaced, f"modules missing from the table of docs/layout.md: {unplaced}"
    wrong = [
        f"{a} (layer {layer_of(a, layers)}) imports {b} (layer {layer_of(b, layers)})"
        for a, targets in sorted(graph.items())
        for b in sorted(targets)
        if layer_of(b, layers) > layer_of(a, layers)  # type: ignore[operator]
    ]
    assert not wrong, "imports against the layers of docs/layout.md:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("| 1. a | `x`, `y` | ... |\n| 2. b | `z` | ... |", {"genvae.x": 1, "genvae.y": 1, "genvae.z": 2}),
        ("| layer | modules | holds |\n|---|---|---|", {}),
    ],
)
def test_documented_layers_reads_rows(text: str, expected: dict[str, int]) -> None:
    assert documented_layers(text) == expected


def test_an_import_against_the_layers_is_found(tmp_path: Path) -> None:
    package = tmp_path / "genvae"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from genvae import high\n")  # deferred, still counted
    (package / "high.py").write_text("from genvae import low\n")
    layers = {"genvae.low": 1, "genvae.high": 2}
    graph = import_graph(package)
    assert [(a, b) for a, bs in graph.items() for b in bs if layer_of(b, layers) > layer_of(a, layers)] == [  # type: ignore[operator]
        ("genvae.low", "genvae.high")
    ]


MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    """Small modules with names that say what they hold: a module past 500 lines holds two things."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "src" / "genvae").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
