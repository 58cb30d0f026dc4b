"""Sphinx configuration of genvae's API reference (built into docs/api/, linked from the site)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import genvae  # noqa: E402
from torch_inventory import write_inventory  # noqa: E402

project = "genvae"
release = version = genvae.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "alabaster"
exclude_patterns = ["_build"]

# The build runs offline: PyTorch's inventory is written here from the installed torch (the
# names genvae's docstrings refer to, at their addresses on docs.pytorch.org).
write_inventory(HERE / "torch-objects.inv")
intersphinx_mapping = {"torch": ("https://docs.pytorch.org/docs/stable/", str(HERE / "torch-objects.inv"))}
intersphinx_disabled_reftypes: list[str] = []
