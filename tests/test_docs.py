"""The documentation cannot drift from the code: every Python block of the guides and the README
runs, and every public name has a docstring."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from genvae.registry import _REGISTRIES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted(p for p in (ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

MODULES = [
    "genvae", "genvae.registry", "genvae.config", "genvae.encoders", "genvae.decoders", "genvae.conditioners",
    "genvae.likelihoods", "genvae.priors", "genvae.models", "genvae.losses", "genvae.presets", "genvae.data",
    "genvae.data.base", "genvae.data.idx", "genvae.data.mnist", "genvae.data.synthetic", "genvae.data.files",
    "genvae.training", "genvae.training.trainer", "genvae.training.callbacks", "genvae.training.state",
    "genvae.training.checkpoint", "genvae.training.distributed", "genvae.training.batches", "genvae.evaluation",
    "genvae.latent_metrics", "genvae.viz", "genvae.report", "genvae.cli",
]  # fmt: skip


def test_every_page_is_checked() -> None:
    assert len(PAGES) >= 14
    assert sum(len(BLOCK.findall(p.read_text())) for p in PAGES) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocks of a page run in order, in one namespace, in a fresh folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "runs").mkdir()
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    before = {kind: set(reg.names()) for kind, reg in _REGISTRIES.items()}
    try:
        for number, block in enumerate(BLOCK.findall(page.read_text()), start=1):
            code = compile(block, f"{page.name} block {number}", "exec")
            exec(code, namespace)  # the documentation's own examples
    finally:  # the pages register parts of their own; leave the registries as they were
        for kind, names in before.items():
            for name in set(_REGISTRIES[kind].names()) - names:
                _REGISTRIES[kind].unregister(name)


def public_names(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", [])
    return [(f"{module_name}.{n}", getattr(module, n)) for n in names if not n.startswith("__")]


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), f"{module_name} has no module docstring"
    missing = []
    for qualified, obj in public_names(module_name):
        if inspect.ismodule(obj) or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(qualified)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                if not inspect.getdoc(getattr(obj, attr)):
                    missing.append(f"{qualified}.{attr}")
    assert not missing, f"no docstring: {', '.join(missing)}"
