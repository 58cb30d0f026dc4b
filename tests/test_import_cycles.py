"""tools/import_cycles.py: the import graph of genvae, deferred imports included, has no cycle."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_cycles"] = module  # dataclasses and typing look the module up by name
    spec.loader.exec_module(module)
    return module


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_genvae_has_no_import_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    cycles = tool()
    graph = cycles.import_graph(ROOT / "src" / "genvae")
    assert "genvae.evaluation" in graph and "genvae.inference" in graph["genvae.evaluation"]
    assert cycles.cycles(graph) == []
    assert cycles.main([str(ROOT / "src" / "genvae")]) == 0
    assert "0 import cycle(s)" in capsys.readouterr().out


def test_a_cycle_through_a_deferred_import_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = package(
        tmp_path,
        {
            "a.py": "from pkg import b\n",
            "b.py": "def f():\n    from pkg.a import g\n",
            "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        },
    )
    cycles = tool()
    graph = cycles.import_graph(root)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == set()  # under TYPE_CHECKING: never runs
    assert cycles.cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert cycles.main([str(root)]) == 1
    assert "cycle: pkg.a -> pkg.b -> pkg.a" in capsys.readouterr().out


def test_importing_a_name_from_the_package_imports_its_init(tmp_path: Path) -> None:
    root = package(
        tmp_path,
        {
            "__init__.py": "from pkg.config import save\n__version__ = '1'\n",
            "config.py": "def save():\n    from pkg import __version__\n",
            "sub/__init__.py": "",
            "sub/leaf.py": "from .. import config\nimport pkg.sub\n",
        },
    )
    cycles = tool()
    graph = cycles.import_graph(root)
    assert graph["pkg.config"] == {"pkg"}
    assert graph["pkg.sub.leaf"] == {"pkg.config", "pkg.sub"}
    assert cycles.strongly_connected(graph) == [["pkg", "pkg.config"]]
    assert cycles.cycles(graph) == [["pkg", "pkg.config", "pkg"]]


def test_every_elementary_cycle_is_listed_once(tmp_path: Path) -> None:
    root = package(
        tmp_path, {"a.py": "import pkg.b\nimport pkg.c\n", "b.py": "import pkg.a\n", "c.py": "import pkg.b\n"}
    )
    found = tool().cycles(tool().import_graph(root))
    assert sorted(found) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.a", "pkg.c", "pkg.b", "pkg.a"]]


def test_a_folder_that_is_not_a_package_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool().main([str(tmp_path)]) == 2
    assert "package_dir: expected a package directory with __init__.py" in capsys.readouterr().err
