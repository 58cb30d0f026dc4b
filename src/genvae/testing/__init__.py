"""A testing kit for genvae models: hypothesis strategies and the laws a VAE must keep.

- :func:`check_model` asserts the laws on one model and one batch (shapes, a finite loss,
  KL ≥ 0, decodings in the likelihood's support, save → load identical); an ``AssertionError``
  names the broken law.
- :mod:`genvae.testing.strategies` draws inputs, labels, latents and small models of every
  registered part for `hypothesis <https://hypothesis.readthedocs.io>`_ property tests; it needs
  the ``testing`` extra (``pip install 'genvae[testing]'``). :func:`check_model` and
  :func:`build_model` do not.

Example:
    >>> import torch, genvae as gv
    >>> from genvae.testing import build_model, check_model
    >>> model = build_model(kind="mlp", size=4, latent=2)
    >>> check_model(model, torch.rand(3, 1, 4, 4))
"""

from __future__ import annotations

import importlib
from typing import Any

from genvae.testing._laws import check_model
from genvae.testing._models import build_model

__all__ = ["build_model", "check_model"]  # and, with the testing extra, the strategies module


def __getattr__(name: str) -> Any:
    # the strategies need hypothesis (the testing extra); the rest of the kit does not
    if name == "strategies":
        return importlib.import_module("genvae.testing.strategies")
    raise AttributeError(f"module 'genvae.testing' has no attribute {name!r}")
