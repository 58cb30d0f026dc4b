"""Hypothesis strategies for property tests of genvae models (the ``testing`` extra).

Example:
    >>> from hypothesis import given, settings
    >>> from genvae.testing import check_model, strategies as gst
    >>> @settings(max_examples=3, deadline=None)
    ... @given(gst.models(conditional=False, kind="mlp"), gst.images(shape=(1, 8, 8), batch=3))
    ... def test_laws(model, x):
    ...     check_model(model, x, roundtrip=False)
    >>> test_laws()
"""

from __future__ import annotations

from typing import Any

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover - exercised by the missing-extra test in a subprocess
    raise ImportError(
        "genvae.testing.strategies needs the testing extra: pip install 'genvae[testing]' (hypothesis)"
    ) from None
import numpy as np
import torch

from genvae import conditioners, likelihoods, priors
from genvae.models import VAE
from genvae.testing._models import KINDS, build_model

__all__ = [
    "architectures", "batches", "builtin_names", "float_tensors", "gaussian_params", "images", "labels", "latents",
    "models",
]  # fmt: skip

Batch = int | st.SearchStrategy[int] | None


def builtin_names(registry: Any) -> list[str]:
    """The names in a part registry whose classes genvae defines (parts a user registers may
    need arguments a name alone cannot give, so the strategies leave them out)."""
    return [name for name in registry.names() if registry.get(name).__module__.startswith("genvae.")]


def _batch(batch: Batch) -> st.SearchStrategy[int]:
    if batch is None:
        return st.integers(1, 4)
    return st.just(batch) if isinstance(batch, int) else batch


def float_tensors(
    shape: tuple[int, ...], low: float, high: float, dtype: torch.dtype = torch.float64
) -> st.SearchStrategy[torch.Tensor]:
    """Finite tensors of ``shape`` with entries in ``[low, high]``."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: torch.from_numpy(a).to(dtype))


@st.composite
def gaussian_params(draw: st.DrawFn, max_batch: int = 6, max_dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar) pairs of one random shape (batch, latent_dim), float64, entries in [-10, 10]."""
    batch = draw(st.integers(1, max_batch))
    dim = draw(st.integers(1, max_dim))
    mean = draw(float_tensors((batch, dim), -10.0, 10.0))
    logvar = draw(float_tensors((batch, dim), -10.0, 10.0))
    return mean, logvar


@st.composite
def images(
    draw: st.DrawFn,
    shape: tuple[int, ...] = (1, 8, 8),
    *,
    batch: Batch = None,
    low: float = 0.0,
    high: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A batch of inputs ``(batch, *shape)`` with values in ``[low, high]`` (the Bernoulli's
    support by default); ``batch`` is a size, a strategy for one, or None (1 to 4)."""
    n = draw(_batch(batch))
    return draw(float_tensors((n, *shape), low, high, dtype))


@st.composite
def labels(draw: st.DrawFn, num_classes: int, *, batch: Batch = None) -> torch.Tensor:
    """Integer class indices ``(batch,)`` in ``[0, num_classes − 1]`` (int64)."""
    n = draw(_batch(batch))
    values = draw(st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.long)


@st.composite
def latents(
    draw: st.DrawFn, dim: int, *, batch: Batch = None, bound: float = 4.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Latent vectors ``(batch, dim)`` with entries in ``[-bound, bound]``."""
    n = draw(_batch(batch))
    return draw(float_tensors((n, dim), -bound, bound, dtype))


@st.composite
def architectures(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of :func:`~genvae.testing.build_model` for a small random model: MLP or
    conv parts, sizes, conditioning, likelihood, activation (the prior is left at its default)."""
    return {
        "kind": draw(st.sampled_from(["mlp", "conv"])),
        "channels": draw(st.integers(1, 3)),
        "size": draw(st.sampled_from([8, 12, 16])),
        "latent": draw(st.integers(1, 5)),
        "classes": draw(st.sampled_from([0, 3])),
        "conditioner": draw(st.sampled_from(["split", "concat", "film"])),
        "likelihood": draw(st.sampled_from(["bernoulli", "continuous_bernoulli", "gaussian"])),
        "activation": draw(st.sampled_from(["relu", "elu", "tanh"])),
        "width": draw(st.integers(2, 12)),
    }


@st.composite
def models(
    draw: st.DrawFn,
    *,
    conditional: bool | None = None,
    prior: str | None = None,
    conditioner: str | None = None,
    likelihood: str | None = None,
    kind: str | None = None,
    shape: tuple[int, int, int] = (1, 8, 8),
) -> VAE:
    """A tiny model for ``(channels, size, size)`` inputs (``shape``), of every registered part
    genvae defines: each argument left None is drawn (conditional or not, the prior, the
    conditioner, the likelihood, MLP or conv parts); a conditional model has 3 classes."""
    channels, size, _ = shape
    is_conditional = draw(st.booleans()) if conditional is None else conditional
    prior_names = [p for p in builtin_names(priors.registry) if is_conditional or p != "conditional"]
    return build_model(
        kind=kind or draw(st.sampled_from(KINDS)),
        channels=channels,
        size=size,
        latent=draw(st.integers(1, 3)),
        classes=3 if is_conditional else 0,
        conditioner=conditioner or draw(st.sampled_from(builtin_names(conditioners.registry))),
        likelihood=likelihood or draw(st.sampled_from(builtin_names(likelihoods.registry))),
        prior=prior or draw(st.sampled_from(prior_names)),
        width=draw(st.integers(2, 6)),
    )


@st.composite
def batches(draw: st.DrawFn, model: VAE, *, batch: Batch = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An input batch ``(x, y)`` for ``model``: images in its likelihood's support (or [0, 1]) of
    its input shape, and class indices for a conditional model (None otherwise)."""
    shape = model.input_shape
    if shape is None:
        raise ValueError("model: expected a model that knows its input shape, got one without input_shape")
    n = draw(_batch(batch))
    x = draw(images(tuple(shape), batch=n, dtype=model.dtype))
    num_classes = getattr(model, "num_classes", None)
    return x, draw(labels(num_classes, batch=n)) if num_classes else None
