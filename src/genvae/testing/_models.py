"""Small models of every registered part, built from plain arguments (what
:func:`genvae.testing.strategies.models` draws)."""

from __future__ import annotations

from typing import Any

from torch import nn

from genvae import decoders, encoders
from genvae.models import VAE, ConditionalVAE

__all__ = ["KINDS", "build_model"]

#: The encoder/decoder pairs :func:`build_model` builds.
KINDS = ("mlp", "conv")


def build_model(
    *,
    kind: str = "mlp",
    channels: int = 1,
    size: int = 8,
    latent: int = 2,
    classes: int = 0,
    conditioner: str = "split",
    likelihood: str = "bernoulli",
    prior: str = "normal",
    activation: str = "relu",
    width: int = 4,
) -> VAE:
    """A tiny :class:`~genvae.VAE` (``classes=0``) or :class:`~genvae.ConditionalVAE` (``classes``
    classes) for ``(channels, size, size)`` inputs: an MLP or convolutional (``kind``) encoder and
    decoder of width ``width``, and the named conditioner, likelihood, prior and activation (any
    registered name). A convolutional model needs ``size`` divisible by 4."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    cond: dict[str, Any] = {"condition_dim": classes, "conditioner": conditioner}
    enc: nn.Module
    dec: nn.Module
    if kind == "mlp":
        enc = encoders.MLPEncoder((channels, size, size), hidden=(width, width), activation=activation, **cond)
        dec = decoders.MLPDecoder(latent, (channels, size, size), hidden=(width,), activation=activation, **cond)
    else:
        enc = encoders.ConvEncoder(channels, size, channels=(width, 4), hidden=(width,), activation=activation, **cond)
        dec = decoders.ConvDecoder(latent, channels, size, channels=(4, width), activation=activation, **cond)
    if classes:
        return ConditionalVAE(enc, dec, latent_dim=latent, num_classes=classes, likelihood=likelihood, prior=prior)
    return VAE(enc, dec, latent_dim=latent, likelihood=likelihood, prior=prior)
