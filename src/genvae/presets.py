"""The notebook's architectures, as configurations of the built-in parts.

Example:
    >>> import genvae as gv
    >>> sum(p.numel() for p in gv.presets.seed_vae(latent_dim=2).parameters())
    97237
    >>> sum(p.numel() for p in gv.presets.seed_cvae(latent_dim=2, num_classes=10).parameters())
    200725
"""

from __future__ import annotations

from genvae.conditioners import Conditioner
from genvae.decoders import ConvDecoder
from genvae.encoders import ConvEncoder
from genvae.models import VAE, ConditionalVAE
from genvae.priors import Prior
from genvae.semisupervised import seed_m2

__all__ = ["seed_cvae", "seed_m2", "seed_vae"]

# The notebook's layers: 28×28×1 → Conv(32, 3, s2) → Conv(64, 3, s2) → Linear(16) → heads, and back
# through Linear(64·7·7) and two stride-2 transposed convolutions.
_ENCODER = {"in_channels": 1, "image_size": 28, "channels": (32, 64), "kernel_size": 3, "strides": 2, "hidden": (16,)}
_DECODER = {"out_channels": 1, "image_size": 28, "channels": (64, 32), "kernel_size": 3, "strides": 2}


def seed_vae(latent_dim: int = 2, likelihood: str = "bernoulli", prior: str | Prior = "normal") -> VAE:
    """The notebook's VAE (97,237 parameters at ``latent_dim=2``): a convolutional encoder for
    28×28 grey images and a transposed-convolution decoder returning logits. ``prior`` is a
    registered prior's name (``"normal"``, ``"mog"``, ``"vamp"``) or a :class:`~genvae.priors.Prior`."""
    return VAE(
        encoder=ConvEncoder(**_ENCODER),  # type: ignore[arg-type]
        decoder=ConvDecoder(latent_dim=latent_dim, **_DECODER),  # type: ignore[arg-type]
        latent_dim=latent_dim,
        likelihood=likelihood,
        prior=prior,
    )


def seed_cvae(
    latent_dim: int = 2,
    num_classes: int = 10,
    conditioner: str | Conditioner = "split",
    likelihood: str = "bernoulli",
    prior: str | Prior = "normal",
) -> ConditionalVAE:
    """The notebook's conditional VAE (200,725 parameters with ``"split"``, ``latent_dim=2``,
    ten classes). With ``"split"`` the label enters the encoder as ``Linear(num_classes, 32·14·14)``
    added to the first convolution's output and the decoder as ``W_y·y`` added to ``W_z·z``;
    ``"concat"`` and ``"film"`` are the alternatives. ``prior`` as for :func:`seed_vae`, and
    ``"conditional"`` (p(z | y))."""
    condition = {"condition_dim": num_classes, "conditioner": conditioner}
    return ConditionalVAE(
        encoder=ConvEncoder(**_ENCODER, **condition),  # type: ignore[arg-type]
        decoder=ConvDecoder(latent_dim=latent_dim, **_DECODER, **condition),  # type: ignore[arg-type]
        latent_dim=latent_dim,
        num_classes=num_classes,
        likelihood=likelihood,
        prior=prior,
    )
