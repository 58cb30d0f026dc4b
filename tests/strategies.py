"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def float_tensors(
    shape: tuple[int, ...], low: float, high: float, dtype: torch.dtype = torch.float64
) -> st.SearchStrategy[torch.Tensor]:
    """Finite tensors with entries in [low, high]."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: torch.from_numpy(a).to(dtype))


@st.composite
def gaussian_params(draw: st.DrawFn, max_batch: int = 6, max_dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar) pairs of one random shape (batch, latent_dim)."""
    batch = draw(st.integers(1, max_batch))
    dim = draw(st.integers(1, max_dim))
    mean = draw(float_tensors((batch, dim), -10.0, 10.0))
    logvar = draw(float_tensors((batch, dim), -10.0, 10.0))
    return mean, logvar


@st.composite
def architectures(draw: st.DrawFn) -> dict:
    """Keyword arguments for a small random model: MLP or conv parts, sizes, conditioning."""
    kind = draw(st.sampled_from(["mlp", "conv"]))
    channels = draw(st.integers(1, 3))
    size = draw(st.sampled_from([8, 12, 16]))
    latent = draw(st.integers(1, 5))
    classes = draw(st.sampled_from([0, 3]))
    conditioner = draw(st.sampled_from(["split", "concat", "film"]))
    likelihood = draw(st.sampled_from(["bernoulli", "continuous_bernoulli", "gaussian"]))
    activation = draw(st.sampled_from(["relu", "elu", "tanh"]))
    width = draw(st.integers(2, 12))
    return {
        "kind": kind,
        "channels": channels,
        "size": size,
        "latent": latent,
        "classes": classes,
        "conditioner": conditioner,
        "likelihood": likelihood,
        "activation": activation,
        "width": width,
    }
