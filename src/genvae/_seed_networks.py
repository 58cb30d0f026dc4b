"""The notebook's encoder and decoder, built from the built-in parts.

Shared by :mod:`genvae.presets` (the seed VAE and CVAE) and :func:`genvae.semisupervised.seed_m2`
(the same networks with a classifier), so that neither of those modules imports the other.
"""

from __future__ import annotations

from typing import Any

from genvae._memory import arguments_named
from genvae.conditioners import Conditioner
from genvae.decoders import ConvDecoder
from genvae.encoders import ConvEncoder

__all__ = ["seed_decoder", "seed_encoder"]

# The notebook's layers: 28×28×1 → Conv(32, 3, s2) → Conv(64, 3, s2) → Linear(16) → heads, and back
# through Linear(64·7·7) and two stride-2 transposed convolutions.
_ENCODER: dict[str, Any] = {
    "in_channels": 1, "image_size": 28, "channels": (32, 64), "kernel_size": 3, "strides": 2, "hidden": (16,)
}  # fmt: skip
_DECODER: dict[str, Any] = {"out_channels": 1, "image_size": 28, "channels": (64, 32), "kernel_size": 3, "strides": 2}


def _condition(num_classes: int | None, conditioner: str | Conditioner) -> dict[str, Any]:
    return {} if num_classes is None else {"condition_dim": num_classes, "conditioner": conditioner}


def seed_encoder(num_classes: int | None = None, conditioner: str | Conditioner = "split") -> ConvEncoder:
    """The notebook's encoder; with ``num_classes``, conditioned on a one-hot label by ``conditioner``."""
    with arguments_named(condition_dim=("num_classes", num_classes)):  # a size error names this function's argument
        return ConvEncoder(**_ENCODER, **_condition(num_classes, conditioner))


def seed_decoder(
    latent_dim: int, num_classes: int | None = None, conditioner: str | Conditioner = "split"
) -> ConvDecoder:
    """The notebook's decoder from ``latent_dim``; with ``num_classes``, conditioned as the encoder."""
    with arguments_named(condition_dim=("num_classes", num_classes)):
        return ConvDecoder(latent_dim=latent_dim, **_DECODER, **_condition(num_classes, conditioner))
