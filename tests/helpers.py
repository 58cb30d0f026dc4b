"""Builders used by several test modules."""

from __future__ import annotations

from typing import Any

import torch

import genvae as gv


def build(arch: dict[str, Any]) -> gv.VAE:
    """A model from an ``architectures()`` draw."""
    c, s, latent, classes = arch["channels"], arch["size"], arch["latent"], arch["classes"]
    cond = {"condition_dim": classes, "conditioner": arch["conditioner"]}
    act, w = arch["activation"], arch["width"]
    if arch["kind"] == "mlp":
        enc = gv.encoders.MLPEncoder((c, s, s), hidden=(w, w), activation=act, **cond)
        dec = gv.decoders.MLPDecoder(latent, (c, s, s), hidden=(w,), activation=act, **cond)
    else:
        enc = gv.encoders.ConvEncoder(c, s, channels=(w, 4), hidden=(w,), activation=act, **cond)
        dec = gv.decoders.ConvDecoder(latent, c, s, channels=(4, w), activation=act, **cond)
    if classes:
        return gv.ConditionalVAE(enc, dec, latent_dim=latent, num_classes=classes, likelihood=arch["likelihood"])
    return gv.VAE(enc, dec, latent_dim=latent, likelihood=arch["likelihood"])


def batch_for(model: gv.VAE, n: int = 3) -> tuple[torch.Tensor, torch.Tensor | None]:
    shape = model.input_shape
    assert shape is not None
    x = torch.rand(n, *shape)
    y = torch.arange(n) % model.num_classes if model.conditional else None
    return x, y


def mean_logvar(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A (5, 3) float64 posterior mean and log-variance drawn from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
