"""Hypothesis strategies shared by the property tests: those of the shipped testing kit
(:mod:`genvae.testing.strategies`), imported, not copied."""

from __future__ import annotations

from genvae.testing.strategies import architectures, float_tensors, gaussian_params

__all__ = ["architectures", "float_tensors", "gaussian_params"]
