"""The documentation cannot drift from the code: every Python block of the guides and the README
runs, and every public name has a docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import genvae
from genvae.registry import _REGISTRIES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted(p for p in (ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

MODULES = [
    "genvae", "genvae.classifiers", "genvae.cli", "genvae.conditioners", "genvae.config", "genvae.data",
    "genvae.data.base", "genvae.data.digit_strokes", "genvae.data.digit_style", "genvae.data.files",
    "genvae.data.idx", "genvae.data.inputs", "genvae.data.mnist", "genvae.data.partial", "genvae.data.synthetic",
    "genvae.decoders", "genvae.demo", "genvae.encoders", "genvae.evaluation", "genvae.experiment", "genvae.export",
    "genvae.experiment_parts", "genvae.gaussian",
    "genvae.hierarchical",
    "genvae.hub", "genvae.inference", "genvae.latent_metrics", "genvae.likelihoods", "genvae.losses", "genvae.models",
    "genvae.presets", "genvae.priors", "genvae.registry", "genvae.report.bounds",
    "genvae.sample_quality", "genvae.samplers", "genvae.samplers.base", "genvae.samplers.gmm",
    "genvae.samplers.mixture", "genvae.samplers.prior",
    "genvae.report", "genvae.report.document", "genvae.report.evaluation", "genvae.report.figures",
    "genvae.report.formatting", "genvae.report.kinds", "genvae.report.page", "genvae.report.questions",
    "genvae.report.views", "genvae.runfiles", "genvae.runlock", "genvae.runs", "genvae.semisupervised",
    "genvae.training", "genvae.training.batches",
    "genvae.training.callbacks", "genvae.training.checkpoint", "genvae.training.distributed",
    "genvae.training.state", "genvae.training.tensorboard", "genvae.training.trackers", "genvae.training.trainer",
    "genvae.viz",
    "genvae.training.averages", "genvae.training.devices", "genvae.training.epoch_log", "genvae.training.interrupts",
    "genvae.training.resume", "genvae.testing", "genvae.testing.strategies",
    "genvae.classification", "genvae.training.options", "genvae.training.stops",
    "genvae.posteriors", "genvae.flows", "genvae.outputs",
    "genvae.quantizers", "genvae.vqvae", "genvae.samplers.code",
    "genvae.report.settings", "genvae.report.sampling", "genvae.report.codes", "genvae.report.sample_figures",
    "genvae.report.quality_html",
]  # fmt: skip


def test_every_public_module_is_listed() -> None:
    found = {"genvae"} | {
        info.name
        for info in pkgutil.walk_packages(genvae.__path__, "genvae.")
        if not any(part.startswith("_") for part in info.name.split("."))
    }
    assert found == set(MODULES)


def test_every_public_module_is_in_the_api_reference() -> None:
    """Each module has an ``automodule`` directive on a page of the Sphinx reference."""
    pages = (ROOT / "docs" / "sphinx").glob("*.rst")
    documented = {m for page in pages for m in re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), re.MULTILINE)}
    assert set(MODULES) - documented == set()


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


def own_docstring(member: object) -> str:
    """The docstring written on ``member`` itself. ``inspect.getdoc`` would fall back to a parent
    class's docstring, so an override without one (or a class whose docstring is not its first
    statement) would pass unnoticed."""
    if isinstance(member, staticmethod | classmethod):
        member = member.__func__
    if isinstance(member, property):
        return (member.__doc__ or "").strip()
    if inspect.isclass(member):
        return (member.__dict__.get("__doc__") or "").strip()
    return (getattr(member, "__doc__", None) or "").strip()


def is_public_member(name: str, member: object) -> bool:
    callable_kinds = (property, staticmethod, classmethod)
    return not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, callable_kinds))


def undocumented(module_name: str) -> list[str]:
    """Public names of ``module_name`` without a docstring of their own; for the classes it
    defines, also their public methods and properties (re-exported classes are checked where
    they are defined)."""
    module = importlib.import_module(module_name)
    missing = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not own_docstring(obj):
            missing.append(name)
        if inspect.isclass(obj) and obj.__module__ == module_name:
            missing += [f"{name}.{attr}" for attr, member in vars(obj).items()
                        if is_public_member(attr, member) and not own_docstring(member)]  # fmt: skip
    return missing


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_its_own_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    missing = undocumented(module_name)
    assert not missing, f"no docstring of their own: {', '.join(missing)}"


class Parent:
    """Documented."""

    def hook(self) -> None:
        """Documented."""


class Child(Parent):
    flag = True

    def hook(self) -> None:
        pass


def test_own_docstring_does_not_inherit() -> None:
    assert inspect.getdoc(Child) and inspect.getdoc(Child.hook)  # the fallback this test avoids
    assert own_docstring(Child) == "" and own_docstring(vars(Child)["hook"]) == ""
    assert own_docstring(Parent) == "Documented." and own_docstring(vars(Parent)["hook"]) == "Documented."
